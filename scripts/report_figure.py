"""Snakemake adapter of rules `report_fig*`: one paper figure (PNG, PDF and its caption)."""
from _stage import write_report

from emcom.report import write_figures

write_report(snakemake, write_figures, snakemake.params.figure)  # noqa: F821 (from Snakemake)
