"""Snakemake adapter of rule `report_table`: one paper table (CSV, Markdown, LaTeX)."""
from _stage import write_report

from emcom.report import write_tables

write_report(snakemake, write_tables, snakemake.wildcards.table)  # noqa: F821 (from Snakemake)
