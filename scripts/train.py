"""Snakemake adapter of rule `train`: emcom.train.run for one (dataset, setting, seed).

The trainer resumes from `<out_dir>/latest.npz` (a retried job after a kill or a time limit) and
writes best.npz and train_metrics.parquet; this adapter labels the metrics with the run's keys.
"""
import json
from pathlib import Path

from _stage import run_keys, setup_logging

from emcom import checkpoint, data, provenance, train

sm = snakemake  # noqa: F821 (injected by Snakemake)
log = setup_logging(sm)
cfg = sm.params.config
data_dir = Path(sm.input.manifest).parent
out_dir = Path(sm.output.best).parent
manifest = data.read_manifest(data_dir)
# Checked before anything is written or removed, so a damaged split fails naming its file and
# leaves the resume point alone (the trainer's own opening then skips the finiteness scan).
for split in ("train", "valid", "test"):
    if split in manifest["splits"]:
        data.load_split(data_dir, split)
latest, marker = out_dir / "latest.npz", out_dir / "resume.json"
generations = (latest, checkpoint.previous_of(latest))
# What latest.npz was trained on. A resume point left by an earlier job with another config or
# other data (the job reruns because one changed) is discarded rather than resumed.
identity = json.loads(json.dumps({"config": cfg, "manifest": manifest}))


def marker_matches() -> bool:
    try:
        return json.loads(marker.read_text()) == identity
    except (OSError, ValueError) as e:  # absent, or torn by a kill: the resume point is unknown
        log.warning("%s unreadable (%s): not resuming", marker, e)
        return False


if any(g.exists() for g in generations):
    if marker_matches():
        log.info("%s belongs to this run (a retry): the trainer resumes from it", latest)
    else:
        log.info("%s was trained on another config or data: training from scratch", latest)
        for stale in generations:
            stale.unlink(missing_ok=True)
provenance.write_json(marker, identity)
log.info("training into %s with config %s", out_dir, cfg)
# The tables name the dataset as the config does (a manifest may name it otherwise).
train.run(cfg, data_dir, out_dir, eval_dataset=sm.wildcards.dataset, **run_keys(sm))
