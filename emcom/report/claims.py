"""Does each headline claim of the paper (`paper.md` §6) hold on this run's tidy tables?

A *claims spec* (`report.claims`, `docs/report.md` "Claims") names the settings each claim
compares; one pure function per claim turns the concatenated tidy tables into a record: the paper's
numbers, this run's (mean ± s.e.m. over seeds, n), the statistic with its value and p, and a
verdict among `VERDICTS`: "holds" (significant at alpha in the claimed direction; for a claim of
*no* effect: none with >= `min_seeds` seeds per group), "does not hold" (contradicted
significantly), "inconclusive" (not significant, too few seeds, or direction ambiguous), "not
measured" (the spec or the tables lack what it needs; the reason names it). Runs are those of
`emcom.report.tables`: a run is one (dataset, setting, seed), its value the mean of its finest
rows at its latest step; generalisation is eval accuracy on `split` at the largest evaluated |C|
not above `candidates`.
"""

from __future__ import annotations

import html
import logging
import math
import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from emcom import provenance
from emcom.report.claim_rules import DECIDERS, record  # noqa: F401
from emcom.report.claims_spec import (  # noqa: F401 (the claims API in one place)
    CLAIMS, COLUMNS, FAILS, HOLDS, KINDS, MISSING, UNSURE, VERDICTS, resolve_claims)
from emcom.report.select import check_frame
from emcom.report.spec import SpecError
from emcom.report.table import html_page, html_row

log = logging.getLogger(__name__)
CLAIMS_FILES = ("md", "csv", "json", "html")  # what write_claims writes, in its order


def decide_all(df: pd.DataFrame, spec: Mapping[str, Any] | None, alpha: float | None = None,
               settings: Any = None) -> pd.DataFrame:
    """One row per (training dataset, claim) with columns `COLUMNS`, in the paper's order.

    `alpha` defaults to the spec's; the spec's `datasets` to every dataset with train or eval
    rows. A claim missing from the spec is "not measured".
    """
    spec = resolve_claims(spec, settings)
    alpha = spec["alpha"] if alpha is None else float(alpha)
    if not KINDS["alpha"][0](alpha):
        raise SpecError(f"alpha must be in (0, 1), got {alpha!r}")
    df = check_frame(df)
    datasets = spec["datasets"] or sorted(set(df.loc[df["stage"].isin(["train", "eval"]),
                                                     "dataset"])) or [""]
    records = [{"dataset": dataset, **(
        DECIDERS[claim](df[df["dataset"] == dataset], spec[claim], alpha) if claim in spec
        else record(claim, MISSING, f"report.claims.{claim} is not in the spec"))}
        for dataset in datasets for claim in CLAIMS]
    return pd.DataFrame(records, columns=COLUMNS)


def to_markdown(claims: pd.DataFrame, alpha: float) -> str:
    """A summary table (dataset, claim, verdict, p), then one section per record."""
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|")  # a bare "|" (as in "|C|") would split the cell
    lines = ["## The paper's claims (§6) on this run", "", f"alpha = {alpha}; verdicts: holds, "
             "does not hold, inconclusive, not measured (docs/report.md, Claims).", "",
             "| Dataset | Claim | Verdict | p |", "|---|---|---|---:|"]
    lines += [f"| {r.dataset} | {r.claim}: {cell(r.statement)} | {r.verdict} | "
              f"{'n/a' if math.isnan(r.p) else f'{r.p:.3g}'} |" for r in claims.itertuples()]
    for r in claims.itertuples():
        lines += ["", f"### {r.dataset}: {r.claim}: {r.statement}", "",
                  f"- **{r.verdict}**: {r.reason}", f"- Paper: {r.paper}",
                  f"- This run: {r.evidence or 'n/a'}", f"- Statistic: {r.statistic or 'n/a'}"]
    return "\n".join(lines) + "\n"


VERDICT_COLOURS = {HOLDS: "#1a7f37", FAILS: "#cf222e", UNSURE: "#9a6700", MISSING: "#57606a"}


def to_html(claims: pd.DataFrame, alpha: float) -> str:
    """The summary table and each claim's evidence as a self-contained page (what
    `snakemake --report` shows: it offers a CSV only as a download)."""
    e = html.escape

    def summary_row(r) -> str:
        colour, anchor = VERDICT_COLOURS.get(r.verdict, "#000"), e(f"{r.dataset}-{r.claim}")
        return html_row([e(r.dataset), f"<a href='#{anchor}'>{e(r.claim)}</a>: {e(r.statement)}",
                         f"<b style='color:{colour}'>{e(r.verdict)}</b>",
                         "n/a" if math.isnan(r.p) else f"{r.p:.3g}"])
    parts = [f"<p>alpha = {alpha}; a verdict is decided by the statistic in each claim's section "
             "below (docs/report.md, Claims).</p>",
             "<table>" + html_row(["Dataset", "Claim", "Verdict", "p"], "th")]
    parts += [summary_row(r) for r in claims.itertuples()]
    parts.append("</table>")
    for r in claims.itertuples():
        parts += [f"<h4 id='{e(f'{r.dataset}-{r.claim}')}'>{e(r.dataset)}: {e(r.claim)}: "
                  f"{e(r.statement)}</h4>", "<ul>",
                  f"<li><b>{e(r.verdict)}</b>: {e(r.reason)}</li>",
                  f"<li>Paper: {e(r.paper)}</li>", f"<li>This run: {e(r.evidence or 'n/a')}</li>",
                  f"<li>Statistic: {e(r.statistic or 'n/a')}</li>", "</ul>"]
    return html_page("The paper's claims (§6) on this run", parts,
                     "body{max-width:70em} th,td{text-align:left;vertical-align:top} "
                     "td:last-child{text-align:right}")


def write_claims(df: pd.DataFrame, spec: Mapping[str, Any] | None, out_dir: str | os.PathLike,
                 alpha: float | None = None, settings: Any = None) -> list[Path]:
    """Writes claims.md, claims.csv, claims.json (records, NaN as null) and claims.html
    atomically, and claims.csv.provenance.json (the resolved spec, alpha); returns
    [md, csv, json, html]."""
    spec = resolve_claims(spec, settings)
    alpha = spec["alpha"] if alpha is None else float(alpha)
    claims = decide_all(df, spec, alpha)
    md, csv, js, page = (Path(out_dir) / f"claims.{ext}" for ext in CLAIMS_FILES)
    for path, text in ((md, to_markdown(claims, alpha)), (page, to_html(claims, alpha))):
        with provenance.atomic_path(path, suffix=path.suffix) as tmp:
            tmp.write_text(text, encoding="utf-8")
    with provenance.atomic_path(csv, suffix=".csv") as tmp:
        claims.to_csv(tmp, index=False)
    provenance.write_json(js, [{k: None if isinstance(v, float) and math.isnan(v) else v
                                for k, v in rec.items()} for rec in claims.to_dict("records")])
    counts = {verdict: int(n) for verdict, n in claims["verdict"].value_counts().items()}
    provenance.write_provenance(csv, {"claims": spec, "alpha": alpha}, verdicts=counts)
    log.info("wrote %d claim verdicts to %s", len(claims), out_dir)
    return [md, csv, js, page]


BEGIN, END = "<!-- claims:begin -->", "<!-- claims:end -->"


def summary(claims: pd.DataFrame) -> str:
    """One bullet per claim: verdict, statement, this run's evidence and the deciding statistic
    (what README.md's "What the default shows" is made of)."""
    lines = []
    for r in claims.itertuples():
        where = f" ({r.dataset})" if claims["dataset"].nunique() > 1 else ""
        lines.append(f"- **{r.verdict}**{where}: {r.statement}. {r.evidence or r.reason}"
                     + (f" [{r.statistic}]" if r.statistic else ""))
    return "\n".join(lines) + "\n"


def update_readme(readme: str, claims: pd.DataFrame) -> str:
    """`readme` with the text between its claims markers replaced by `summary(claims)`."""
    if BEGIN not in readme or END not in readme:
        raise ValueError(f"README has no {BEGIN} ... {END} block")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{summary(claims)}{END}{tail}"
