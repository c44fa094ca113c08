# The paper's tables and figures from the tidy tables (emcom.report; the spec is the config's
# `report:` section, described in docs/report.md; what exists is emcom.report.registry). Each table
# and each figure is its own job, whose inputs are the stages it reads, so e.g. changing `etl:`
# reruns the ETL jobs, Table 1, Table 7 and Fig. 4 only. Name one as a target to regenerate it
# alone, e.g.
#   snakemake --cores all results/report/tables/table2.md
#   snakemake --cores all results/report/figures/fig4_etl.png --forcerun report_fig4


rule report_table:
    input:
        lambda wc: stage_outputs(TABLES[wc.table].stages),
    output:
        csv=f"{REPORT}/tables/{{table}}.csv",
        md=f"{REPORT}/tables/{{table}}.md",
        tex=f"{REPORT}/tables/{{table}}.tex",
        html=report(
            f"{REPORT}/tables/{{table}}.html",
            caption="../docs/captions/table.rst",
            category="3. Tables",
            labels=lambda wc: emcom.report.report_labels(TABLES[wc.table].title),
        ),
        provenance=f"{REPORT}/tables/{{table}}.csv.provenance.json",
    params:
        spec=lambda wc: report_spec(wc.table),
        caption=lambda wc: emcom.report.rst_text(TABLES[wc.table].caption),  # table.rst shows it
        job_costs=lambda wc: job_costs(wc.table),
    wildcard_constraints:
        table="|".join(TABLES),
    log:
        "logs/report_table/{table}.log",
    benchmark:
        "benchmarks/report_table/{table}.tsv"
    threads: stage_resources("report").get("threads", 1)
    resources:
        **job_resources("report"),
    conda:
        "../envs/emcom.yaml"
    script:
        "../scripts/report_table.py"


# One rule per figure (each kind, and each instance of `report.figures` with a `kind:`), so that
# `snakemake --report report.html` shows each PNG with the caption the figure's job wrote beside it.
for _name in emcom.report.figure_names(config["report"]["figures"]):
    _stem = emcom.report.figure_stem(_name)
    _entry = config["report"]["figures"].get(_name)
    _kind = emcom.report.figure_kind(_name, _entry)

    rule:
        name:
            f"report_{_name}"
        input:
            stage_outputs(_kind.stages),
        output:
            png=report(
                f"{REPORT}/figures/{_stem}.png",
                caption=os.path.abspath(f"{REPORT}/figures/{_stem}.rst"),
                category="2. Figures",
                labels=emcom.report.report_labels(emcom.report.figure_title(_name, _entry)),
            ),
            pdf=f"{REPORT}/figures/{_stem}.pdf",
            rst=f"{REPORT}/figures/{_stem}.rst",
            provenance=f"{REPORT}/figures/{_stem}.png.provenance.json",
        params:
            figure=_name,
            spec=report_spec(figure=_name),
        log:
            f"logs/report_{_name}/{_stem}.log",
        benchmark:
            f"benchmarks/report_{_name}/{_stem}.tsv"
        threads: stage_resources("report").get("threads", 1)
        resources:
            **job_resources("report"),
        conda:
            "../envs/emcom.yaml"
        script:
            "../scripts/report_figure.py"


# Which of the paper's claims (paper.md §6) this run reproduces, with the statistic deciding each
# (docs/report.md, "Claims"). Made when the config has `report.claims`.
rule report_claims:
    input:
        stage_outputs(emcom.report.CLAIMS_STAGES),
    output:
        md=f"{REPORT}/claims.md",
        csv=f"{REPORT}/claims.csv",
        json=f"{REPORT}/claims.json",
        html=report(
            f"{REPORT}/claims.html",
            caption="../docs/captions/claims.rst",
            category="1. Claims",
            labels={"claims": "the paper's claims on this run"},
        ),
        provenance=f"{REPORT}/claims.csv.provenance.json",
    params:
        spec=report_spec("claims"),
        settings=list(config["experiments"]),
    log:
        "logs/report_claims/claims.log",
    benchmark:
        "benchmarks/report_claims/claims.tsv"
    threads: stage_resources("report").get("threads", 1)
    resources:
        **job_resources("report"),
    conda:
        "../envs/emcom.yaml"
    script:
        "../scripts/report_claims.py"
