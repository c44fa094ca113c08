# Helpers shared by the rules, all derived from the validated config: the experiment grid, per-run
# training configs, output paths, per-stage resources, and what each report table reads. The checks
# the JSON schema cannot express run here, when the DAG is built, so that a typo fails at start with
# the key's name instead of hours later in a job.
import copy
import re
from pathlib import Path

import yaml

import emcom.config
import emcom.data.synthetic
import emcom.experiments
import emcom.names
import emcom.report

NAME = r"[A-Za-z0-9][A-Za-z0-9_.+-]*"  # dataset and setting names (the schema's pattern)
RUN = "results/{dataset}/{setting}/seed{seed}"
RUN_WILDCARDS = "{dataset}/{setting}/seed{seed}"  # logs/<rule>/<this>.log, benchmarks/<rule>/...
TRAIN_BENCHMARK = f"benchmarks/train/{RUN_WILDCARDS}.tsv"  # read by Table 5
STAGES = emcom.names.CHECKPOINT_STAGES
SPLITS = emcom.names.SPLITS
REPORT = "results/report"
TABLES = emcom.report.TABLES


def expand_experiments():
    """Replaces every `grid` experiment by its points (emcom.experiments.expand), then sets each
    experiment's missing `stages`, `transfer` (and the config's `train_per_dataset`) to the
    schema's defaults, so the rules read them in one way."""
    try:
        config["experiments"] = emcom.experiments.expand(config["experiments"])
    except emcom.config.ConfigError as err:
        raise ValueError(f"config: {err}") from None
    schema = yaml.safe_load(Path(SCHEMA).read_text())
    props = schema["properties"]["experiments"]["additionalProperties"]["properties"]
    defaults = {key: p["default"] for key, p in props.items() if "default" in p}
    for exp in config["experiments"].values():
        for key, value in defaults.items():
            exp.setdefault(key, copy.deepcopy(value))
    config.setdefault("train_per_dataset", {})


def deep_merge(base, override):
    """A new dict: `override` merged into `base`, recursing into nested mappings."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def experiment_seeds(exp):
    """The seeds of an experiment: `seeds: n` means 0 .. n-1."""
    seeds = exp["seeds"]
    return list(range(seeds)) if isinstance(seeds, int) else list(seeds)


def experiment_runs():
    """Every (dataset, setting, seed) the config trains, in config order."""
    return [
        (dataset, setting, seed)
        for setting, exp in config["experiments"].items()
        for dataset in exp["datasets"]
        for seed in experiment_seeds(exp)
    ]


def train_outputs(dataset, setting, seed):
    """The files a training job writes for one run (patterns, given wildcards). Sidecars are
    outputs too, so Snakemake removes them with what they describe."""
    root = RUN.format(dataset=dataset, setting=setting, seed=seed)
    return {
        "best": f"{root}/train/best.npz",
        "table": f"{root}/train/train_metrics.parquet",
        "csv": f"{root}/train/train_metrics.csv",
        "best_provenance": f"{root}/train/best.npz.provenance.json",
        "provenance": f"{root}/train/train_metrics.parquet.provenance.json",
    }


def train_jobs():
    """(dataset, setting, seeds) of every training job: an experiment's seeds on one dataset in
    groups of its `training.seeds_per_job` (a group of one is a `train` job)."""
    jobs = []
    for setting, exp in config["experiments"].items():
        seeds = experiment_seeds(exp)
        for dataset in exp["datasets"]:
            k = train_config(dataset, setting, seeds[0])["training"]["seeds_per_job"]
            jobs += [(dataset, setting, seeds[i : i + k]) for i in range(0, len(seeds), k)]
    return jobs


def job_seeds(seeds):
    """The {seed} of a training job's log and benchmark names: <a>+<b>+... (<n> for one seed)."""
    return "+".join(map(str, seeds))


def group_path(dataset, setting, seeds):
    """RUN_WILDCARDS of a training job, {dataset}/{setting}/seed<a>+<b>+...: its log's name."""
    return RUN_WILDCARDS.format(dataset=dataset, setting=setting, seed=job_seeds(seeds))


def group_rules():
    """(rule name, dataset, setting, seeds) of every training job of several seeds. The name is
    its group_path with non-word characters as `_`, and the job's index where two would meet
    (datasets `t-1` and `t_1`)."""
    rules = {}
    for index, (dataset, setting, seeds) in enumerate(train_jobs()):
        if len(seeds) > 1:
            name = re.sub(r"\W", "_", group_path(dataset, setting, seeds))
            name = f"train_{name}" if f"train_{name}" not in rules else f"train_{index}_{name}"
            if name in rules:
                raise ValueError(f"config: training jobs {rules[name]} and "
                                 f"{(dataset, setting, seeds)} would share rule name {name}")
            rules[name] = (dataset, setting, seeds)
    return [(name, *job) for name, job in rules.items()]


def train_benchmark(dataset, setting, seeds):
    """The Snakemake benchmark file of the training job of `seeds` (Table 5 reads it)."""
    return TRAIN_BENCHMARK.format(dataset=dataset, setting=setting, seed=job_seeds(seeds))


def train_config(dataset, setting, seed):
    """The resolved emcom.config.TrainConfig of one run, as a plain dict.

    Precedence (last wins): the TrainConfig defaults < train < train_per_dataset[dataset]
    < experiments[setting].train < experiments[setting].per_dataset[dataset] < the run's seed.
    """
    exp = config["experiments"][setting]
    overrides = deep_merge(config["train"], config.get("train_per_dataset", {}).get(dataset, {}))
    overrides = deep_merge(overrides, exp.get("train", {}))
    overrides = deep_merge(overrides, exp.get("per_dataset", {}).get(dataset, {}))
    overrides["seed"] = int(seed)
    try:
        # Resolved here, once; the job receives the full plain dict (Snakemake compares params
        # to decide reruns, and a plain dict needs no emcom to unpickle in the job).
        return emcom.config.resolve(overrides).to_dict()
    except emcom.config.ConfigError as err:
        raise ValueError(f"config: experiment {setting!r} on dataset {dataset!r}: {err}") from None


def check_config():
    """Raises ValueError naming the key for what the JSON schema cannot see: dataset names that
    are not under `datasets:`, invalid training overrides (resolved once per (setting, dataset);
    the seed cannot break them) and report specs (emcom.report.resolve_spec)."""
    known = set(config["datasets"])
    for name, dataset in config["datasets"].items():
        if dataset["source"] == "synthetic":
            try:
                emcom.data.synthetic.check_params(dataset.get("params") or {})
            except emcom.data.DataError as err:
                raise ValueError(f"config: datasets.{name}.params: {err}") from None
    for where, block in override_blocks():
        try:
            emcom.config.check_overrides(block)
        except emcom.config.ConfigError as err:
            raise ValueError(f"config: {where}: {err}") from None
    for dataset in config.get("train_per_dataset", {}):
        if dataset not in known:
            raise ValueError(f"config: train_per_dataset.{dataset} is not under datasets:")
    for setting, exp in config["experiments"].items():
        for field in ("datasets", "transfer"):
            for dataset in exp.get(field, []):
                if dataset not in known:
                    raise ValueError(
                        f"config: experiments.{setting}.{field} names dataset {dataset!r}, "
                        f"which is not under datasets: (known: {sorted(known)})"
                    )
        for dataset in exp.get("per_dataset", {}):
            if dataset not in exp["datasets"]:
                raise ValueError(
                    f"config: experiments.{setting}.per_dataset.{dataset} is not one of the "
                    f"experiment's datasets {exp['datasets']}"
                )
        for dataset in exp["datasets"]:
            train_config(dataset, setting, experiment_seeds(exp)[0])
    try:
        emcom.report.resolve_spec(config["report"], settings=config["experiments"])
    except emcom.report.SpecError as err:
        raise ValueError(f"config: {err}") from None


def override_blocks():
    """(key path, block) of every training-override block of the config, so that a bad key is
    reported where it is written rather than for the merged run config."""
    yield "train", config["train"]
    for dataset, block in config.get("train_per_dataset", {}).items():
        yield f"train_per_dataset.{dataset}", block
    for setting, exp in config["experiments"].items():
        yield f"experiments.{setting}.train", exp.get("train", {})
        for dataset, block in exp.get("per_dataset", {}).items():
            yield f"experiments.{setting}.per_dataset.{dataset}", block


def manifest(dataset):
    return f"data/{dataset}/manifest.json"


def stage_outputs(stages):
    """The tidy tables (Parquet) of `stages` ('train' = the training metrics) for every run that
    has them, with the zero-shot transfer tables when 'eval' is among the stages."""
    paths = []
    for dataset, setting, seed in experiment_runs():
        exp = config["experiments"][setting]
        root = RUN.format(dataset=dataset, setting=setting, seed=seed)
        for stage in stages:
            if stage == "train":
                paths.append(f"{root}/train/train_metrics.parquet")
            elif stage in exp["stages"]:
                paths.append(f"{root}/{stage}.parquet")
        if "eval" in stages and "eval" in exp["stages"]:
            paths += [f"{root}/transfer/{target}.parquet" for target in exp["transfer"]]
    return paths


def job_costs(table):
    """(benchmark file, dataset, setting, seed, seeds in its job) of every run, for a table that
    reads them (Table 5). The files are not inputs: Snakemake writes them beside a job's outputs,
    and a run trained outside Snakemake has none (the table then says so)."""
    if not TABLES[table].job_costs:
        return []
    return [[train_benchmark(d, s, seeds), d, s, n, len(seeds)]
            for d, s, seeds in train_jobs() for n in seeds]


def stage_resources(stage):
    """The config's `resources.<stage>` (threads, mem_mb, runtime, gpu, ..., retries)."""
    return config["resources"][stage]


def job_resources(stage, runtime=None):
    """The `resources:` of a stage's jobs, from the config's `resources.<stage>`: memory, time
    limit in minutes (`runtime`, a value or a function of the wildcards, overrides the config's),
    GPUs when asked (the SLURM plugin turns `gpu`/`gpu_model` into --gpus) and SLURM placement
    (slurm_partition, constraint). Kept out of profiles/default, whose per-rule values would
    override the config's."""
    res = dict(stage_resources(stage))
    res.pop("threads", None)
    res.pop("retries", None)
    if res.get("gpu", 0) == 0:
        res.pop("gpu", None)
        res.pop("gpu_model", None)
    res.setdefault("mem_mb", 2000)
    res["runtime"] = runtime or res.get("runtime", 60)
    return res


def train_runtime(setting, seeds=1):
    """Time limit of one training attempt: the experiment's `runtime`, else resources.train's,
    times the seeds the job trains (a group runs them one after another on a CPU)."""
    exp = config["experiments"][setting]
    return seeds * exp.get("runtime", stage_resources("train").get("runtime", 60))


def report_spec(table=None, figure=None):
    """The slice of `report:` a job uses (so that editing one entry reruns only its job): the
    global keys plus one table's entry, or one figure's entry and the tables a figure without
    rows falls back on, or (claims) the global keys and `claims`."""
    section = config["report"]
    if table == "claims":
        return {k: v for k, v in section.items() if k not in ("tables", "figures")}
    spec = {k: v for k, v in section.items() if k not in ("tables", "figures", "claims")}
    if figure is not None:
        fallback = (emcom.report.figures.PERIODIC_ROWS, emcom.report.figures.ETL_ROWS)
        figures = {}
        if figure in section["figures"]:
            figures[figure] = section["figures"][figure]
        return {**spec, "figures": figures,
                "tables": {t: e for t, e in section["tables"].items() if t in fallback}}
    return {**spec, "tables": {table: section["tables"][table]}}


def report_targets():
    """Every table (CSV, Markdown, LaTeX, HTML) and figure (PNG, PDF, caption) of `report:`, and the
    claims table when `report.claims` is set."""
    tables = [
        f"{REPORT}/tables/{name}{ext}"
        for name in config["report"]["tables"]
        for ext in emcom.report.TABLE_FORMATS
    ]
    figures = [
        f"{REPORT}/figures/{emcom.report.figure_stem(name)}.{ext}"
        for name in config["report"]["figures"]
        for ext in ("png", "pdf", "rst")
    ]
    claims = [f"{REPORT}/claims.{ext}" for ext in emcom.report.CLAIMS_FILES]
    return tables + figures + (claims if config["report"].get("claims") is not None else [])
