"""Snakemake adapter of rule `report_claims`: the paper's claims decided on this run's tables."""
from pathlib import Path

from _stage import setup_logging

from emcom import tidy
from emcom.report import resolve_spec, write_claims

sm = snakemake  # noqa: F821 (injected by Snakemake)
setup_logging(sm)
spec = resolve_spec(sm.params.spec, settings=sm.params.settings)
write_claims(tidy.read_tables(sm.input), spec.claims, Path(sm.output.csv).parent)
