"""The paper's tables (Fig. 2 table, Fig. 3 table, Tables 1, 2, 6, 7, 8, zero-shot transfer).

Every table is computed from the concatenated tidy tables (`docs/DESIGN.md`) and a *table spec*
(`docs/report.md`) that names which settings make which rows, so nothing here knows the experiment
names. The numbers follow the paper's conventions (`paper.md` §1.7, §4):

- a *run* is one (dataset, setting, seed); its value is the mean over its finest rows (per pair,
  per speaker, per frozen speaker x fresh listener) at its latest step;
- a cell is the mean over seeds of the run values, +- the standard error of the mean
  (sample std with ddof=1 / sqrt(n)); accuracies, TopSim and robustness are shown x100;
- correlations are Spearman's rho over runs (every seed of every row setting), with scipy's p-value.

Each table is written as `<name>.csv` (numeric, one line per cell), `<name>.md` and `<name>.tex`
(laid out like the paper), atomically, with `<name>.csv.provenance.json`.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd
import scipy.stats

from emcom import provenance
from emcom.tidy import COLUMNS, SPLITS

log = logging.getLogger(__name__)

RUN = ["dataset", "setting", "seed"]
PERCENT = 100.0

# Row kinds: the mean over seeds of a setting, its listener-vote ensemble, its best seed.
MEAN, VOTE, BEST = "mean", "vote", "best_of"

DEFAULT_SPEC: dict[str, Any] = {
    "main_candidates": 1024,   # evaluation |C| of Tables 1, 2, 6, 8 and Fig. 3 (capped by data)
    "split": "test",           # split of "generalisation"
    "robustness": "absolute",  # absolute | relative accuracy drop under noise
    "etl_split": None,         # split of ETL rows; null = the only one present
    "datasets": None,          # {name: display label} (also the column order); null = all, sorted
    "tables": {},
    "figures": {},
}
DEFAULT_ETL_TASKS = {
    "ETL Discr.": "etl_discrimination",
    "ETL Classif.": "etl_classification",
    "ETL Attributes": "etl_attributes",
}
# Table (or figure) name -> (keys it accepts, row kinds its `rows` may use).
TABLE_KEYS: dict[str, tuple[set[str], set[str]]] = {
    "fig2": ({"rows"}, {MEAN}),
    "fig3": ({"rows", "main_candidates"}, {MEAN}),
    "table1": ({"rows", "tasks", "main_candidates"}, {MEAN}),
    "table2": ({"rows", "main_candidates"}, {MEAN, VOTE, BEST}),
    "table6": ({"rows", "main_candidates"}, {MEAN, VOTE, BEST}),
    "table7": ({"rows"}, {MEAN}),
    "table8": ({"rows", "main_candidates", "split", "datasets"}, {MEAN, VOTE, BEST}),
    "transfer": ({"rows", "main_candidates"}, {MEAN}),
}
FIGURE_KEYS: dict[str, set[str]] = {
    "fig1": {"panels"},
    "fig2": {"rows"},
    "fig4": {"rows", "tasks"},
}


class SpecError(ValueError):
    """A report spec that does not follow `docs/report.md`; the message names the dotted key."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of a table: its label, the setting it reads and how (`MEAN`, `VOTE`, `BEST`)."""
    label: str
    setting: str
    kind: str = MEAN


@dataclasses.dataclass(frozen=True)
class Cell:
    """One number of a table, in the table's units (NaN = not available).

    `kind`: "stat" prints `mean +- se` (just the mean with one seed), "num" prints the mean with two
    decimals, "p" a p-value, "int" an integer.
    """
    mean: float = math.nan
    se: float = math.nan
    n: int = 0
    kind: str = "stat"

    def text(self) -> str:
        if not np.isfinite(self.mean):
            return "n/a"
        if self.kind == "p":
            return f"{self.mean:.3g}"
        if self.kind == "int":
            return str(int(self.mean))
        if self.kind == "stat" and self.n > 1 and np.isfinite(self.se):
            return f"{self.mean:.2f} ± {self.se:.2f}"
        return f"{self.mean:.2f}"


@dataclasses.dataclass
class Table:
    """A table laid out like the paper's: `rows` of (label, cells aligned with `columns`)."""
    name: str
    title: str
    row_header: str
    columns: list[str]
    rows: list[tuple[str, list[Cell]]]
    notes: list[str]


# ----------------------------------------------------------------------------------------- spec


def resolve_spec(spec: Mapping[str, Any] | None, settings: Iterable[str] | None = None) -> dict:
    """`spec` over `DEFAULT_SPEC`, checked; raises SpecError naming the offending dotted key.

    Args:
      spec: the `report:` block of the workflow config (or None for the defaults).
      settings: if given, the setting names the config defines; rows naming any other raise.
    """
    spec = dict(spec or {})
    if "report" in spec and set(spec) == {"report"}:
        spec = dict(spec["report"] or {})
    unknown = sorted(set(spec) - set(DEFAULT_SPEC))
    if unknown:
        raise SpecError(f"report: unknown key(s) {unknown}; expected {sorted(DEFAULT_SPEC)}")
    out = {**copy.deepcopy(DEFAULT_SPEC), **spec}
    known = None if settings is None else set(settings)
    if not isinstance(out["main_candidates"], int) or out["main_candidates"] <= 0:
        raise SpecError(f"report.main_candidates must be a positive integer, "
                        f"got {out['main_candidates']!r}")
    if out["robustness"] not in ("absolute", "relative"):
        raise SpecError(f"report.robustness must be 'absolute' or 'relative', "
                        f"got {out['robustness']!r}")
    if out["datasets"] is not None and not isinstance(out["datasets"], Mapping):
        raise SpecError("report.datasets must be a mapping {dataset name: display label}")
    for key, allowed in (("split", SPLITS), ("etl_split", SPLITS + (None,))):
        if out[key] not in allowed:
            raise SpecError(f"report.{key} must be one of {list(allowed)}, got {out[key]!r}")
    for group, allowed in (("tables", TABLE_KEYS), ("figures", FIGURE_KEYS)):
        entries = out[group] or {}
        if not isinstance(entries, Mapping):
            raise SpecError(f"report.{group} must be a mapping")
        checked = {}
        for name, entry in entries.items():
            where = f"report.{group}.{name}"
            if name not in allowed:
                raise SpecError(f"{where}: unknown {group[:-1]}; expected one of {sorted(allowed)}")
            keys = allowed[name][0] if group == "tables" else allowed[name]
            entry = entry or {}
            if not isinstance(entry, Mapping) or set(entry) - keys:
                raise SpecError(f"{where}: expected a mapping with keys among {sorted(keys)}, "
                                f"got {entry!r}")
            kinds = allowed[name][1] if group == "tables" else {MEAN}
            if group == "tables" and name != "transfer" and "rows" not in entry:
                raise SpecError(f"{where}.rows is required")
            entry = dict(entry)
            # YAML reads `16:` as an int; labels are strings (and JSON provenance needs them so).
            if "rows" in entry:
                parse_rows(entry["rows"], f"{where}.rows", kinds, known)
                entry["rows"] = {str(k): v for k, v in entry["rows"].items()}
            for panel, rows in (entry.get("panels") or {}).items():
                parse_rows(rows, f"{where}.panels.{panel}", {MEAN}, known)
            if entry.get("panels"):
                entry["panels"] = {str(p): {str(k): v for k, v in rows.items()}
                                   for p, rows in entry["panels"].items()}
            checked[name] = entry
            if "datasets" in entry and not (isinstance(entry["datasets"], list) and all(
                    isinstance(d, str) for d in entry["datasets"])):
                raise SpecError(f"{where}.datasets must be a list of dataset names")
            if "tasks" in entry and not isinstance(entry["tasks"], Mapping):
                raise SpecError(f"{where}.tasks must be a mapping {{label: metric}}")
            if "main_candidates" in entry and (not isinstance(entry["main_candidates"], int)
                                               or entry["main_candidates"] <= 0):
                raise SpecError(f"{where}.main_candidates must be a positive integer")
        out[group] = checked
    return out


def parse_rows(rows: Any, where: str, kinds: set[str] = frozenset({MEAN}),
               settings: set[str] | None = None) -> list[Row]:
    """`{label: setting | {vote: setting} | {best_of: setting}}` -> rows, in order."""
    if not isinstance(rows, Mapping) or not rows:
        raise SpecError(f"{where}: expected a non-empty mapping {{row label: setting}}, "
                        f"got {rows!r}")
    out = []
    for label, entry in rows.items():
        if isinstance(entry, str):
            row = Row(str(label), entry, MEAN)
        elif isinstance(entry, Mapping) and len(entry) == 1 and next(iter(entry)) in (VOTE, BEST):
            kind, setting = next(iter(entry.items()))
            row = Row(str(label), str(setting), kind)
        else:
            raise SpecError(f"{where}.{label}: expected a setting name, {{vote: setting}} or "
                            f"{{best_of: setting}}, got {entry!r}")
        if row.kind not in kinds:
            raise SpecError(f"{where}.{label}: row kind {row.kind!r} is not allowed here "
                            f"(allowed: {sorted(kinds)})")
        if settings is not None and row.setting not in settings:
            raise SpecError(f"{where}.{label}: unknown setting {row.setting!r}; the config "
                            f"defines {sorted(settings)}")
        out.append(row)
    return out


# ------------------------------------------------------------------------------------ selection


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


def run_values(rows: pd.DataFrame, keys: list[str] | None = None) -> pd.Series:
    """Mean value per run (index `keys`, default (dataset, setting, seed)) of selected rows."""
    keys = keys or RUN
    if not len(rows):
        return pd.Series(dtype=float, index=pd.MultiIndex.from_tuples([], names=keys))
    return rows.groupby(keys)["value"].mean()


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


def dataset_labels(df: pd.DataFrame, spec: Mapping[str, Any],
                   rows: Iterable[Row] | None = None) -> dict[str, str]:
    """{dataset: label} of the datasets to show (those with rows of the `rows`' settings), in
    column order."""
    if rows is not None:
        df = df[df["setting"].isin({r.setting for r in rows})]
    present = sorted(set(df["dataset"]))
    if spec["datasets"]:
        return {str(k): str(v) for k, v in spec["datasets"].items() if k in present}
    return {d: d for d in present}


def _candidates_note(cands: Mapping[str, int], labels: Mapping[str, str]) -> str:
    used = [f"{cands[d]} ({labels[d]})" for d in labels if d in cands]
    return "evaluation |C| = " + ", ".join(used) if used else "no evaluation (stage eval) rows"


def _missing_settings(df: pd.DataFrame, rows: list[Row]) -> list[str]:
    present = set(df["setting"])
    missing = sorted({r.setting for r in rows if r.setting not in present})
    if missing:
        log.warning("report: settings without any row: %s", missing)
        return [f"no rows for setting(s) {missing}: shown as n/a"]
    return []


def _table_rows(spec: Mapping[str, Any], name: str) -> list[Row]:
    return parse_rows(spec["tables"][name]["rows"], f"report.tables.{name}.rows",
                      TABLE_KEYS[name][1])


def _target(spec: Mapping[str, Any], name: str) -> int:
    return spec["tables"][name].get("main_candidates", spec["main_candidates"])


def etl_split(df: pd.DataFrame, spec: Mapping[str, Any]) -> str | None:
    """The split of the ETL rows: the spec's, else the only one present."""
    if spec["etl_split"] is not None:
        return spec["etl_split"]
    splits = sorted(set(df.loc[df["stage"] == "etl", "split"]))
    if len(splits) > 1:
        raise SpecError(f"ETL rows have several splits {splits}: set report.etl_split")
    return splits[0] if splits else None


# --------------------------------------------------------------------------------------- tables


def fig2_table(df: pd.DataFrame, spec: Mapping[str, Any]) -> Table:
    """Test accuracy (%): rows = training |C| settings, columns = evaluation |C| per dataset."""
    rows = _table_rows(spec, "fig2")
    labels = dataset_labels(df, spec, rows)
    sel = select(df, stage="eval", metric="accuracy", split=spec["split"])
    values = run_values(sel, RUN + ["candidates"])
    columns, index = [], []
    for dataset, label in labels.items():
        for cands in sorted(set(sel.loc[sel["dataset"] == dataset, "candidates"])):
            columns.append(f"{label}: eval |C| = {cands}")
            index.append((dataset, cands))
    out = []
    for row in rows:
        cells = []
        for dataset, cands in index:
            v = values[(values.index.get_level_values("dataset") == dataset)
                       & (values.index.get_level_values("setting") == row.setting)
                       & (values.index.get_level_values("candidates") == cands)]
            cells.append(seed_cell(v))
        out.append((row.label, cells))
    return Table("fig2", f"Fig. 2: {spec['split']} accuracy (%) by training |C| (rows) and "
                 "evaluation |C| (columns)", "Training", columns, out,
                 _missing_settings(df, rows))


def _generalisation(df: pd.DataFrame, spec: Mapping[str, Any], cands: Mapping[str, int],
                    split: str | None = None) -> pd.Series:
    return run_values(select(df, stage="eval", metric="accuracy", split=split or spec["split"],
                             candidates=cands))


def restrict(values: pd.Series, dataset: str, setting: str | None = None) -> pd.Series:
    """The part of a per-run series (index starting with RUN) of one dataset (and setting)."""
    mask = values.index.get_level_values("dataset") == dataset
    if setting is not None:
        mask &= values.index.get_level_values("setting") == setting
    return values[mask]


def _correlation_rows(columns: list[tuple[str, pd.Series, pd.Series | None]], what: str,
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


def fig3_table(df: pd.DataFrame, spec: Mapping[str, Any]) -> Table:
    """TopSim x100 per training |C| for each dataset x meaning space, + its Spearman correlation
    with generalisation over runs."""
    rows = _table_rows(spec, "fig3")
    labels = dataset_labels(df, spec, rows)
    cands = main_candidates(df, _target(spec, "fig3"))
    settings = {r.setting for r in rows}
    gen = _generalisation(df, spec, cands)
    gen = gen[gen.index.get_level_values("setting").isin(settings)]
    spaces = {"topsim_image": "Image", "topsim_attributes": "Attributes"}
    topsim = {m: run_values(select(df, stage="language", metric=m, split=spec["split"]))
              for m in spaces}
    columns, data = [], []
    for dataset, label in labels.items():
        for metric, space in spaces.items():
            values = restrict(topsim[metric], dataset)
            values = values[values.index.get_level_values("setting").isin(settings)]
            if len(values):
                columns.append(f"{label} ({space})")
                data.append((dataset, values))
    body = [(r.label, [seed_cell(restrict(v, d, r.setting)) for d, v in data]) for r in rows]
    notes = _missing_settings(df, rows) + [_candidates_note(cands, labels) + " for generalisation"]
    body += _correlation_rows([(c, v, restrict(gen, d)) for c, (d, v) in zip(columns, data)],
                              "TopSim vs generalisation", notes)
    return Table("fig3", "Fig. 3 (left): topographic similarity ×100 by training |C|",
                 "Training", columns, body, notes)


def table1(df: pd.DataFrame, spec: Mapping[str, Any]) -> Table:
    """Generalisation and final ETL value per task per training |C|, + Spearman correlation of
    each ETL task with generalisation over runs."""
    rows = _table_rows(spec, "table1")
    labels = dataset_labels(df, spec, rows)
    cands = main_candidates(df, _target(spec, "table1"))
    tasks = dict(spec["tables"]["table1"].get("tasks") or DEFAULT_ETL_TASKS)
    split = etl_split(df, spec)
    gen = _generalisation(df, spec, cands)
    etl = {m: run_values(select(df, stage="etl", metric=m, split=split)) for m in tasks.values()}
    columns, data = [], []  # data: (dataset, per-run values, scale, is generalisation)
    for dataset, label in labels.items():
        columns.append(f"{label}: Generalization")
        data.append((dataset, restrict(gen, dataset), PERCENT, True))
        for task, metric in tasks.items():
            values = restrict(etl[metric], dataset)
            if len(values):
                columns.append(f"{label}: {task}")
                data.append((dataset, values, 1.0 if "loss" in metric else PERCENT, False))
    body = [(r.label, [seed_cell(restrict(v, d, r.setting), scale) for d, v, scale, _ in data])
            for r in rows]
    notes = _missing_settings(df, rows) + [_candidates_note(cands, labels)
                                           + "; ETL: final value (accuracy %, or loss)"]
    settings = {r.setting for r in rows}

    def among(v: pd.Series) -> pd.Series:
        return v[v.index.get_level_values("setting").isin(settings)]

    body += _correlation_rows(
        [(c, among(v), None if is_gen else among(restrict(gen, d)))
         for c, (d, v, _, is_gen) in zip(columns, data)], "ETL vs generalisation", notes)
    return Table("table1", "Table 1: generalisation and ease of transfer learning (ETL) by "
                 "training |C|", "Training", columns, body, notes)


def _robustness(df: pd.DataFrame, spec: Mapping[str, Any], cands: Mapping[str, int],
                split: str, vote: bool) -> pd.Series:
    """Per-run accuracy drop under noise: the eval stage's `robustness_drop[_rel]` rows, or for
    the vote ensemble the same formula applied per speaker to `accuracy_vote[_noisy]`."""
    relative = spec["robustness"] == "relative"
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


def _validation_accuracy(df: pd.DataFrame, cands: Mapping[str, int]) -> pd.Series:
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


def _population_cells(df: pd.DataFrame, spec: Mapping[str, Any], row: Row, dataset: str,
                      cands: Mapping[str, int], split: str, valid: pd.Series,
                      notes: list[str], robustness: bool) -> list[Cell]:
    """[generalisation(, robustness)] of one row for one dataset."""
    vote = row.kind == VOTE
    gen = run_values(select(df, stage="eval", metric="accuracy_vote" if vote else "accuracy",
                            split=split, candidates=cands))
    series = [gen] + ([_robustness(df, spec, cands, split, vote)] if robustness else [])
    seeds = None
    if row.kind == BEST:
        best = best_seed(valid, dataset, row.setting)
        if best is None:
            notes.append(f"{row.label} ({dataset}): no validation accuracy for "
                         f"{row.setting!r}, cannot choose a seed")
            return [Cell() for _ in series]
        notes.append(f"{row.label} ({dataset}): seed {best[0]} of {row.setting!r}, the best "
                     f"validation accuracy ({100 * best[1]:.2f})")
        seeds = [best[0]]
    cells = []
    for values in series:
        v = restrict(values, dataset, row.setting)
        if seeds is not None:
            v = v[v.index.get_level_values("seed").isin(seeds)]
        cells.append(seed_cell(v))
    return cells


def _population_table(df: pd.DataFrame, spec: Mapping[str, Any], name: str, title: str) -> Table:
    rows = _table_rows(spec, name)
    labels = dataset_labels(df, spec, rows)
    cands = main_candidates(df, _target(spec, name))
    split = spec["split"]
    valid = _validation_accuracy(df, cands)
    datasets = [d for d in labels if d in cands]
    columns = [f"{labels[d]} {c}" for d in datasets for c in ("Gen. ↑", "Rob. ↓")]
    notes = _missing_settings(df, rows)
    body = []
    for row in rows:
        cells = []
        for dataset in datasets:
            cells += _population_cells(df, spec, row, dataset, cands, split, valid, notes, True)
        body.append((row.label, cells))
    notes.append(_candidates_note(cands, labels) + f"; robustness = {spec['robustness']} "
                 "accuracy drop under noise (%), lower is better")
    return Table(name, title, "Setting", columns, body, notes)


def table2(df: pd.DataFrame, spec: Mapping[str, Any]) -> Table:
    """Settings x (generalisation, robustness) per dataset, with best-of and vote rows."""
    return _population_table(df, spec, "table2", "Table 2: generalisation and robustness (%) "
                             "of populations, imitation and vote")


def table6(df: pd.DataFrame, spec: Mapping[str, Any]) -> Table:
    """Table 2's layout for the reset study."""
    return _population_table(df, spec, "table6", "Table 6: generalisation and robustness (%) "
                             "with listener reset")


def table7(df: pd.DataFrame, spec: Mapping[str, Any]) -> Table:
    """Final per-attribute ETL accuracy (%): rows = attributes, columns = training |C| per
    dataset."""
    settings = _table_rows(spec, "table7")
    labels = dataset_labels(df, spec, settings)
    split = etl_split(df, spec)
    metrics = sorted({m for m in df["metric"].unique() if m.startswith("etl_attribute/")})
    values = run_values(select(df, stage="etl", metric=metrics, split=split),
                        RUN + ["metric"])
    datasets = [d for d in labels if len(restrict(values, d))]
    columns = [f"{labels[d]}: {r.label}" for d in datasets for r in settings]
    body = []
    for metric in metrics:
        v = values[values.index.get_level_values("metric") == metric]
        body.append((metric.split("/", 1)[1],
                     [seed_cell(restrict(v, d, r.setting)) for d in datasets for r in settings]))
    return Table("table7", "Table 7: final ETL accuracy (%) per attribute by training |C|",
                 "Attribute", columns, body, _missing_settings(df, settings))


def table8(df: pd.DataFrame, spec: Mapping[str, Any]) -> Table:
    """Generalisation (%) on identity-disjoint test data (paper App. B.7: the official CelebA
    split): rows = the entry's `datasets` (default: all) on its `split` (default test_official),
    columns = settings. A listed dataset without that split gets a note, never another split."""
    rows = _table_rows(spec, "table8")
    labels = dataset_labels(df, spec, rows)
    entry = spec["tables"]["table8"]
    split = entry.get("split", "test_official")
    wanted = [str(d) for d in entry.get("datasets") or labels]
    cands = main_candidates(df, _target(spec, "table8"))
    valid = _validation_accuracy(df, cands)
    has_split = set(df.loc[(df["stage"] == "eval") & (df["split"] == split), "dataset"])
    notes = _missing_settings(df, rows)
    body = []
    for dataset in wanted:
        if dataset not in has_split or dataset not in cands:
            notes.append(f"{dataset}: no evaluation on a {split} split (its data has no "
                         "identity-disjoint test set; docs/data.md says how to make one)")
            continue
        body.append((f"{labels.get(dataset, dataset)} ({split})", [
            _population_cells(df, spec, r, dataset, cands, split, valid, notes, False)[0]
            for r in rows]))
    notes.append(_candidates_note(cands, labels))
    return Table("table8", "Table 8: generalisation (%) on identity-disjoint test data "
                 f"(split {split} of {', '.join(wanted) or 'no dataset'})", "Dataset (split)",
                 [r.label for r in rows], body, notes)


def transfer_table(df: pd.DataFrame, spec: Mapping[str, Any]) -> Table:
    """Zero-shot transfer: accuracy (%) on the training dataset and on another dataset, with the
    mean, std (ddof=1), min and max over runs."""
    entry = spec["tables"]["transfer"]
    cands_target = _target(spec, "transfer")
    rows = select(df, stage="eval", metric="accuracy", split=spec["split"], transfer=True)
    # The transfer target's |C| is capped by the target dataset's own evaluations.
    cands = main_candidates(df.assign(dataset=df["eval_dataset"]), cands_target)
    rows = rows[rows["candidates"] == rows["eval_dataset"].map(cands)]
    transfer = run_values(rows, RUN + ["eval_dataset", "candidates"])
    source = _generalisation(df, spec, main_candidates(df, cands_target))
    if "rows" in entry:
        wanted = parse_rows(entry["rows"], "report.tables.transfer.rows")
    else:
        wanted = [Row(s, s) for s in sorted(set(rows["setting"]))]
    labels = dataset_labels(df.assign(dataset=df["eval_dataset"]), spec)
    body = []
    for (dataset, target, c), group in transfer.groupby(["dataset", "eval_dataset", "candidates"]):
        for row in wanted:
            v = group[group.index.get_level_values("setting") == row.setting].to_numpy() * PERCENT
            s = restrict(source, dataset, row.setting).to_numpy() * PERCENT
            if not len(v):
                continue
            stats = [s.mean() if len(s) else math.nan,
                     s.std(ddof=1) if len(s) > 1 else math.nan,
                     v.mean(), v.std(ddof=1) if len(v) > 1 else math.nan, v.min(), v.max()]
            body.append((f"{row.label}: {labels.get(dataset, dataset)} → "
                         f"{labels.get(target, target)} (|C| = {c})",
                         [Cell(float(x), kind="num") for x in stats]
                         + [Cell(float(len(v)), kind="int")]))
    columns = ["source mean", "source std", "transfer mean", "transfer std", "transfer min",
               "transfer max", "runs"]
    return Table("transfer", "Zero-shot transfer: accuracy (%) on another dataset",
                 "Setting: trained on → evaluated on", columns, body, [])


TABLES: dict[str, Callable[[pd.DataFrame, Mapping[str, Any]], Table]] = {
    "fig2": fig2_table, "fig3": fig3_table, "table1": table1, "table2": table2,
    "table6": table6, "table7": table7, "table8": table8, "transfer": transfer_table,
}


# -------------------------------------------------------------------------------------- writers


def to_markdown(table: Table) -> str:
    """The table as a GitHub Markdown section: title, table (or a no-data line), notes."""
    lines = [f"### {table.title}", ""]
    if not table.rows or not table.columns:
        lines.append("_No data: the tidy tables have no rows for this table "
                     "(see docs/report.md)._")
    else:
        def line(texts: list[str]) -> str:
            # A bare "|" (as in "|C|") would split the cell.
            return "| " + " | ".join(t.replace("|", "\\|") for t in texts) + " |"

        lines.append(line([table.row_header] + table.columns))
        lines.append("|" + "|".join(["---"] + ["---:"] * len(table.columns)) + "|")
        lines += [line([label] + [c.text() for c in cells]) for label, cells in table.rows]
    if table.notes:
        lines += [""] + [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
          "|": r"\textbar{}", "±": r"$\pm$", "ρ": r"$\rho$", "↑": r"$\uparrow$",
          "↓": r"$\downarrow$", "→": r"$\to$", "×": r"$\times$"}


def _latex(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """The table as a booktabs `tabular` (to `\\input` inside a table environment)."""
    lines = [f"% {table.title}"]
    if not table.rows or not table.columns:
        return "\n".join(lines + ["% No data: the tidy tables have no rows for this table."]) + "\n"
    lines += [r"\begin{tabular}{l" + "r" * len(table.columns) + "}", r"\toprule",
              " & ".join(_latex(h) for h in [table.row_header] + table.columns) + r" \\",
              r"\midrule"]
    for label, cells in table.rows:
        lines.append(" & ".join([_latex(label)] + [_latex(c.text()) for c in cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [f"% {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def to_frame(table: Table) -> pd.DataFrame:
    """The table's numbers, one line per cell: row, column, value, se, n (in the table's units)."""
    records = [{"row": label, "column": column, "value": cell.mean, "se": cell.se, "n": cell.n}
               for label, cells in table.rows for column, cell in zip(table.columns, cells)]
    return pd.DataFrame(records, columns=["row", "column", "value", "se", "n"])


def write(table: Table, out_dir: str | os.PathLike, config: Any = None) -> list[Path]:
    """Writes `<name>.csv`, `.md`, `.tex` and the CSV's provenance; returns the three paths."""
    out_dir = Path(out_dir)
    paths = [out_dir / f"{table.name}{ext}" for ext in (".csv", ".md", ".tex")]
    with provenance.atomic_path(paths[0], suffix=".csv") as tmp:
        to_frame(table).to_csv(tmp, index=False)
    for path, text in zip(paths[1:], (to_markdown(table), to_latex(table))):
        with provenance.atomic_path(path, suffix=path.suffix) as tmp:
            tmp.write_text(text, encoding="utf-8")
    provenance.write_provenance(paths[0], config, title=table.title, notes=table.notes)
    log.info("wrote %s (%d rows) to %s", table.name, len(table.rows), out_dir)
    return paths


def write_tables(df: pd.DataFrame, spec: Mapping[str, Any] | None, out_dir: str | os.PathLike,
                 names: Iterable[str] | None = None) -> list[Path]:
    """Computes and writes every table of `spec["tables"]` (or only `names`); returns the paths.

    A table whose inputs are absent is still written, with a "No data" line and the reason in its
    notes, so that a workflow declaring it as an output never fails for lack of an experiment.
    """
    spec = resolve_spec(spec)
    df = check_frame(df)
    names = list(spec["tables"]) if names is None else list(names)
    paths = []
    for name in names:
        if name not in spec["tables"]:
            raise SpecError(f"report.tables.{name}: not in the spec (has {sorted(spec['tables'])})")
        table = TABLES[name](df, spec)
        paths += write(table, out_dir, config={"table": spec["tables"][name],
                                               **{k: spec[k] for k in DEFAULT_SPEC
                                                  if k not in ("tables", "figures")}})
    return paths
