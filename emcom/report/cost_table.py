"""Table 5 (App. B.2), the computational cost of training as measured by this run: per setting and
training dataset, the training job's speed, step time, peak memory, time in training updates and
device (the train stage's cost rows, `emcom.progress.COST_METRICS`), its wall time and peak
resident set as Snakemake's benchmark file recorded them (`emcom.progress.JOB_METRICS`), beside
the paper's Table 5 for the same population size."""

from __future__ import annotations

import math
import os
from typing import Iterable, Sequence

import pandas as pd

from emcom.progress import DEVICE, JOB_METRICS, POPULATION, train_row
from emcom.report.select import (
    dataset_labels, missing_settings, restrict, run_values, seed_cell, table_rows)
from emcom.report.spec import ReportSpec
from emcom.report.table import Cell, Table

# The paper's Table 5 on a V100 (paper.md §4): N -> (peak GPU memory GiB, step ms, training h);
# block A is ImageNet (900k steps), block B CelebA (300k steps), by the paper's step arithmetic.
PAPER_V100 = {"ImageNet": {1: (0.29, 25, 6.3), 10: (0.71, 223, 55.7), 50: (2.63, 1089, 272.1)},
              "CelebA": {1: (0.33, 107, 8.9), 10: (0.75, 293, 24.4), 50: (2.60, 1408, 117.3)}}
COLUMNS = ["N", "steps/s", "step (ms)", "peak memory (MiB)", "training (min)",
           "job: wall (min)", "job: max RSS (MiB)", "paper: step (ms)", "paper: memory (GiB)"]


def benchmark_rows(files: Iterable[Sequence]) -> pd.DataFrame:
    """Tidy train-stage rows (`JOB_METRICS`) from Snakemake's benchmark files of training jobs,
    given as (path, dataset, setting, seed[, seeds the job trained]); a job of k seeds
    (`training.seeds_per_job`) counts 1/k of its wall and CPU time per run. A file that does not
    exist (a run trained outside Snakemake) gives no rows. Raises ValueError naming a file
    without Snakemake's columns."""
    rows = []
    for path, dataset, setting, seed, *in_job in files:
        if not os.path.exists(path):
            continue
        bench = pd.read_csv(path, sep="\t", na_values=["NA", "-"])
        missing = sorted(set(JOB_METRICS) - set(bench.columns))
        if missing or not len(bench):
            raise ValueError(f"{path}: not a Snakemake benchmark file (no rows, or no column(s) "
                             f"{missing})")
        for column, metric in JOB_METRICS.items():  # `repeat` rows: their mean
            value = bench[column].mean()
            if column != "max_rss":  # time is shared by the job's runs, its memory is not
                value /= in_job[0] if in_job else 1
            rows.append({"dataset": dataset, "setting": setting, "seed": int(seed),
                         **train_row(metric, value, -1)})
    return pd.DataFrame(rows)


def _per_run(df: pd.DataFrame, metric: str, how: str) -> pd.Series:
    return run_values(df[(df["stage"] == "train") & (df["metric"] == metric)], how=how)


def table5(df: pd.DataFrame, spec: ReportSpec) -> Table:
    """A row per (row of the spec, training dataset). A run's speed is the median of its logged
    steps/s (one compiled call each), its peak memory the largest logged, its training time the
    last logged time in training updates (every attempt; evaluation and checkpoints excluded);
    cells are mean ± s.e.m. over seeds. Step time is 1000 / steps/s of the same cell."""
    rows = table_rows(spec, "table5")
    labels = dataset_labels(df, spec, rows)
    speed = _per_run(df, "steps_per_second", "median")
    memory = _per_run(df, "peak_memory_mib", "max")
    seconds = _per_run(df, "train_seconds", "max")
    size = _per_run(df, POPULATION, "max")
    wall = _per_run(df, JOB_METRICS["s"], "max") / 60
    rss = _per_run(df, JOB_METRICS["max_rss"], "max")
    devices = df[(df["stage"] == "train") & df["metric"].str.startswith(DEVICE)]
    notes, body = missing_settings(df, rows), []
    for row in rows:
        for dataset, dlabel in labels.items():
            s = restrict(speed, dataset, row.setting)
            if not len(s):
                continue
            n = restrict(size, dataset, row.setting)
            pairs = int(n.max()) if len(n) else None
            cell = seed_cell(s, 1.0)
            step_ms = Cell(1000 / cell.mean, math.nan, len(s), kind="num")
            minutes = restrict(seconds, dataset, row.setting) / 60
            paper = [PAPER_V100[d].get(pairs) for d in PAPER_V100]
            body.append((f"{row.label} ({dlabel})", [
                Cell(pairs if pairs else math.nan, kind="int"), cell, step_ms,
                seed_cell(restrict(memory, dataset, row.setting), 1.0), seed_cell(minutes, 1.0),
                seed_cell(restrict(wall, dataset, row.setting), 1.0),
                seed_cell(restrict(rss, dataset, row.setting), 1.0),
                Cell(kind="num") if paper[0] is None else Cell(paper[0][1], kind="int"),
                Cell(kind="num") if paper[0] is None else Cell(paper[0][0], kind="num")]))
            if paper[1] is not None:
                notes.append(f"{row.label} ({dlabel}): the paper's CelebA block for N = {pairs}: "
                             f"{paper[1][1]} ms per step, {paper[1][0]} GiB")
            unbenched = len(s) - len(restrict(wall, dataset, row.setting))
            if unbenched:
                notes.append(f"{row.label} ({dlabel}): {unbenched} of {len(s)} runs have no "
                             "Snakemake benchmark file (trained outside Snakemake?)")
            kinds = sorted(set(devices[(devices["dataset"] == dataset)
                                       & (devices["setting"] == row.setting)]["metric"]))
            notes.append(f"{row.label} ({dlabel}): trained on "
                         f"{', '.join(k[len(DEVICE):] for k in kinds) or 'an unrecorded device'}")
    if any(r[1][0].mean not in (1, 10, 50) for r in body):
        notes.append("paper columns n/a: the paper measured N = 1, 10 and 50 only")
    notes.append("Paper: Table 5, V100, the ImageNet block (900k steps); memory there is peak GPU "
                 "memory, here the device's peak bytes in use on a GPU and the job's peak "
                 "resident set on a CPU. Step time here is per compiled call of steps_per_call "
                 "steps, divided by them. Job columns: Snakemake's benchmark file of the training "
                 "job (wall time and peak resident set of its last attempt, including imports, "
                 "compilation, evaluation and checkpoints). A job that trained k seeds together "
                 "(training.seeds_per_job) charges each run 1/k of its time: training time, step "
                 "time and the job columns.")
    return Table("table5", "Table 5: computational cost of training, measured", "Setting",
                 COLUMNS, body, notes)

