"""Snakemake adapter of rule `download`: emcom.data.download.fetch (writes <archive>.sha256 too)."""
from _stage import setup_logging

from emcom.data import download

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm)
download.fetch(sm.params.url, sm.output.archive, sha256=sm.params.sha256)
