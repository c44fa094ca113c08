"""Selection and statistics over the concatenated tidy tables, shared by every table and figure.

The paper's conventions (`paper.md` §1.7, §4): a *run* is one (dataset, setting, seed); its value is
the mean over its finest rows (per pair, per speaker, per frozen speaker x fresh listener) at its
latest step; a cell is the mean over seeds of the run values +- the standard error of the mean
(ddof=1); accuracies, TopSim and robustness are shown x100; correlations are Spearman's rho over
runs, with scipy's p-value.
"""

from __future__ import annotations

import logging
import math
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
import scipy.stats

from emcom.report.spec import BEST, MEAN, VOTE, ReportSpec, Row, SpecError, parse_rows
from emcom.report.table import Cell
from emcom.tidy import COLUMNS

log = logging.getLogger(__name__)

RUN = ["dataset", "setting", "seed"]
PERCENT = 100.0


def check_frame(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with an empty `eval_dataset` read as `dataset` (a library table before its stage
    script named the evaluated dataset); raises ValueError naming missing tidy columns."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"tidy table lacks column(s) {missing}; see docs/DESIGN.md")
    unnamed = df["eval_dataset"] == ""
    if unnamed.any():
        df = df.assign(eval_dataset=df["eval_dataset"].where(~unnamed, df["dataset"]))
    return df


def select(df: pd.DataFrame, *, stage: str, metric: str | Iterable[str], split: str | None = None,
           candidates: int | Mapping[str, int] | None = None, transfer: bool = False,
           latest: bool = True) -> pd.DataFrame:
    """The rows measuring `metric`, reduced to the finest ones at each run's latest step.

    Args:
      stage, metric, split: row filters (`split=None` keeps every split).
      candidates: an |C|, or {dataset: |C|} (rows of other datasets are dropped), or None.
      transfer: keep only rows with eval_dataset != dataset (zero-shot) instead of ==.
      latest: keep only each run's (and eval_dataset's) largest `step`, e.g. the final ETL step.
    """
    metrics = [metric] if isinstance(metric, str) else list(metric)
    rows = df[(df["stage"] == stage) & df["metric"].isin(metrics)]
    if split is not None:
        rows = rows[rows["split"] == split]
    if isinstance(candidates, Mapping):
        rows = rows[rows["candidates"] == rows["dataset"].map(candidates)]
    elif candidates is not None:
        rows = rows[rows["candidates"] == candidates]
    same = rows["eval_dataset"] == rows["dataset"]
    rows = rows[~same if transfer else same]
    keys = RUN + ["eval_dataset"]
    if latest and len(rows):
        rows = rows[rows["step"] == rows.groupby(keys)["step"].transform("max")]
    return finest(rows, keys + ["metric", "split", "candidates", "step"])


def finest(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Drops aggregated rows (speaker or listener -1) where per-agent rows of the same group exist.

    A stage may write both the per-pair numbers and their mean; averaging both would weight the
    mean twice, so the aggregate is used only where nothing finer was measured.
    """
    for column in ("speaker", "listener"):
        if len(rows):
            has_fine = rows.groupby(keys)[column].transform("max") >= 0
            rows = rows[(rows[column] >= 0) | ~has_fine]
    return rows


def run_values(rows: pd.DataFrame, keys: list[str] | None = None,
               how: str = "mean") -> pd.Series:
    """Value per run (index `keys`, default (dataset, setting, seed)) of selected rows: their
    mean, or another pandas aggregation `how` ("median", "max")."""
    keys = keys or RUN
    if not len(rows):
        return pd.Series(dtype=float, index=pd.MultiIndex.from_tuples([], names=keys))
    return rows.groupby(keys)["value"].agg(how)


def seed_cell(values: Iterable[float], scale: float = PERCENT) -> Cell:
    """Mean +- standard error over seeds (NaN values are dropped)."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64) * scale
    if not len(v):
        return Cell()
    se = v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else math.nan
    return Cell(float(v.mean()), float(se), len(v))


def spearman(x: pd.Series, y: pd.Series) -> tuple[Cell, Cell, str | None]:
    """Spearman's rho and p-value between two per-run series over their common runs.

    Returns (rho cell, p cell, note); the note says why the correlation is undefined, if it is.
    """
    both = pd.concat([x.rename("x"), y.rename("y")], axis=1, join="inner").dropna()
    n = len(both)
    if n < 3 or both["x"].nunique() < 2 or both["y"].nunique() < 2:
        return (Cell(kind="num"), Cell(kind="p"),
                f"{n} run(s) with both values, or a constant one: Spearman's rho is undefined")
    rho, p = scipy.stats.spearmanr(both["x"], both["y"])
    return Cell(float(rho), n=n, kind="num"), Cell(float(p), n=n, kind="p"), None


def main_candidates(df: pd.DataFrame, target: int) -> dict[str, int]:
    """Per dataset, the evaluation |C| standing for the paper's 1024: the largest evaluated |C|
    not above `target` (the smallest evaluated one if all are larger)."""
    rows = df[(df["stage"] == "eval") & (df["metric"] == "accuracy") & (df["candidates"] > 0)
              & (df["eval_dataset"] == df["dataset"])]
    out = {}
    for dataset, cands in rows.groupby("dataset")["candidates"]:
        available = sorted(set(int(c) for c in cands))
        below = [c for c in available if c <= target]
        out[dataset] = max(below) if below else available[0]
    return out


def dataset_labels(df: pd.DataFrame, spec: ReportSpec,
                   rows: Iterable[Row] | None = None) -> dict[str, str]:
    """{dataset: label} of the datasets to show (those with rows of the `rows`' settings), in
    column order."""
    if rows is not None:
        df = df[df["setting"].isin({r.setting for r in rows})]
    present = sorted(set(df["dataset"]))
    if spec.datasets:
        return {str(k): str(v) for k, v in spec.datasets.items() if k in present}
    return {d: d for d in present}


def candidates_note(cands: Mapping[str, int], labels: Mapping[str, str]) -> str:
    used = [f"{cands[d]} ({labels[d]})" for d in labels if d in cands]
    return "evaluation |C| = " + ", ".join(used) if used else "no evaluation (stage eval) rows"


def missing_settings(df: pd.DataFrame, rows: list[Row]) -> list[str]:
    present = set(df["setting"])
    missing = sorted({r.setting for r in rows if r.setting not in present})
    if missing:
        log.warning("report: settings without any row: %s", missing)
        return [f"no rows for setting(s) {missing}: shown as n/a"]
    return []


def table_rows(spec: ReportSpec, name: str) -> list[Row]:
    """A table's rows (checked against its kinds by `resolve_spec`)."""
    return parse_rows(spec.tables[name]["rows"], f"report.tables.{name}.rows", {MEAN, VOTE, BEST})


def etl_split(df: pd.DataFrame, wanted: str | None) -> str | None:
    """The split of the ETL rows: `wanted`, else the only one present."""
    if wanted is not None:
        return wanted
    splits = sorted(set(df.loc[df["stage"] == "etl", "split"]))
    if len(splits) > 1:
        raise SpecError(f"ETL rows have several splits {splits}: set report.etl_split")
    return splits[0] if splits else None


def generalisation(df: pd.DataFrame, spec: ReportSpec, cands: Mapping[str, int],
                    split: str | None = None) -> pd.Series:
    return run_values(select(df, stage="eval", metric="accuracy", split=split or spec.split,
                             candidates=cands))


def restrict(values: pd.Series, dataset: str, setting: str | None = None) -> pd.Series:
    """The part of a per-run series (index starting with RUN) of one dataset (and setting)."""
    mask = values.index.get_level_values("dataset") == dataset
    if setting is not None:
        mask &= values.index.get_level_values("setting") == setting
    return values[mask]


def robustness_drops(df: pd.DataFrame, kind: str, cands: Mapping[str, int],
                split: str, vote: bool) -> pd.Series:
    """Per-run accuracy drop under noise: the eval stage's `robustness_drop[_rel]` rows, or for
    the vote ensemble the same formula applied per speaker to `accuracy_vote[_noisy]`."""
    relative = kind == "relative"
    if not vote:
        metric = "robustness_drop_rel" if relative else "robustness_drop"
        return run_values(select(df, stage="eval", metric=metric, split=split, candidates=cands))
    sel = select(df, stage="eval", metric=["accuracy_vote", "accuracy_vote_noisy"], split=split,
                 candidates=cands)
    wide = sel.pivot_table(index=RUN + ["speaker", "listener"], columns="metric", values="value")
    if not {"accuracy_vote", "accuracy_vote_noisy"} <= set(wide.columns):
        return run_values(sel.iloc[:0])
    drop = wide["accuracy_vote"] - wide["accuracy_vote_noisy"]
    if relative:
        drop = drop / wide["accuracy_vote"].where(wide["accuracy_vote"] > 0)  # NaN: no clean hit
    return drop.groupby(RUN).mean()


def validation_accuracy(df: pd.DataFrame, cands: Mapping[str, int]) -> pd.Series:
    """Per-run validation accuracy: the eval stage's, else the last periodic training eval."""
    values = run_values(select(df, stage="eval", metric="accuracy", split="valid",
                               candidates=cands))
    if len(values):
        return values
    return run_values(select(df, stage="train", metric="accuracy", split="valid",
                             candidates=cands))


def best_seed(valid: pd.Series, dataset: str, setting: str) -> tuple[int, float] | None:
    """(seed, validation accuracy) of the best seed of `setting` (lowest seed on ties)."""
    v = restrict(valid, dataset, setting).dropna()
    if not len(v):
        return None
    best = v.max()
    return int(min(s for (_, _, s), x in v.items() if x == best)), float(best)


def correlation_rows(columns: list[tuple[str, pd.Series, pd.Series | None]], what: str,
                      notes: list[str]) -> list[tuple[str, list[Cell]]]:
    """Rows "Spearman rho" and "p-value" for (column label, x, y | None = blank) columns."""
    rhos, ps = [], []
    for label, x, y in columns:
        if y is None:
            rhos.append(Cell(kind="num"))
            ps.append(Cell(kind="p"))
            continue
        rho, p, note = spearman(x, y)
        rhos.append(rho)
        ps.append(p)
        if note:
            notes.append(f"{label}: {note}")
    return [(f"Spearman ρ ({what})", rhos), ("p-value", ps)]
