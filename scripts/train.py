"""Snakemake adapter of rule `train` (one run, its wildcards) and of the group rules of
rules/train.smk (several seeds of one setting, their params): emcom.train.run_seeds.

The trainer resumes from each run's `latest.npz` when it belongs to the run (a retried job after a
kill or a time limit) and writes best.npz; this adapter writes each run's metrics table.
"""
from pathlib import Path

from _stage import setup_logging, write_run_table

from emcom import config, train

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = setup_logging(sm)
if "configs" in sm.params.keys():
    dataset, setting, seeds = sm.params.dataset, sm.params.setting, sm.params.seeds
    cfgs = [config.resolve(c) for c in sm.params.configs]
    outputs = [{kind: sm.output[f"{kind}{seed}"] for kind in ("best", "table")} for seed in seeds]
else:
    dataset, setting, seeds = sm.wildcards.dataset, sm.wildcards.setting, [int(sm.wildcards.seed)]
    cfgs = [config.resolve(sm.params.config)]
    outputs = [{"best": sm.output.best, "table": sm.output.table}]
data_dir = Path(sm.input.manifest).parent
out_dirs = [Path(out["best"]).parent for out in outputs]
log.info("training %s on %s, seeds %s, into %s with %s", setting, dataset, seeds,
         [str(d) for d in out_dirs], cfgs[0])
frames = train.run_seeds(cfgs, data_dir, out_dirs)
for df, cfg, seed, out in zip(frames, cfgs, seeds, outputs):
    write_run_table(df, out["table"], cfg, dataset, setting, seed, data_dir=str(data_dir))
