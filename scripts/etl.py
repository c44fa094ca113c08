"""Snakemake adapter of rule `etl`: emcom.etl.run, fresh listeners on a checkpoint's speakers."""
from _stage import run_checkpoint_stage

from emcom import etl

run_checkpoint_stage(snakemake, "etl", etl.run)  # noqa: F821 (injected by Snakemake)
