"""Snakemake adapter of rules `evaluate` and `transfer`: emcom.evaluate.run on a best checkpoint
(rule `transfer` evaluates it zero-shot on `input.eval_manifest`'s dataset)."""
from pathlib import Path

from _stage import run_checkpoint_stage

from emcom import evaluate

sm = snakemake  # noqa: F821 (injected by Snakemake)
if "eval_manifest" in sm.input.keys():
    run_checkpoint_stage(sm, evaluate.run, eval_data_dir=Path(sm.input.eval_manifest).parent)
else:
    run_checkpoint_stage(sm, evaluate.run)
