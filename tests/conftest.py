"""Shared helpers of the workflow tests: running Snakemake on the repository's Snakefile in a
temporary working directory, and reading its dry-run plan."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import emcom.experiments
import emcom.names
from emcom.progress import is_cost
from emcom.report import TABLE_FORMATS

REPO = Path(__file__).resolve().parent.parent
SNAKEFILE = REPO / "Snakefile"
CONFIGS = Path(__file__).resolve().parent / "configs"
TINY = CONFIGS / "tiny.yaml"


def snakemake_env(jax_cache: Path | None = None) -> dict[str, str]:
    """The environment of a Snakemake subprocess: CPU JAX, and optionally a shared compilation
    cache (jobs of different test folders then compile each XLA program once)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    if jax_cache is not None:
        env["JAX_COMPILATION_CACHE_DIR"] = str(jax_cache)
    return env


def snakemake(workdir: Path, *args: str, config: Path | None = TINY, check: bool = True,
              timeout: float = 900, jax_cache: Path | None = None, cwd: Path | None = None,
              python: str = sys.executable) -> subprocess.CompletedProcess:
    """Runs `python -m snakemake` on the repository's Snakefile in `workdir` with `config` (None:
    the embedded default). Output is captured; a failure shows it."""
    cmd = [python, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
           "--directory", str(workdir), *args]
    if config is not None:
        cmd += ["--configfile", str(config)]
    proc = subprocess.run(cmd, cwd=cwd or workdir, env=snakemake_env(jax_cache), text=True,
                          capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-5000:]}\n"
                    f"{proc.stderr[-8000:]}")
    return proc


def planned_jobs(output: str) -> dict[str, int]:
    """{rule: job count} from the "Job stats" table of a dry run ({} when nothing is to be done)."""
    match = re.search(r"Job stats:\n(.*?)\n\s*total\s+\d+", output, re.S)
    if match is None:
        if "Nothing to be done" in output:
            return {}
        raise AssertionError(f"no job stats in the dry-run output:\n{output[-3000:]}")
    counts = {}
    for line in match.group(1).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def dry_run(workdir: Path, *args: str, **kwargs) -> dict[str, int]:
    proc = snakemake(workdir, "--dry-run", *args, **kwargs)
    return planned_jobs(proc.stdout + proc.stderr)


def load_config(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def runs(config: dict) -> list[tuple[str, str, int]]:
    """Every (dataset, setting, seed) of a config, as rules/common.smk expands them."""
    out = []
    for setting, exp in emcom.experiments.expand(config["experiments"]).items():
        seeds = exp["seeds"]
        seeds = range(seeds) if isinstance(seeds, int) else seeds
        out += [(d, setting, s) for d in exp["datasets"] for s in seeds]
    return out


@pytest.fixture(scope="session")
def jax_cache(tmp_path_factory) -> Path:
    """A JAX compilation cache shared by every Snakemake run of the session (and across sessions
    where JAX_COMPILATION_CACHE_DIR is set, as .ci/run does)."""
    shared = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    return Path(shared) if shared else tmp_path_factory.mktemp("jax-cache")


@pytest.fixture(scope="session")
def python_without_emcom(tmp_path_factory) -> str:
    """An interpreter that has the dependencies but not emcom, as the conda environment of
    `--sdm conda` (envs/emcom.yaml): a venv that sees this one's site-packages as plain folders,
    so that the emcom install there (a .pth file) is not processed."""
    venv = tmp_path_factory.mktemp("no-emcom") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    paths = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    Path(site, "dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(paths)))
    probe = subprocess.run([python, "-c", "import jax, snakemake; import emcom"], cwd=venv,
                           capture_output=True, text=True)
    assert "No module named 'emcom'" in probe.stderr, probe.stderr
    return python


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, jax_cache, python_without_emcom) -> Path:
    """A working directory where the tiny config ran end to end (locally), with an interpreter
    where emcom is not installed: every rule must import this checkout's emcom by itself."""
    workdir = tmp_path_factory.mktemp("tiny")
    snakemake(workdir, "--cores", "2", jax_cache=jax_cache, python=python_without_emcom)
    return workdir


def require_slurm() -> None:
    """Skips when no SLURM cluster answers, except where EMCOM_SLURM=1 (set by .ci/run after it
    started one): there a missing cluster is a failure, never a skip."""
    ok = shutil.which("sinfo") is not None and subprocess.run(
        ["sinfo", "-h"], capture_output=True, timeout=30).returncode == 0
    if ok:
        return
    if os.environ.get("EMCOM_SLURM") == "1":
        pytest.fail("EMCOM_SLURM=1 but `sinfo` does not answer: the SLURM cluster is not running")
    pytest.skip("no SLURM cluster (sinfo does not answer); .ci/run starts one")


# ---------------------------------------------------------------------- checks of a tiny run

STAGES = emcom.names.CHECKPOINT_STAGES  # the per-checkpoint stages = their file names


def train_job_file(workdir: Path, kind: str, dataset: str, setting: str,
                   seed: int) -> tuple[Path, int]:
    """The log or benchmark file (`kind`: logs, benchmarks) of the one training job that trained
    `seed`, named seed<n> or, for a job of several seeds, seed<a>+<b>+..., and its seed count."""
    found = [(p, len(seeds)) for p in (workdir / kind / "train" / dataset / setting).glob("seed*")
             if str(seed) in (seeds := p.stem.removeprefix("seed").split("+"))]
    assert len(found) == 1, (kind, dataset, setting, seed, found)
    return found[0]


def check_tiny_outputs(workdir: Path, config_path: Path = TINY) -> None:
    """Asserts that a finished run of `config_path` in `workdir` wrote every stage's tidy table,
    labelled with its run, and the report's tables and figures, with Table 2's "1 pair" cell equal
    to the mean over seeds of the eval stage's test accuracy."""
    config = load_config(config_path)
    for dataset, setting, seed in runs(config):
        rel = f"results/{dataset}/{setting}/seed{seed}"
        root = workdir / rel
        exp = config["experiments"][setting]
        train = pd.read_parquet(root / "train/train_metrics.parquet")
        assert (train[["dataset", "setting", "seed"]].drop_duplicates().values.tolist()
                == [[dataset, setting, seed]])
        assert train["step"].max() == config["train"]["training"]["steps"]
        assert (root / "train/best.npz").stat().st_size > 0
        assert (root / "train/latest.npz").exists()
        for stage in exp.get("stages", STAGES):
            df = pd.read_parquet(root / f"{stage}.parquet")
            assert len(df) and set(df["stage"]) == {stage}, (rel, stage)
            assert set(df["eval_dataset"]) == {dataset}
            assert (root / f"{stage}.csv").exists()
        for target in exp.get("transfer", []):
            df = pd.read_parquet(root / f"transfer/{target}.parquet")
            assert set(df["eval_dataset"]) == {target} and set(df["dataset"]) == {dataset}
        log, _ = train_job_file(workdir, "logs", dataset, setting, seed)
        assert "rule train" in log.read_text()
        train_job_file(workdir, "benchmarks", dataset, setting, seed)

    tables = workdir / "results/report/tables"
    for name in config["report"]["tables"]:
        for ext in TABLE_FORMATS:
            assert (tables / f"{name}{ext}").stat().st_size > 0, (name, ext)
    main = config["report"]["main_candidates"]
    seeds = [(d, s) for d, setting, s in runs(config) if setting == "1pair"]
    evals = pd.concat(pd.read_parquet(workdir / f"results/{d}/1pair/seed{s}/eval.parquet")
                      for d, s in seeds)
    acc = evals[(evals["metric"] == "accuracy") & (evals["split"] == "test")
                & (evals["candidates"] == main) & (evals["listener"] >= 0)]
    expected = 100 * acc.groupby("seed")["value"].mean().mean()
    cells = pd.read_csv(tables / "table2.csv")
    gen = cells[(cells["row"] == "1 pair") & cells["column"].str.contains("Gen")]
    assert len(gen) == 1 and math.isclose(gen["value"].iloc[0], expected, rel_tol=1e-9), gen
    if "table5" in config["report"]["tables"]:  # the job columns, from the benchmark files
        wall = []
        for d, s in seeds:
            path, in_job = train_job_file(workdir, "benchmarks", d, "1pair", s)
            wall.append(pd.read_csv(path, sep="\t")["s"].mean() / 60 / in_job)
        cost = pd.read_csv(tables / "table5.csv")
        cell = cost[cost["row"].str.startswith("1 pair") & (cost["column"] == "job: wall (min)")]
        assert math.isclose(cell["value"].iloc[0], sum(wall) / len(wall), rel_tol=1e-9), cell
    assert gen["n"].iloc[0] == len(seeds)
    assert "1 pair" in (tables / "table2.md").read_text()
    transfer = pd.read_csv(tables / "transfer.csv")
    assert len(transfer) and transfer["value"].notna().any()
    figures = workdir / "results/report/figures"
    for stem in ("fig1_training", "fig4_etl"):
        assert (figures / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (figures / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
        assert (figures / f"{stem}.rst").read_text().strip()


# ------------------------------------------------------------- killed and resumed training

RESUME_RUN = "results/tiny/1pair/seed0/train"
RESUME_TARGET = f"{RESUME_RUN}/best.npz"


def resume_config(path: Path) -> Path:
    """tiny.yaml with a training long enough (seconds) to be killed between two checkpoints, one
    job per seed."""
    config = load_config(TINY)
    # A job per seed: the kill and resume of rule `train` (tiny_run has a job of two seeds).
    config["experiments"]["1pair"].pop("train")
    config["train"]["training"].update(steps=20000, steps_per_call=100, log_every=200,
                                       eval_every=10000, checkpoint_every=200)
    return write_config(path, config)


@pytest.fixture(scope="session")
def reference_training(tmp_path_factory, jax_cache) -> Path:
    """The working directory of an uninterrupted local run of RESUME_TARGET."""
    workdir = tmp_path_factory.mktemp("uninterrupted")
    config = resume_config(workdir / "resume.yaml")
    snakemake(workdir, RESUME_TARGET, "--cores", "1", config=config, jax_cache=jax_cache)
    return workdir


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Polls `predicate()` until it returns a true value (returned) or `timeout` seconds pass."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def kill_training_and_finish(workdir: Path, config: Path, kill, *args: str, cwd: Path,
                             jax_cache: Path) -> int:
    """Runs Snakemake for RESUME_TARGET in `workdir`; once the first checkpoint exists, calls
    `kill()` to end the training attempt; waits for Snakemake (which must retry and succeed) and
    returns the step the last attempt resumed from (0: it started afresh)."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory",
           str(workdir), RESUME_TARGET, *args, "--configfile", str(config)]
    with subprocess.Popen(cmd, cwd=cwd, env=snakemake_env(jax_cache), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        try:
            wait_for(lambda: (workdir / RESUME_RUN / "latest.npz").exists(), 600,
                     "the first checkpoint")
            kill(proc)
            out, _ = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, out[-5000:]
    return resumed_step(workdir)


def resumed_step(workdir: Path) -> int:
    """The step the (last) training attempt resumed from, from its log (0: started afresh)."""
    run = RESUME_RUN.removeprefix("results/").removesuffix("/train")
    log = (workdir / f"logs/train/{run}.log").read_text()
    match = re.search(r"resuming from \S+ at step (\d+)", log)
    return int(match.group(1)) if match else 0


def assert_same_training(workdir: Path, reference: Path) -> None:
    """The run in `workdir` ended with the same parameters and metrics as `reference`."""
    got = np.load(workdir / RESUME_TARGET, allow_pickle=False)
    want = np.load(reference / RESUME_TARGET, allow_pickle=False)
    assert sorted(got.files) == sorted(want.files)
    for name in want.files:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    keys = ["stage", "split", "candidates", "speaker", "listener", "metric", "step"]
    a, b = (pd.read_parquet(d / f"{RESUME_RUN}/train_metrics.parquet") for d in (workdir, reference))
    a, b = (df[~df["metric"].map(is_cost)].sort_values(keys).reset_index(drop=True)
            for df in (a, b))
    pd.testing.assert_frame_equal(a, b)
