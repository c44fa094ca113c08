# Evaluation of the best checkpoint of each run: accuracy per |C|, P x P pairs, vote, robustness
# (emcom.evaluate.run), and zero-shot transfer to another dataset with the same code.


rule evaluate:
    input:
        checkpoint=rules.train.output.best,
        manifest=manifest("{dataset}"),
    output:
        table=f"{RUN}/eval.parquet",
        csv=f"{RUN}/eval.csv",
        provenance=f"{RUN}/eval.parquet.provenance.json",
    params:
        settings=config["evaluate"],
    log:
        f"logs/evaluate/{RUN_WILDCARDS}.log",
    benchmark:
        f"benchmarks/evaluate/{RUN_WILDCARDS}.tsv"
    threads: stage_resources("evaluate").get("threads", 1)
    resources:
        **job_resources("evaluate"),
    conda:
        "../envs/emcom.yaml"
    script:
        "../scripts/evaluate.py"


use rule evaluate as transfer with:
    input:
        checkpoint=rules.train.output.best,
        manifest=manifest("{dataset}"),
        eval_manifest=manifest("{eval_dataset}"),
    output:
        table=f"{RUN}/transfer/{{eval_dataset}}.parquet",
        csv=f"{RUN}/transfer/{{eval_dataset}}.csv",
        provenance=f"{RUN}/transfer/{{eval_dataset}}.parquet.provenance.json",
    log:
        f"logs/transfer/{RUN_WILDCARDS}/{{eval_dataset}}.log",
    benchmark:
        f"benchmarks/transfer/{RUN_WILDCARDS}/{{eval_dataset}}.tsv"
