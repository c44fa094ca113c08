"""Snakemake adapter of rule `report_table`: one paper table (CSV, Markdown, LaTeX), with the
training jobs' benchmark files where the table reads them (Table 5)."""
from _stage import write_report

from emcom.report import write_tables
from emcom.report.cost_table import benchmark_rows

write_report(snakemake, write_tables, snakemake.wildcards.table,  # noqa: F821 (from Snakemake)
             extra=benchmark_rows(snakemake.params.job_costs))  # noqa: F821
