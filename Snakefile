# emcom: "Emergent Communication at Scale" (Chaabouni et al., ICLR 2022) as a Snakemake pipeline.
#
#   snakemake --cores all                       # the embedded default (config/config.yaml)
#   snakemake --cores all --configfile config/paper.yaml --profile slurm
#
# The rules live in rules/*.smk (one per stage); the computation lives in the emcom package.
import os
import sys

from snakemake.utils import min_version, validate

try:
    import emcom
except ImportError:  # an environment with the dependencies only (envs/emcom.yaml): this checkout's
    sys.path.append(workflow.basedir)

from emcom import hugepages

min_version("9.0")

# Every job's process starts with huge pages for XLA's large buffers (emcom/hugepages.py says why).
os.environ.update(hugepages.with_huge_pages(os.environ))


# A config given with --configfile (config/paper.yaml, a test config) replaces the embedded default
# rather than being deep-merged into it, which would run the default's experiments alongside its own.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config/config.yaml")


# The schema states every default, but Snakemake's set_default would also write the training
# defaults into every override block (experiments.<s>.train), where they would override the shared
# `train:` block; rules/common.smk fills the few workflow-level defaults instead.
SCHEMA = os.path.join(workflow.basedir, "config/config.schema.yaml")  # the library's: emcom.configdoc
validate(config, SCHEMA, set_default=False)


report: "docs/captions/workflow.rst"  # the landing page of `snakemake --report report.html`


include: "rules/common.smk"


expand_experiments()


check_config()


wildcard_constraints:
    dataset=NAME,
    eval_dataset=NAME,
    setting=NAME,
    seed=r"\d+",



include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/language.smk"
include: "rules/etl.smk"
include: "rules/report.smk"


rule all:
    input:
        stage_outputs(emcom.names.STAGES),
        report_targets(),
    default_target: True
