"""SIGKILL in every stage (data, train, evaluate, language, ETL, report) of one tiny run: Snakemake
retries each killed job, and the final tables equal those of the uninterrupted run `tiny_run`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from conftest import SNAKEFILE, TINY, snakemake_env
from test_workflow_resume import descendants

from emcom.progress import is_cost
from emcom.report.registry import TABLES

# stage -> the adapter script Snakemake runs it as (.snakemake/scripts/tmp*.<script>)
SCRIPTS = {"data": b".data_synthetic.py", "train": b".train.py", "evaluate": b".evaluate.py",
           "language": b".language.py", "etl": b".etl.py", "report": b".report_table.py"}


def running_stage(root: int) -> tuple[str, int] | None:
    """(stage, pid) of the stage script now running under Snakemake (one job at a time)."""
    for pid in descendants(root):
        try:
            cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes()
        except OSError:
            continue
        for stage, script in SCRIPTS.items():
            if script in cmdline:
                return stage, pid
    return None


def working(stage: str, workdir: Path, seen_for: float) -> bool:
    """Whether a stage's job is past its imports: training has a checkpoint, the checkpoint stages
    logged their settings, data and report jobs ran a moment."""
    if stage == "train":
        return any(workdir.glob("results/*/*/*/train/latest.npz"))
    if stage in ("evaluate", "language", "etl"):
        return any("with settings" in p.read_text() for p in workdir.glob(f"logs/{stage}/**/*.log"))
    return seen_for > 0.3


def comparable(path: Path) -> pd.DataFrame:
    df = pd.read_parquet(path)
    return df[~df["metric"].map(is_cost)].reset_index(drop=True)


def comparable_csv(path: Path) -> pd.DataFrame:
    """A report table without what this machine measured of itself (e.g. Table 5's time and
    memory): its rows, columns, seed counts and the paper's figures repeat, the timings do not."""
    df = pd.read_csv(path)
    if TABLES[path.stem].measures_machine:
        measured = ~df["column"].str.startswith("paper:")
        df.loc[measured, ["value", "se"]] = float("nan")
    return df


def test_sigkill_in_every_stage_resumes_to_the_uninterrupted_tables(tmp_path, tiny_run,
                                                                    jax_cache):
    workdir = tmp_path / "run"
    workdir.mkdir()
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory",
           str(workdir), "--cores", "1", "--retries", "1", "--configfile", str(TINY)]
    killed, first_seen = {}, {}
    with subprocess.Popen(cmd, cwd=workdir, env=snakemake_env(jax_cache), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        try:
            while proc.poll() is None:
                found = running_stage(proc.pid)
                if found and found[0] not in killed:
                    stage, pid = found
                    first_seen.setdefault(pid, time.monotonic())
                    if working(stage, workdir, time.monotonic() - first_seen[pid]):
                        os.kill(pid, signal.SIGKILL)
                        killed[stage] = pid
                time.sleep(0.02)
            out = proc.stdout.read()
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, out[-5000:]
    assert sorted(killed) == sorted(SCRIPTS), (killed, out[-3000:])

    tables = sorted(p.relative_to(tiny_run) for p in tiny_run.glob("results/**/*.parquet"))
    assert tables == sorted(p.relative_to(workdir) for p in workdir.glob("results/**/*.parquet"))
    for rel in tables:
        pd.testing.assert_frame_equal(comparable(workdir / rel), comparable(tiny_run / rel),
                                      obj=str(rel))
    for rel in tiny_run.glob("results/report/tables/*.csv"):
        name = rel.relative_to(tiny_run)
        pd.testing.assert_frame_equal(comparable_csv(workdir / name), comparable_csv(rel),
                                      obj=str(name))
    # No sidecar outlives the file it describes; no staging or temporary is left.
    sidecars = sorted(p.relative_to(workdir) for p in workdir.glob("**/*.provenance.json"))
    assert sidecars == sorted(p.relative_to(tiny_run) for p in tiny_run.glob("**/*.provenance.json"))
    for rel in sidecars:
        assert (workdir / str(rel).removesuffix(".provenance.json")).exists(), rel
    leftovers = [p for p in workdir.glob("**/.*") if ".snakemake" not in p.parts]
    assert leftovers == [], leftovers
