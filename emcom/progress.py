"""What a training run has logged so far, and where it resumes from.

`TrainLog` keeps the tidy rows of a run (stage "train") and mirrors them into
`train_progress.jsonl` as they are made, so that a killed job loses nothing it logged before its
last checkpoint. `Checkpointer` writes latest.npz (the resume point, with what the log needs to
carry on) and best.npz (lowest validation loss), and restores a run from latest.npz.
`claim_resume_point` decides whether a folder's resume point belongs to the run about to start.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from emcom import checkpoint
from emcom.config import TrainConfig
from emcom.provenance import atomic_path, write_json
from emcom.step import StepMetrics

log = logging.getLogger(__name__)

TRAIN_METRICS = StepMetrics._fields
# What a run costs (Table 5), logged beside the metrics; they differ between identical runs.
COST_METRICS = ("steps_per_second", "train_seconds", "peak_memory_mib")
DEVICE = "device/"  # + the device kind: the metric of a row naming what an attempt trained on
POPULATION = "num_speakers"  # logged with the device row: the N of the paper's Table 5
# What Snakemake's benchmark file of a training job adds (emcom.report.cost_table reads them):
# its benchmark column -> the train-stage metric. Snakemake writes max_rss in MiB.
JOB_METRICS = {"s": "job_seconds", "max_rss": "job_max_rss_mib", "cpu_time": "job_cpu_seconds"}


def is_cost(metric: str) -> bool:
    """Whether a train row describes the run's cost (time, memory, device, N), not its learning:
    such rows differ between identical runs, or repeat once per attempt of a resumed run."""
    return (metric in COST_METRICS or metric in JOB_METRICS.values() or metric == POPULATION
            or metric.startswith(DEVICE))


def train_row(metric: str, value: float, step: int, split: str = "train", candidates: int = -1,
              eval_dataset: str = "") -> dict:
    return {"stage": "train", "eval_dataset": eval_dataset, "split": split,
            "candidates": int(candidates), "speaker": -1, "listener": -1, "metric": metric,
            "value": float(value), "step": int(step)}


class TrainLog:
    """The rows of a run, mirrored to `path` (None: kept in memory only).

    Per-step metrics accumulate in a window until the next log row, which holds their means; the
    window travels in the checkpoint so that a resumed run logs the same means as an
    uninterrupted one.
    """

    def __init__(self, path: Path | None, eval_dataset: str, candidates: int):
        self.path, self.eval_dataset, self.candidates = path, eval_dataset, candidates
        self.rows: list[dict] = []
        self.window: list[np.ndarray] = []
        self.seconds = 0.0  # time in training updates so far, every attempt of the run included
        self.attempt: list[tuple[str, float]] = []  # (metric, value) rows to log once per attempt

    def start(self, resumed_step: int | None, window: Iterable = (), seconds: float = 0.0) -> None:
        """Begins a fresh log, or keeps the rows up to `resumed_step`, its window and time."""
        if resumed_step is not None:
            self.rows = _read_progress(self.path, resumed_step)
            self.window = [np.asarray(w, np.float32) for w in window]
            self.seconds = float(seconds)
        elif self.path is not None:
            self.path.unlink(missing_ok=True)
        if self.path is not None:
            with atomic_path(self.path, suffix=".jsonl") as tmp:
                tmp.write_text("".join(json.dumps(r) + "\n" for r in self.rows))

    def accumulate(self, metrics: np.ndarray) -> None:
        """Adds a compiled call's per-step metrics ((len(TRAIN_METRICS), k) array)."""
        self.window.append(metrics)

    def train_rows(self, step: int, steps_per_second: float, peak_mib: float) -> list[dict]:
        """The means of the window's finite values as rows at `step`, then the cost rows
        (`COST_METRICS`: the last call's speed, `seconds`, `peak_mib`); empties the window."""
        w = np.concatenate(self.window, axis=1)
        rows = []
        for name, values in zip(TRAIN_METRICS, w):
            finite = values[np.isfinite(values)]
            if finite.size:
                rows.append(self.row(name, finite.mean(), step))
        rows += [self.row(name, value, step) for name, value in zip(
            COST_METRICS, (steps_per_second, self.seconds, peak_mib))]
        rows += [self.row(name, value, step) for name, value in self.attempt]
        self.attempt = []
        self.window = []
        return rows

    def row(self, metric: str, value: float, step: int, split: str = "train",
            candidates: int | None = None) -> dict:
        c = self.candidates if candidates is None else candidates
        return train_row(metric, value, step, split, c, self.eval_dataset)

    def add(self, rows: list[dict]) -> None:
        self.rows += rows
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write("".join(json.dumps(r) + "\n" for r in rows))
                f.flush()

    def carry(self) -> list:
        """The window as JSON (for the checkpoint)."""
        return [w.tolist() for w in self.window]


class Checkpointer:
    """latest.npz (resume point) and best.npz of a run in `out` (None: nothing is written)."""

    def __init__(self, out: Path | None, cfg: TrainConfig):
        self.out, self.cfg = out, cfg
        self.best_loss, self.best_step = math.inf, -1

    @property
    def latest(self) -> Path | None:
        return None if self.out is None else self.out / "latest.npz"

    def restore(self, feature_dim: int, at_step: int | None = None) -> checkpoint.Checkpoint | None:
        """The run's resume point (with `at_step`: its generation at that step), or None; raises
        ValueError if it holds another run."""
        ckpt = checkpoint.load_resume(self.latest) if self.out is not None else None
        source = self.latest
        if ckpt is not None and at_step is not None and ckpt.step != at_step:
            source = checkpoint.previous_of(self.latest)
            ckpt = checkpoint.load_generation(source, at_step)
        if ckpt is None:
            return None
        if ckpt.config != self.cfg or ckpt.feature_dim != feature_dim:
            raise ValueError(f"{source} holds a run with another config or input size; "
                             "use a fresh out_dir")
        if source != self.latest:
            # The generation resumed from becomes the resume point: the next save must keep it
            # as the previous one, in case the job dies again before all its runs saved.
            os.replace(source, self.latest)
        self.best_loss = ckpt.meta.get("best_valid_loss", math.inf)
        self.best_step = ckpt.meta.get("best_step", -1)
        log.info("resuming from %s at step %d", source, ckpt.step)
        return ckpt

    def validated(self, state: Any, step: int, loss: float) -> None:
        """Keeps `state` as best.npz if its validation loss is the lowest so far."""
        if loss < self.best_loss:
            self.best_loss, self.best_step = loss, step
            if self.out is not None:
                checkpoint.save(self.out / "best.npz", state, self.cfg,
                                {"best_valid_loss": loss, "best_step": step})

    def save(self, state: Any, step: int, train_log: TrainLog) -> None:
        if self.out is not None:
            checkpoint.save(self.latest, state, self.cfg, {
                "best_valid_loss": self.best_loss, "best_step": self.best_step,
                "data_step": step, "log_window": train_log.carry(),
                "train_seconds": train_log.seconds}, keep_previous=True)


def claim_resume_point(out: Path, identity: dict) -> None:
    """Keeps `out`'s resume point for a retry of the same run (same `identity`: config and data),
    discards one left by a run with another config or other data, and records `identity`."""
    latest = out / "latest.npz"
    marker = out / "resume.json"
    generations = (latest, checkpoint.previous_of(latest))
    identity = json.loads(json.dumps(identity))
    if any(g.exists() for g in generations):
        try:
            same = json.loads(marker.read_text()) == identity
        except (OSError, ValueError) as e:  # absent, or torn by a kill: the resume point is unknown
            log.warning("%s unreadable (%s): not resuming", marker, e)
            same = False
        if same:
            log.info("%s belongs to this run (a retry): resuming from it", latest)
        else:
            log.info("%s was trained on another config or data: training from scratch", latest)
            for stale in generations:
                stale.unlink(missing_ok=True)
    write_json(marker, identity)


def _read_progress(path: Path | None, upto: int) -> list[dict]:
    """The logged rows up to step `upto`. A torn last line (the job was killed mid-append) is
    dropped with a warning; damage anywhere else is a CheckpointError naming file and line."""
    if path is None or not path.exists():
        return []
    lines = path.read_text(errors="replace").splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            keep = row["step"] <= upto
        except (json.JSONDecodeError, TypeError, KeyError) as e:
            if number == len(lines):
                log.warning("%s: dropping torn last line %d (%s)", path, number, e)
                break
            raise checkpoint.CheckpointError(f"{path}: line {number} is not a progress row "
                                             f"({type(e).__name__}: {e})") from e
        if keep:
            rows.append(row)
    return rows
