"""Snakemake adapter of rules `convert_<dataset>`: emcom.data.tfds.convert."""
from pathlib import Path

from _stage import setup_logging

from emcom.data import download, tfds

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm)
sha256 = download.read_checksum(sm.input.checksum)
tfds.convert(sm.input.archive, Path(sm.output.manifest).parent, splits=sm.params.splits,
             sha256=sha256, config={"splits": sm.params.splits, "sha256": sha256},
             **sm.params.limits)
