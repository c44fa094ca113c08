# Ease and transfer learning: fresh listeners trained on the frozen speakers of each run's best
# checkpoint (emcom.etl.run). A GPU job when resources.etl.gpu asks for one.


rule etl:
    input:
        checkpoint=rules.train.output.best,
        manifest=manifest("{dataset}"),
    output:
        table=f"{RUN}/etl.parquet",
        csv=f"{RUN}/etl.csv",
        provenance=f"{RUN}/etl.parquet.provenance.json",
    params:
        settings=config["etl"],
    log:
        f"logs/etl/{RUN_WILDCARDS}.log",
    benchmark:
        f"benchmarks/etl/{RUN_WILDCARDS}.tsv"
    threads: stage_resources("etl").get("threads", 1)
    resources:
        **job_resources("etl"),
    conda:
        "../envs/emcom.yaml"
    script:
        "../scripts/etl.py"
