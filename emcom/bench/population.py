"""Population cost at the paper's sizes: `python -m emcom.bench population [options]`.

For 1, 10 and 50 pairs (N speakers, N listeners, N pairs per step) at the paper's model sizes,
batch 1024 and D 2048 (or the sizes of a workflow config's `train:` block, `--config`), it times
the trainer (`emcom.bench.train.time_trainer`: many steps per call under `lax.scan`, in the
population update mode `--update`, default `vectorised`) and prints one JSON object per size: step
time, pair-updates per second, compile time, the step's memory and the paper's Table 5 (V100,
ImageNet block) for the same N beside them, then a Markdown table of the same (for
docs/performance.md) with each size's step time over 1 pair's.

Memory is what the compiled update holds at once by XLA's buffer assignment, less the training
features (held on the device here, streamed by the paper's runs), so that it compares with the
paper's peak GPU memory; `process_peak_mib` is what the process reached so far (the device's peak
bytes in use on a GPU, the host's peak resident set on a CPU: the largest size so far dominates
it). A size whose update needs more memory than the device (or host) has is reported as skipped,
not run. The targets of the GPU-readiness issue: on one GPU, 10 pairs at most 2x and 50 pairs at
most 5x the 1-pair step time (the table's `vs 1 pair`); a CPU has no idle parallelism to fill, so
expect about N x."""

from __future__ import annotations

import argparse
import json
import os

import jax

from emcom import config as config_lib, parallel, train
from emcom.bench import load
from emcom.bench.train import add_size_arguments, random_dataset, sizes, time_trainer
from emcom.report.cost_table import PAPER_V100

GIB = 2 ** 30


def _config(base: dict, pairs: int, update: str) -> config_lib.TrainConfig:
    return config_lib.resolve({
        **base, "population": {"num_speakers": pairs, "num_listeners": pairs, "update": update}})


def available_bytes(device) -> int | None:
    """Memory a program may take: the device's limit where its backend reports one (GPUs), else
    the host's available memory (CPU)."""
    limit = (device.memory_stats() or {}).get("bytes_limit")
    if limit:
        return int(limit)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def measure(base: dict, pairs: int, args, data: jax.Array) -> dict:
    cfg = _config(base, pairs, args.update)
    memory, step_ms, _ = PAPER_V100["ImageNet"].get(pairs, (None, None, None))
    device = jax.devices()[0]
    head = {"benchmark": "population", "device": f"{device.platform}:{device.device_kind}",
            "pairs": pairs, "update": args.update, "sizes": args.config or "paper",
            "batch_size": cfg.training.batch_size, "dim": args.dim,
            "paper_v100_step_ms": step_ms, "paper_v100_memory_gib": memory}
    before = load.snapshot()
    try:
        timing = time_trainer(cfg, data, args.steps, args.steps_per_call,
                              max_bytes=available_bytes(device))
    except MemoryError as e:
        return {**head, "skipped": str(e), "load": load.since(before)}
    return {
        **head,
        "step_ms": 1000 * timing.s_per_step, "pair_updates_per_s": pairs / timing.s_per_step,
        "compile_s": timing.compile_s,
        "step_memory_gib": (timing.program_bytes - data.nbytes) / GIB,
        "process_peak_mib": train.peak_memory_mib(parallel.data_mesh()),
        "load": load.since(before)}


def markdown(results: list[dict]) -> str:
    one = next((r.get("step_ms") for r in results if r["pairs"] == 1), None)
    lines = ["| pairs | step (ms) | vs 1 pair | pair-updates/s | compile (s) | step memory (GiB) "
             "| paper V100 step (ms) | paper V100 memory (GiB) |", "|" + "---|" * 8]
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['pairs']} | skipped: {r['skipped']} |" + " |" * 4
                         + f" {r['paper_v100_step_ms'] or 'n/a'} | "
                         f"{r['paper_v100_memory_gib'] or 'n/a'} |")
            continue
        ratio = f"{r['step_ms'] / one:.2f}x" if one else "n/a"
        lines.append(f"| {r['pairs']} | {r['step_ms']:.1f} | {ratio} | "
                     f"{r['pair_updates_per_s']:.2f} | {r['compile_s']:.1f} | "
                     f"{r['step_memory_gib']:.3g} | {r['paper_v100_step_ms'] or 'n/a'} | "
                     f"{r['paper_v100_memory_gib'] or 'n/a'} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m emcom.bench population", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", default="1,10,50", help="comma-separated population sizes")
    p.add_argument("--update", default="vectorised", choices=config_lib.UPDATE_MODES,
                   help="population.update of the timed trainer")
    add_size_arguments(p)
    args = p.parse_args(argv)
    base = sizes(args.config, args.batch_size)
    data = random_dataset(args)
    results = []
    for n in sorted(int(s) for s in args.pairs.split(",")):
        results.append(measure(base, n, args, data))
        print(json.dumps(results[-1]), flush=True)
    print(markdown(results))
    return 0
