"""Snakemake adapter of rules `evaluate` and `transfer`: emcom.evaluate.run on a best checkpoint
(rule `transfer` evaluates it zero-shot on `input.eval_manifest`'s dataset)."""
from pathlib import Path

from _stage import run_checkpoint_stage

from emcom import evaluate

sm = snakemake  # noqa: F821 (injected by Snakemake)
target = {"eval_data_dir": Path(sm.input.eval_manifest).parent} if "eval_manifest" in sm.input.keys() else {}
run_checkpoint_stage(sm, "evaluate", evaluate.run, **target)
