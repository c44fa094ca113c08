"""The paper's tables and figures from the tidy tables (`docs/report.md`).

    from emcom.report import write_tables, write_figures
    paths = write_tables(df, spec, "results/tables")    # CSV + Markdown + LaTeX per table
    paths += write_figures(df, spec, "results/figures")  # PNG + PDF + .rst caption per figure

`df` is the concatenation of the stages' tidy tables (`emcom.tidy.read_tables`), `spec` the
`report:` block of the workflow config.
"""

from emcom.report.figures import FIGURES, write_figures
from emcom.report.tables import TABLES, SpecError, resolve_spec, write_tables

__all__ = ["FIGURES", "TABLES", "SpecError", "resolve_spec", "write_figures", "write_tables"]
