"""Snakemake adapter of rule `train`: emcom.train.run for one (dataset, setting, seed).

The trainer resumes from `<out_dir>/latest.npz` (a retried job after a kill or a time limit) and
writes best.npz and train_metrics.parquet; this adapter labels the metrics with the run's keys.
"""
import json
from pathlib import Path

from _stage import run_keys, setup_logging

from emcom import data, provenance, train

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = setup_logging(sm)
cfg = sm.params.config
data_dir = Path(sm.input.manifest).parent
out_dir = Path(sm.output.best).parent
latest, marker = out_dir / "latest.npz", out_dir / "resume.json"
# What latest.npz was trained on. A resume point left by an earlier job with another config or
# other data (the job reruns because one changed) is discarded rather than resumed.
identity = json.loads(json.dumps({"config": cfg, "manifest": data.read_manifest(data_dir)}))
if latest.exists():
    if marker.exists() and json.loads(marker.read_text()) == identity:
        log.info("%s belongs to this run (a retry): the trainer resumes from it", latest)
    else:
        log.info("%s was trained on another config or data: training from scratch", latest)
        latest.unlink()
provenance.write_json(marker, identity)
log.info("training into %s with config %s", out_dir, cfg)
# The tables name the dataset as the config does (a manifest may name it otherwise).
train.run(cfg, data_dir, out_dir, eval_dataset=sm.wildcards.dataset, **run_keys(sm))
