# Language metrics of the best checkpoint of each run: topographic similarity (image and attribute
# meaning spaces) and the edit distance between the population's speakers (emcom.metrics.run).


rule language:
    input:
        checkpoint=f"{RUN}/train/best.npz",
        manifest=manifest("{dataset}"),
    output:
        table=f"{RUN}/language.parquet",
        csv=f"{RUN}/language.csv",
        provenance=f"{RUN}/language.parquet.provenance.json",
    params:
        settings=config["language"],
    log:
        f"logs/{RUN}/language.log",
    benchmark:
        f"benchmarks/{RUN}/language.tsv"
    threads: stage_resources("language").get("threads", 1)
    resources:
        **job_resources("language"),
    conda:
        "../envs/emcom.yaml"
    script:
        "../scripts/language.py"
