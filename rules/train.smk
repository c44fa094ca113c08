# One training job per (dataset, setting, seed), or per group of an experiment's seeds on one dataset
# when its `training.seeds_per_job` is above 1 (`train_jobs`): one job, one compiled program, each
# seed still with its own checkpoint and tables at the same paths, so the rules downstream see no
# difference. A group rule outranks `train` for its seeds' files; docs/training.md says how to
# retrain one seed of a group alone.
#
# latest.npz, the resume point, is deliberately NOT an output: Snakemake deletes the outputs of a job
# before running it and after it fails, so a declared resume file would not survive to the retry.
# emcom.train.run writes it every training.checkpoint_every steps and resumes from it, so a job
# killed by SLURM (time limit, preemption) and resubmitted through `retries` continues where it was.


rule train:
    input:
        manifest=manifest("{dataset}"),
    output:
        **train_outputs("{dataset}", "{setting}", "{seed}"),
    params:
        config=lambda wc: train_config(wc.dataset, wc.setting, wc.seed),
    log:
        f"logs/train/{RUN_WILDCARDS}.log",
    benchmark:
        TRAIN_BENCHMARK
    threads: stage_resources("train").get("threads", 1)
    resources:
        **job_resources("train", runtime=lambda wc: train_runtime(wc.setting)),
    retries: stage_resources("train").get("retries", 0)
    conda:
        "../envs/emcom.yaml"
    script:
        "../scripts/train.py"


for _name, _dataset, _setting, _seeds in group_rules():

    rule:
        name:
            _name
        input:
            manifest=manifest(_dataset),
        output:
            **{
                f"{kind}{seed}": path
                for seed in _seeds
                for kind, path in train_outputs(_dataset, _setting, seed).items()
            },
        params:
            dataset=_dataset,
            setting=_setting,
            seeds=_seeds,
            configs=[train_config(_dataset, _setting, seed) for seed in _seeds],
        log:
            f"logs/train/{group_path(_dataset, _setting, _seeds)}.log",
        benchmark:
            train_benchmark(_dataset, _setting, _seeds)
        threads: stage_resources("train").get("threads", 1)
        resources:
            **job_resources("train", runtime=train_runtime(_setting, len(_seeds))),
        retries: stage_resources("train").get("retries", 0)
        conda:
            "../envs/emcom.yaml"
        script:
            "../scripts/train.py"

    workflow.ruleorder(_name, "train")
