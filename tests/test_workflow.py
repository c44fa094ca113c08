"""The Snakemake workflow: lint, dry runs of the shipped configs, config errors, an end-to-end run
of tests/configs/tiny.yaml with checks on its tables, reruns that do nothing or only what changed."""

from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest

import emcom.experiments
from conftest import (REPO, STAGES, TINY, check_tiny_outputs, dry_run, load_config,
                      planned_jobs, runs, snakemake, write_config)

PAPER = REPO / "config" / "paper.yaml"
CLAIMS = REPO / "config" / "claims.yaml"
DEFAULT = REPO / "config" / "config.yaml"


def expected_jobs(config: dict) -> dict[str, int]:
    """The per-run job counts a config implies (rules/common.smk's expansion); "train" counts the
    training jobs, whose seeds may be grouped (`training.seeds_per_job`, the config's shared or
    the experiment's value)."""
    counts = {"train": 0, "evaluate": 0, "language": 0, "etl": 0, "transfer": 0}
    experiments = emcom.experiments.expand(config["experiments"])
    shared = config["train"].get("training", {}).get("seeds_per_job", 1)
    for _, setting, seed in runs(config):
        exp = experiments[setting]
        stages = exp.get("stages", ["eval", "language", "etl"])
        k = exp.get("train", {}).get("training", {}).get("seeds_per_job", shared)
        seeds = exp["seeds"] if isinstance(exp["seeds"], list) else list(range(exp["seeds"]))
        counts["train"] += seeds.index(seed) % k == 0  # the first seed of each job
        counts["evaluate"] += "eval" in stages
        counts["language"] += "language" in stages
        counts["etl"] += "etl" in stages
        counts["transfer"] += len(exp.get("transfer", [])) if "eval" in stages else 0
    return {rule: n for rule, n in counts.items() if n}


def test_lint_is_clean(tmp_path):
    proc = snakemake(tmp_path, "--lint", config=None)
    assert "Lints for" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", [None, PAPER, CLAIMS], ids=["config.yaml", "paper.yaml", "claims.yaml"])
def test_dry_run_of_shipped_configs_plans_every_run(tmp_path, path):
    config = load_config(path or DEFAULT)
    jobs = dry_run(tmp_path, config=path)
    jobs["train"] = sum(n for rule, n in jobs.items() if rule.split("_")[0] == "train")
    for rule, count in expected_jobs(config).items():
        assert jobs.get(rule) == count, (rule, jobs)
    assert jobs.get("report_table") == len(config["report"]["tables"])
    for figure in config["report"]["figures"]:
        assert jobs.get(f"report_{figure}") == 1, (figure, jobs)


def test_profiles_split_executor_and_workflow_settings():
    slurm = load_config(REPO / "slurm" / "config.yaml")  # what `--profile slurm` finds at the root
    assert slurm["executor"] == "slurm"
    assert {"slurm_partition", "slurm_account"} <= set(slurm["default-resources"])
    # the workflow profile wins over --profile on shared keys: it must not set these
    workflow = load_config(REPO / "profiles" / "default" / "config.yaml")
    assert not {"executor", "default-resources", "jobs", "retries"} & set(workflow)


def test_paper_config_asks_gpus_for_training_and_etl(tmp_path):
    proc = snakemake(tmp_path, "--dry-run", config=PAPER)
    out = proc.stdout
    for rule in ("train", "etl"):
        block = re.search(rf"rule {rule}:\n(.*?)\n\n", out, re.S).group(1)
        resources = re.search(r"resources: (.*)", block).group(1)
        assert "gpu=1" in resources, (rule, resources)
    block = re.search(r"rule language:\n(.*?)\n\n", out, re.S).group(1)
    assert "gpu=" not in re.search(r"resources: (.*)", block).group(1)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(trian={}), "trian"),
    (lambda c: c["experiments"]["1pair"].update(sedes=2), "sedes"),
    (lambda c: c["train"]["training"].update(stpes=3), "('stpes' was unexpected)"),
    (lambda c: c["experiments"]["1pair"].update(datasets=["nope"]), "nope"),
    (lambda c: c["etl"].update(steps="ten"), "ten"),
    (lambda c: c["report"]["tables"]["table2"]["rows"].update(x="no_such_setting"),
     "no_such_setting"),
], ids=["top-level", "experiment", "train-override", "dataset", "etl-type", "report-row"])
def test_config_errors_name_the_key(tmp_path, edit, message):
    config = load_config(TINY)
    edit(config)
    proc = snakemake(tmp_path, "--dry-run", config=write_config(tmp_path / "bad.yaml", config),
                     check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


def test_seeds_per_job_groups_an_experiments_seeds_into_jobs(tmp_path):
    config = load_config(TINY)
    config["experiments"]["1pair"].update(seeds=3, train={"training": {"seeds_per_job": 2}})
    jobs = dry_run(tmp_path, config=write_config(tmp_path / "seeds.yaml", config))
    # seeds 0 and 1 in one job, seed 2 (a group of one) in rule `train`; each seed evaluated
    assert jobs["train_tiny_1pair_seed0_1"] == 1 and jobs["train"] == 1, jobs
    assert jobs["evaluate"] == jobs["language"] == jobs["etl"] == 3, jobs
    # datasets whose names differ only in a character a rule name cannot hold
    config["datasets"].update({"t-1": config["datasets"]["tiny"], "t_1": config["datasets"]["tiny"]})
    config["experiments"]["1pair"].update(datasets=["t-1", "t_1"], transfer=[])
    jobs = dry_run(tmp_path, config=write_config(tmp_path / "names.yaml", config))
    assert jobs["train_t_1_1pair_seed0_1"] == jobs["train_2_t_1_1pair_seed0_1"] == 1, jobs


# ------------------------------------------------------------------------------- end to end


def test_tiny_run_writes_every_stage_table_and_the_report(tiny_run):
    check_tiny_outputs(tiny_run)


def test_jobs_start_with_huge_pages_and_record_it(tiny_run):
    records = sorted(tiny_run.glob("results/**/*.provenance.json"))
    assert records
    for path in records:
        tunables = json.loads(path.read_text())["glibc_tunables"] or ""
        assert "glibc.malloc.hugetlb=1" in tunables.split(":"), path


def test_second_invocation_has_nothing_to_do(tiny_run):
    assert dry_run(tiny_run) == {}


def test_one_table_regenerates_alone(tiny_run):
    # (targets first: --forcerun takes several values)
    jobs = dry_run(tiny_run, "results/report/tables/table2.md", "--forcerun", "report_table")
    assert jobs == {"report_table": 1}
    jobs = dry_run(tiny_run, "results/report/figures/fig4_etl.png", "--forcerun", "report_fig4")
    assert jobs == {"report_fig4": 1}


def test_report_html_shows_the_figures(tiny_run, tmp_path):
    proc = snakemake(tiny_run, "--report", str(tmp_path / "report.html"))
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert "fig1_training.png" in html and "fig4_etl.png" in html
    assert "table2.html" in html and "3. Tables" in html  # tables too, with their captions
    # each listed by what it shows, and every caption valid reStructuredText ("|C|" escaped)
    assert "populations, imitation and vote" in html and "ease of transfer learning" in html
    assert "ERROR/" not in proc.stdout + proc.stderr, proc.stderr


def test_editing_one_tables_rows_reruns_that_table_alone(tiny_run, tmp_path):
    config = load_config(TINY)
    config["report"]["tables"]["table7"]["rows"] = {"|C| = 16 (renamed)": "1pair"}
    changed = write_config(tmp_path / "changed.yaml", config)
    assert dry_run(tiny_run, config=changed) == {"report_table": 1, "all": 1}


def test_etl_change_reruns_only_etl_and_what_reads_it(tiny_run, tmp_path, jax_cache):
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir, symlinks=True)
    config = load_config(TINY)
    config["etl"]["steps"] += 10
    changed = write_config(tmp_path / "changed.yaml", config)
    n_etl = sum(1 for _, s, _ in runs(config)
                if "etl" in config["experiments"][s].get("stages", STAGES))
    expected = {"etl": n_etl, "report_table": 1, "report_fig4": 1, "all": 1}  # table7 reads ETL
    assert dry_run(workdir, config=changed) == expected
    train = workdir / "results/tiny/1pair/seed0/train/best.npz"
    before = train.stat().st_mtime_ns
    proc = snakemake(workdir, "--cores", "2", config=changed, jax_cache=jax_cache)
    assert planned_jobs(proc.stdout + proc.stderr) == expected
    assert train.stat().st_mtime_ns == before
    etl = pd.read_parquet(workdir / "results/tiny/1pair/seed0/etl.parquet")
    assert etl["step"].max() == config["etl"]["steps"]
    assert dry_run(workdir, config=changed) == {}


def test_conda_env_pins_the_same_versions_as_requirements():
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    env = load_config(REPO / "envs" / "emcom.yaml")
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip, "envs/emcom.yaml has no pip pins"
    for entry in pip:
        name, version = entry.split("==")
        assert pins.get(name.lower()) == version, entry
    assert {"jax", "jaxlib", "dm-haiku", "optax", "numpy", "pandas"} <= {
        e.split("==")[0].lower() for e in pip}
