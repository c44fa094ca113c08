"""Population update modes side by side: `python -m emcom.bench update_modes [options]`.

Trains the same populations (the `train:` section of a workflow config, e.g. config/config.yaml's
default, on a prepared dataset) once per `population.update` mode, pair count and seed, and
writes the learning curves (`curves_<modes>.csv`: the training rows, test accuracy at every
evaluation step, steps/s) and a figure (`curves_<modes>.png`) into --out, and prints one JSON line per
run (final test accuracy, median steps/s over the log windows, load average before and after).
Runs split over processes (e.g. one per mode) are drawn together with `--replot CSV ...`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pandas as pd
import yaml

from emcom import config as config_lib, data, train


def run_one(base: dict, splits: dict, mode: str, pairs: int, seed: int) -> pd.DataFrame:
    cfg = config_lib.resolve({**base, "seed": seed, "population": {
        "num_speakers": pairs, "num_listeners": pairs, "update": mode}})
    rows = pd.DataFrame(train.train(cfg, splits["train"], splits["valid"], splits["test"]).rows)
    return rows.assign(mode=mode, pairs=pairs, seed=seed)


def plot(curves: pd.DataFrame, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc = curves[(curves.metric == "accuracy") & (curves.split == "test")]
    acc = acc[acc.candidates == acc.candidates.max()]
    sizes = sorted(acc.pairs.unique())
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 3.6), squeeze=False,
                             sharey=True)
    for ax, n in zip(axes[0], sizes):
        for k, (mode, g) in enumerate(acc[acc.pairs == n].groupby("mode")):
            colour = f"C{k}"
            for _, s in g.groupby("seed"):
                ax.plot(s.step, 100 * s.value, color=colour, lw=0.8, alpha=0.5)
            mean = g.groupby("step").value.mean()
            ax.plot(mean.index, 100 * mean.values, color=colour, lw=2.2, label=mode)
        ax.set_title(f"{n} pairs")
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"test accuracy (%), |C| = {int(acc.candidates.max())}")
    axes[0][-1].legend(title="population.update (thin: seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m emcom.bench update_modes", description=__doc__)
    p.add_argument("--config", default="config/config.yaml", help="workflow config (its train:)")
    p.add_argument("--data", default="data/synthetic", help="a prepared dataset folder")
    p.add_argument("--modes", default="sequential,vectorised")
    p.add_argument("--pairs", default="4,10")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--steps", type=int, default=None, help="override training.steps")
    p.add_argument("--out", default="results/bench/update_modes")
    p.add_argument("--replot", nargs="+", metavar="CSV",
                   help="no training: draw curves.png from earlier runs' CSVs (e.g. one per mode)")
    args = p.parse_args(argv)
    if args.replot:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        plot(pd.concat([pd.read_csv(c) for c in args.replot], ignore_index=True),
             out / "curves.png")
        return 0
    base = yaml.safe_load(Path(args.config).read_text())["train"]
    if args.steps is not None:
        base.setdefault("training", {})["steps"] = args.steps
    splits = {s: data.load_split(args.data, s).features for s in ("train", "valid", "test")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frames = []
    for mode in args.modes.split(","):
        for pairs in (int(n) for n in args.pairs.split(",")):
            for seed in (int(s) for s in args.seeds.split(",")):
                load = os.getloadavg()[0]
                rows = run_one(base, splits, mode, pairs, seed)
                frames.append(rows)
                test = rows[(rows.metric == "accuracy") & (rows.split == "test")]
                final = test[(test.step == test.step.max())
                             & (test.candidates == test.candidates.max())]
                print(json.dumps({
                    "benchmark": "update_modes", "mode": mode, "pairs": pairs, "seed": seed,
                    "steps": int(rows.step.max()),
                    "final_test_accuracy": float(final.value.iloc[0]),
                    "candidates": int(final.candidates.iloc[0]),
                    "steps_per_s": float(rows[rows.metric == "steps_per_second"].value.median()),
                    "load_before": load, "load_after": os.getloadavg()[0]}), flush=True)
    curves = pd.concat(frames, ignore_index=True)
    name = f"curves_{args.modes.replace(',', '_')}"
    curves.to_csv(out / f"{name}.csv", index=False)
    plot(curves, out / f"{name}.png")
    return 0
