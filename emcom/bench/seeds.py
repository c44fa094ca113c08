"""Seeds in one job: `python -m emcom.bench seeds [options]`.

For G = 1, 2, 4 seeds (`--seeds`) of one setting, at the paper's sizes (1 pair, batch 1024, D 2048)
or at the sizes of a workflow config's `train:` block (`--config`), it times the trainer's update
of the G runs in one program (`training.seeds_per_job`, `emcom.bench.train.time_trainer`) in each
`training.seeds_batching` (`map`: one seed after another, bit-identical to separate runs;
`vmap`: vectorised) and prints one JSON object per (G, batching): the time of a step of all G
runs, run-steps per second, that over one seed's (the program's gain per run; 1.0: as fast as
separate jobs, not counting the fixed cost of a job: imports, compilation), compile time and the
compiled update's memory; then a Markdown table of the same. A run that leaves the device idle
(one pair on an accelerator; small models anywhere) is where `vmap` gains."""

from __future__ import annotations

import argparse
import json

import jax

from emcom import config as config_lib
from emcom.bench import load
from emcom.bench.train import add_size_arguments, random_dataset, sizes, time_trainer

BATCHINGS = ("map", "vmap")


def measure(base: dict, seeds: int, batching: str, args, data: jax.Array) -> dict:
    cfg = config_lib.resolve({**base, "training": {
        **base.get("training", {}), "seeds_per_job": seeds, "seeds_batching": batching}})
    device = jax.devices()[0]
    before = load.snapshot()
    timing = time_trainer(cfg, data, args.steps, args.steps_per_call, seeds=seeds)
    return {"benchmark": "seeds", "device": f"{device.platform}:{device.device_kind}",
            "seeds": seeds, "batching": batching, "sizes": args.config or "paper",
            "pairs": cfg.population.num_speakers, "batch_size": cfg.training.batch_size,
            "dim": args.dim, "step_ms": 1000 * timing.s_per_step,
            "run_steps_per_s": seeds / timing.s_per_step, "compile_s": timing.compile_s,
            "memory_gib": (timing.program_bytes - data.nbytes) / 2 ** 30,
            "load": load.since(before)}


def markdown(results: list[dict]) -> str:
    one = next(r["run_steps_per_s"] for r in results if r["seeds"] == 1)
    lines = ["| seeds | batching | step of all runs (ms) | run-steps/s | vs 1 seed | compile (s) "
             "| memory (GiB) |", "|" + "---|" * 7]
    for r in results:
        lines.append(f"| {r['seeds']} | {r['batching']} | {r['step_ms']:.1f} | "
                     f"{r['run_steps_per_s']:.2f} | {r['run_steps_per_s'] / one:.2f}x | "
                     f"{r['compile_s']:.1f} | {r['memory_gib']:.3g} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m emcom.bench seeds", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="1,2,4", help="comma-separated seeds per program")
    p.add_argument("--batching", default="map,vmap", help="comma-separated seeds_batching modes")
    add_size_arguments(p)
    args = p.parse_args(argv)
    batchings = args.batching.split(",")
    if unknown := sorted(set(batchings) - set(BATCHINGS)):
        p.error(f"--batching: unknown {unknown} (known: {', '.join(BATCHINGS)})")
    base = sizes(args.config, args.batch_size)
    data = random_dataset(args)
    results = [measure(base, 1, "map", args, data)]  # one run: no batching to choose
    print(json.dumps(results[-1]), flush=True)
    for g in sorted({int(s) for s in args.seeds.split(",")} - {1}):
        for batching in batchings:
            results.append(measure(base, g, batching, args, data))
            print(json.dumps(results[-1]), flush=True)
    print(markdown(results))
    return 0
