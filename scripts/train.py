"""Snakemake adapter of rule `train`: emcom.train.run for one (dataset, setting, seed).

The trainer resumes from `<out_dir>/latest.npz` when it belongs to this run (a retried job after a
kill or a time limit) and writes best.npz; this adapter writes its metrics table.
"""
from pathlib import Path

from _stage import setup_logging, write_stage_table

from emcom import config, train

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = setup_logging(sm)
cfg = config.resolve(sm.params.config)
data_dir = Path(sm.input.manifest).parent
log.info("training into %s with %s", Path(sm.output.best).parent, cfg)
df = train.run(cfg, data_dir, Path(sm.output.best).parent)
write_stage_table(sm, df, cfg, data_dir=str(data_dir))
