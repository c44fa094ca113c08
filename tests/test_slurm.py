"""The workflow on a real SLURM cluster through the shipped profile (`--profile slurm`, typed at the
repository root), and a training job killed mid-training (SIGTERM, as at a time limit) that
Snakemake resubmits and that resumes from its checkpoint.

Needs a running cluster (`sinfo` answers), e.g. `bash ../shared/ci/start-local-slurm.sh --account
emcom`; .ci/run starts one and sets EMCOM_SLURM=1, under which a missing cluster fails the tests.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from conftest import (REPO, TINY, assert_same_training, check_tiny_outputs,
                      kill_training_and_finish, load_config, require_slurm, resume_config, runs,
                      snakemake, wait_for)

# Status checks every few seconds instead of the profile's 40 s (jobs here take seconds).
FAST_STATUS = ("--slurm-init-seconds-before-status-checks", "2",
               "--seconds-between-status-checks", "2")


@pytest.fixture(autouse=True)
def slurm_cluster():
    require_slurm()


def test_tiny_config_runs_through_the_slurm_profile(tmp_path, jax_cache):
    proc = snakemake(tmp_path, "--profile", "slurm", *FAST_STATUS, cwd=REPO, jax_cache=jax_cache)
    out = proc.stdout + proc.stderr
    assert "Using profiles slurm and workflow specific profile" in out, out[-3000:]
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid", out)
    assert len(submitted) >= len(runs(load_config(TINY))), out[-3000:]
    check_tiny_outputs(tmp_path)


def slurm_job(rule: str) -> str | None:
    """The SLURM id of the queued or running job of `rule` (the plugin's --comment names it)."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %k"], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        job_id, _, comment = line.partition(" ")
        if comment.startswith(f"rule_{rule}"):
            return job_id
    return None


def test_killed_training_job_is_resubmitted_and_resumes(tmp_path, reference_training,
                                                         jax_cache):
    workdir = tmp_path / "run"
    workdir.mkdir()

    def kill(proc):
        job = wait_for(lambda: slurm_job("train"), 30, "the SLURM training job")
        # SIGTERM to the job's steps, as SLURM sends at a time limit or a preemption. (A plain
        # `scancel` leaves the job "CANCELLED by <uid>" in sacct, a state plugin 2.8.0 does not
        # recognise: Snakemake would wait for the job forever.)
        subprocess.run(["scancel", "--signal=TERM", job], check=True)

    step = kill_training_and_finish(workdir, resume_config(tmp_path / "resume.yaml"), kill,
                                    "--profile", "slurm", *FAST_STATUS, cwd=REPO,
                                    jax_cache=jax_cache)
    assert 0 < step < 20000, step  # > 0 only in a second attempt: the first one started afresh
    assert_same_training(workdir, reference_training)
