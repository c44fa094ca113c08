"""Snakemake adapter of rule `language`: emcom.language.run (topographic similarity, edit distance)."""
from _stage import run_checkpoint_stage

from emcom import language

run_checkpoint_stage(snakemake, "language", language.run)  # noqa: F821 (injected by Snakemake)
