# One training job per (dataset, setting, seed).
#
# latest.npz, the resume point, is deliberately NOT an output: Snakemake deletes the outputs of a job
# before running it and after it fails, so a declared resume file would not survive to the retry.
# emcom.train.run writes it every training.checkpoint_every steps and resumes from it, so a job
# killed by SLURM (time limit, preemption) and resubmitted through `retries` continues where it was.


rule train:
    input:
        manifest=manifest("{dataset}"),
    output:
        best=f"{RUN}/train/best.npz",
        table=f"{RUN}/train/train_metrics.parquet",
        csv=f"{RUN}/train/train_metrics.csv",
        # Sidecars are outputs too, so Snakemake removes them with what they describe.
        best_provenance=f"{RUN}/train/best.npz.provenance.json",
        provenance=f"{RUN}/train/train_metrics.parquet.provenance.json",
    params:
        config=lambda wc: train_config(wc.dataset, wc.setting, wc.seed),
    log:
        f"logs/train/{RUN_WILDCARDS}.log",
    benchmark:
        TRAIN_BENCHMARK
    threads: stage_resources("train").get("threads", 1)
    resources:
        **job_resources("train", runtime=train_runtime),
    retries: stage_resources("train").get("retries", 0)
    conda:
        "../envs/emcom.yaml"
    script:
        "../scripts/train.py"
