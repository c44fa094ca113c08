# Language metrics of the best checkpoint of each run: topographic similarity (image and attribute
# meaning spaces) and the edit distance between the population's speakers (emcom.language.run).


rule language:
    input:
        checkpoint=rules.train.output.best,
        manifest=manifest("{dataset}"),
    output:
        table=f"{RUN}/language.parquet",
        csv=f"{RUN}/language.csv",
        provenance=f"{RUN}/language.parquet.provenance.json",
    params:
        settings=config["language"],
    log:
        f"logs/language/{RUN_WILDCARDS}.log",
    benchmark:
        f"benchmarks/language/{RUN_WILDCARDS}.tsv"
    threads: stage_resources("language").get("threads", 1)
    resources:
        **job_resources("language"),
    conda:
        "../envs/emcom.yaml"
    script:
        "../scripts/language.py"
