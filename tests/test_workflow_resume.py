"""A training job killed mid-training (as by a scheduler) is retried by Snakemake and resumes from
its last checkpoint, ending with the same numbers as an uninterrupted run (local executor; the
SLURM version is in test_slurm.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from conftest import assert_same_training, kill_training_and_finish, resume_config, wait_for


def descendants(pid: int) -> list[int]:
    """The pids of the living descendants of process `pid` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # the process ended meanwhile
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def training_process(root: int) -> int | None:
    """The pid of the training script (Snakemake runs it as .snakemake/scripts/tmp*.train.py)."""
    for pid in descendants(root):
        try:
            cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes()
        except OSError:
            continue
        if b".train.py" in cmdline:
            return pid
    return None


def test_killed_training_resumes_from_its_checkpoint(tmp_path, reference_training, jax_cache):
    workdir = tmp_path / "run"
    workdir.mkdir()

    def kill(proc):
        pid = wait_for(lambda: training_process(proc.pid), 10, "the training process")
        os.kill(pid, signal.SIGKILL)  # what a scheduler's time limit ends with

    step = kill_training_and_finish(workdir, resume_config(tmp_path / "resume.yaml"), kill,
                                    "--cores", "1", cwd=workdir, jax_cache=jax_cache)
    assert 0 < step < 20000, step  # > 0 only in a second attempt: the first one started afresh
    assert_same_training(workdir, reference_training)
