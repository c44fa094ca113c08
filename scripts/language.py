"""Snakemake adapter of rule `language`: emcom.metrics.run (topographic similarity, edit distance)."""
from _stage import run_checkpoint_stage

from emcom import metrics

run_checkpoint_stage(snakemake, metrics.run)  # noqa: F821 (injected by Snakemake)
