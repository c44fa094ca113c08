"""The paper's tables and figures from the tidy tables (`docs/report.md`).

    from emcom.report import write_tables, write_figures
    paths = write_tables(df, spec, "results/tables")    # CSV + Markdown + LaTeX per table
    paths += write_figures(df, spec, "results/figures")  # PNG + PDF + .rst caption per figure

`df` is the concatenation of the stages' tidy tables (`emcom.tidy.read_tables`), `spec` the
`report:` block of the workflow config. What exists is declared in `emcom.report.registry`.
"""

from emcom.report.claims import CLAIMS_FILES, write_claims
from emcom.report.registry import (
    CLAIMS_STAGES, FIGURES, TABLES, figure_kind, figure_names, figure_stem, figure_title,
    report_labels, resolve_spec, write_figures, write_tables)
from emcom.report.spec import ReportSpec, SpecError
from emcom.report.table import FORMATS as TABLE_FORMATS, rst_text

__all__ = ["CLAIMS_FILES", "CLAIMS_STAGES", "FIGURES", "TABLES", "TABLE_FORMATS", "ReportSpec",
           "SpecError", "figure_kind", "figure_names", "figure_stem", "figure_title",
           "report_labels", "resolve_spec", "rst_text", "write_claims", "write_figures",
           "write_tables"]
