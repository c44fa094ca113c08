"""The population tables (paper §4): Table 2 (populations, imitation, vote), Table 6 (reset),
Table 8 (identity-disjoint test data) and zero-shot transfer."""

from __future__ import annotations

import math
from typing import Mapping

import pandas as pd

from emcom.report.select import (
    PERCENT, RUN, best_seed, candidates_note, dataset_labels, generalisation, main_candidates,
    missing_settings, restrict, robustness_drops, run_values, seed_cell, select, table_rows,
    validation_accuracy)
from emcom.report.spec import BEST, VOTE, ReportSpec, Row, parse_rows
from emcom.report.table import Cell, Table


def population_cells(df: pd.DataFrame, spec: ReportSpec, row: Row, dataset: str,
                      cands: Mapping[str, int], split: str, valid: pd.Series,
                      notes: list[str], robustness: bool) -> list[Cell]:
    """[generalisation(, robustness)] of one row for one dataset."""
    vote = row.kind == VOTE
    gen = run_values(select(df, stage="eval", metric="accuracy_vote" if vote else "accuracy",
                            split=split, candidates=cands))
    series = [gen] + ([robustness_drops(df, spec.robustness, cands, split, vote)] if robustness else [])
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


def population_table(df: pd.DataFrame, spec: ReportSpec, name: str, title: str) -> Table:
    rows = table_rows(spec, name)
    labels = dataset_labels(df, spec, rows)
    cands = main_candidates(df, spec.target(name))
    split = spec.split
    valid = validation_accuracy(df, cands)
    datasets = [d for d in labels if d in cands]
    columns = [f"{labels[d]} {c}" for d in datasets for c in ("Gen. ↑", "Rob. ↓")]
    notes = missing_settings(df, rows)
    body = []
    for row in rows:
        cells = []
        for dataset in datasets:
            cells += population_cells(df, spec, row, dataset, cands, split, valid, notes, True)
        body.append((row.label, cells))
    notes.append(candidates_note(cands, labels) + f"; robustness = {spec.robustness} "
                 "accuracy drop under noise (%), lower is better")
    return Table(name, title, "Setting", columns, body, notes)


def table2(df: pd.DataFrame, spec: ReportSpec) -> Table:
    """Settings x (generalisation, robustness) per dataset, with best-of and vote rows."""
    return population_table(df, spec, "table2", "Table 2: generalisation and robustness (%) "
                             "of populations, imitation and vote")


def table6(df: pd.DataFrame, spec: ReportSpec) -> Table:
    """Table 2's layout for the reset study."""
    return population_table(df, spec, "table6", "Table 6: generalisation and robustness (%) "
                             "with listener reset")


def table8(df: pd.DataFrame, spec: ReportSpec) -> Table:
    """Generalisation (%) on identity-disjoint test data (paper App. B.7: the official CelebA
    split): rows = the entry's `datasets` (default: all) on its `split` (default test_official),
    columns = settings. A listed dataset without that split gets a note, never another split."""
    rows = table_rows(spec, "table8")
    labels = dataset_labels(df, spec, rows)
    entry = spec.tables["table8"]
    split = entry.get("split", "test_official")
    wanted = [str(d) for d in entry.get("datasets") or labels]
    cands = main_candidates(df, spec.target("table8"))
    valid = validation_accuracy(df, cands)
    has_split = set(df.loc[(df["stage"] == "eval") & (df["split"] == split), "dataset"])
    notes = missing_settings(df, rows)
    body = []
    for dataset in wanted:
        if dataset not in has_split or dataset not in cands:
            notes.append(f"{dataset}: no evaluation on a {split} split (its data has no "
                         "identity-disjoint test set; docs/data.md says how to make one)")
            continue
        body.append((f"{labels.get(dataset, dataset)} ({split})", [
            population_cells(df, spec, r, dataset, cands, split, valid, notes, False)[0]
            for r in rows]))
    notes.append(candidates_note(cands, labels))
    return Table("table8", "Table 8: generalisation (%) on identity-disjoint test data "
                 f"(split {split} of {', '.join(wanted) or 'no dataset'})", "Dataset (split)",
                 [r.label for r in rows], body, notes)


def transfer_table(df: pd.DataFrame, spec: ReportSpec) -> Table:
    """Zero-shot transfer as the paper reports it (Sec. 3.2): accuracy (%) on the training dataset
    and on another dataset, mean and std (ddof=1) over runs, and the two most different runs: the
    seeds of the lowest and highest zero-shot accuracy, and the gap between their source
    accuracies (the paper: similar source accuracy, very different transfer)."""
    entry = spec.tables["transfer"]
    cands_target = spec.target("transfer")
    rows = select(df, stage="eval", metric="accuracy", split=spec.split, transfer=True)
    # The transfer target's |C| is capped by the target dataset's own evaluations.
    cands = main_candidates(df.assign(dataset=df["eval_dataset"]), cands_target)
    rows = rows[rows["candidates"] == rows["eval_dataset"].map(cands)]
    transfer = run_values(rows, RUN + ["eval_dataset", "candidates"])
    source = generalisation(df, spec, main_candidates(df, cands_target))
    if "rows" in entry:
        wanted = parse_rows(entry["rows"], "report.tables.transfer.rows")
    else:
        wanted = [Row(s, s) for s in sorted(set(rows["setting"]))]
    labels = dataset_labels(df.assign(dataset=df["eval_dataset"]), spec)
    body = []
    for (dataset, target, c), group in transfer.groupby(["dataset", "eval_dataset", "candidates"]):
        for row in wanted:
            mine = group[group.index.get_level_values("setting") == row.setting]
            by_seed = pd.Series(mine.to_numpy() * PERCENT,
                                index=mine.index.get_level_values("seed"))
            src = restrict(source, dataset, row.setting)
            src = pd.Series(src.to_numpy() * PERCENT, index=src.index.get_level_values("seed"))
            if not len(by_seed):
                continue
            v, s = by_seed.to_numpy(), src.to_numpy()
            low, high = by_seed.idxmin(), by_seed.idxmax()
            gap = abs(src.get(high, math.nan) - src.get(low, math.nan))
            stats = [s.mean() if len(s) else math.nan,
                     s.std(ddof=1) if len(s) > 1 else math.nan,
                     v.mean(), v.std(ddof=1) if len(v) > 1 else math.nan, v.min(), v.max()]
            body.append((f"{row.label}: {labels.get(dataset, dataset)} → "
                         f"{labels.get(target, target)} (|C| = {c})",
                         [Cell(float(x), kind="num") for x in stats]
                         + [Cell(float(len(v)), kind="int"), Cell(float(low), kind="int"),
                            Cell(float(high), kind="int"), Cell(float(gap), kind="num")]))
    columns = ["source mean", "source std", "transfer mean", "transfer std", "transfer min",
               "transfer max", "runs", "seed of min", "seed of max", "source gap of min/max"]
    return Table("transfer", "Zero-shot transfer: accuracy (%) on another dataset",
                 "Setting: trained on → evaluated on", columns, body, [])
