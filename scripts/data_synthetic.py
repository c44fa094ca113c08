"""Snakemake adapter of rule `synthetic`: emcom.data.synthetic.write."""
from pathlib import Path

from _stage import setup_logging

from emcom.data import synthetic

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm)
synthetic.write(Path(sm.output.manifest).parent, name=sm.wildcards.dataset, **sm.params.knobs)
