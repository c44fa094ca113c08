"""Training speed: `python -m emcom.bench train [options]`, one JSON object per population size.

For each population of N pairs (N speakers, N listeners, S = N pairs per step) it times
(a) the trainer (`emcom.train.make_update`, many steps per call under `lax.scan`) in the
population update mode `--update` (default `vectorised`: all S pairs in one vmapped gradient) and (b) the reference implementation's pattern, a Python loop
that updates one pair per jitted call. It reports steps/s and pair-updates/s of both, their
ratio, the FLOPs of one step (`emcom.bench.flops`, an analytic count of its matmuls, with its
breakdown; XLA's cost analysis counts the body of the scan over message positions once, not T
times) and the achieved FLOP/s against this machine's float32 matmul peak, the median of repeated
measurements in the same run (with its spread, and numpy's beside it). Every measurement carries
the load average before and after it and the CPU time other processes took meanwhile
(`emcom.bench.load`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from emcom import agents, config as config_lib, parallel, population, step as step_lib, train
from emcom.bench import flops as flops_lib, load
from emcom.config import TrainConfig


def _spread(gflops: list[float]) -> dict:
    q1, median, q3 = np.percentile(gflops, [25, 50, 75])
    return {k: round(float(v), 1) for k, v in
            {"median": median, "min": min(gflops), "max": max(gflops), "q1": q1, "q3": q3}.items()}


def matmul_peak(n: int = 2048, repeats: int = 11) -> dict:
    """GFLOP/s of an n x n float32 matmul, `repeats` timed runs each of jax (jitted) and numpy.

    The median, not the best run: one lucky run is no peak that the step can be held to.
    """
    before = load.snapshot()
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    b = np.asarray(a)
    out = {"n": n, "repeats": repeats}
    for name, run in (("jax", lambda: f(a, a).block_until_ready()), ("numpy", lambda: b @ b)):
        run()  # compile / warm up
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            run()
            runs.append(2 * n ** 3 / (time.perf_counter() - t) / 1e9)
        out[name] = _spread(runs)
    return {**out, "load": load.since(before)}


def _config(args, pairs: int) -> dict:
    c = {"game": {"num_candidates": -1},
         "population": {"num_speakers": pairs, "num_listeners": pairs, "update": args.update},
         "training": {"batch_size": args.batch_size, "eval_candidates": [2]}}
    if not args.paper_sizes:
        c["speaker"] = {"hidden_size": args.speaker_hidden}
        c["listener"] = {"hidden_size": args.listener_hidden, "proj_dim": args.proj_dim}
    return config_lib.resolve(c)


def sizes(config: str | None, batch_size: int | None = None) -> dict:
    """Overrides of the training defaults for a benchmark: a workflow config's `train:` block, or
    the paper's sizes (the defaults, |C| every other image of the batch); `batch_size` replaces
    the batch where given."""
    base = ({"game": {"num_candidates": -1}} if config is None
            else yaml.safe_load(Path(config).read_text())["train"])
    if batch_size is not None:
        base = {**base, "training": {**base.get("training", {}), "batch_size": batch_size}}
    return base


def add_size_arguments(p: argparse.ArgumentParser) -> None:
    """The options of a benchmark that times the trainer at the paper's sizes or a config's
    (`sizes`) on a random dataset (`random_dataset`)."""
    p.add_argument("--config", default=None,
                   help="the sizes of a workflow config's `train:` block (e.g. config/config.yaml) "
                        "instead of the paper's")
    p.add_argument("--batch-size", type=int, default=None,
                   help="default: the sizes' batch (the paper's: 1024)")
    p.add_argument("--dim", type=int, default=2048, help="input feature size D")
    p.add_argument("--rows", type=int, default=8192, help="rows of the random dataset")
    p.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    p.add_argument("--steps-per-call", type=int, default=10)


def random_dataset(args: argparse.Namespace) -> jax.Array:
    """(rows, dim) standard normal features, the same for every benchmark."""
    return jax.random.normal(jax.random.PRNGKey(0), (args.rows, args.dim), jnp.float32)


def _program_bytes(stats) -> int:
    """Bytes a compiled program holds at once by XLA's buffer assignment: arguments, outputs (less
    the donated arguments they alias) and temporaries (-1 where the backend does not say). Not
    `peak_memory_in_bytes`: the CPU backend gives only the arguments there."""
    if stats is None:
        return -1
    return int(stats.argument_size_in_bytes + stats.output_size_in_bytes
               - stats.alias_size_in_bytes + stats.temp_size_in_bytes)


class Timing(NamedTuple):
    compile_s: float   # lowering and compiling the multi-step update
    s_per_step: float  # steady state, after one warm-up call
    program_bytes: int  # the compiled update's memory (`_program_bytes`, arguments included)


def time_trainer(cfg: TrainConfig, data: jax.Array, steps: int, steps_per_call: int,
                 max_bytes: int | None = None, seeds: int = 1) -> Timing:
    """The trainer's update (`train.make_update`, on-device batches) in `cfg`'s population update
    mode, of `seeds` runs in one program (`cfg.training.seeds_batching`): its compile time and its
    seconds per step of all runs over `steps` steps (at least one call). Raises MemoryError,
    before running it, if the compiled update needs more than `max_bytes`."""
    speaker, listener = agents.make_speaker(cfg), agents.make_listener(cfg)
    d = data.shape[1]
    mesh = parallel.data_mesh()
    state = parallel.replicate(train.stack([
        population.init_state(config_lib.resolve({**cfg.to_dict(), "seed": s}), speaker,
                              listener, d) for s in range(seeds)]), mesh)
    update = train.make_update(cfg, speaker, listener, d, mesh, on_device=True, seeds=seeds)
    idx = jnp.asarray(np.stack([
        train.BatchSchedule(s, data.shape[0], cfg.training.batch_size).indices(0, steps_per_call)
        for s in range(seeds)]))
    t = time.perf_counter()
    update = update.lower(state, data, idx).compile()
    compile_s = time.perf_counter() - t
    program_bytes = _program_bytes(update.memory_analysis())
    if max_bytes is not None and program_bytes > max_bytes:
        raise MemoryError(f"the compiled update needs {program_bytes / 2 ** 30:.1f} GiB, more than "
                          f"the {max_bytes / 2 ** 30:.1f} GiB available")
    state, m = update(state, data, idx)  # warm up
    jax.block_until_ready(m)
    calls = max(1, steps // steps_per_call)
    t = time.perf_counter()
    for _ in range(calls):
        state, m = update(state, data, idx)
    jax.block_until_ready((state, m))
    return Timing(compile_s, (time.perf_counter() - t) / (calls * steps_per_call), program_bytes)


def bench_loop(cfg: TrainConfig, data: jax.Array, steps: int, pairs: int) -> float:
    """Seconds per step when each of the S pairs is updated by its own jitted call."""
    one = config_lib.resolve({**cfg.to_dict(), "population": {"num_speakers": 1, "num_listeners": 1,
                                                     "pairs_per_step": 1}})
    speaker, listener = agents.make_speaker(one), agents.make_listener(one)
    d = data.shape[1]
    step = jax.jit(step_lib.make_step(one, speaker, listener, d), donate_argnums=0)
    states = [population.init_state(config_lib.resolve({**one.to_dict(), "seed": i}), speaker, listener, d)
              for i in range(pairs)]
    b = cfg.training.batch_size
    schedule = train.BatchSchedule(0, data.shape[0], b)
    rng = np.random.default_rng(0)
    def batch(s):
        return data[jnp.asarray(schedule.indices(s, 1)[0])]

    states[0], m = step(states[0], batch(0))  # compile + warm up (the step and the gather)
    jax.block_until_ready(m)
    t = time.perf_counter()
    for s in range(steps):
        x = batch(s)
        for i in rng.integers(0, pairs, pairs):  # S = N pairs drawn with replacement
            states[i], m = step(states[i], x)
    jax.block_until_ready((states, m))
    return (time.perf_counter() - t) / steps


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The options; --paper sets the paper's sizes and, where not given, fewer timed steps."""
    p = argparse.ArgumentParser(prog="python -m emcom.bench train", description=__doc__)
    p.add_argument("--pairs", default="1,10,50", help="comma-separated population sizes")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--dim", type=int, default=128, help="input feature size D")
    p.add_argument("--rows", type=int, default=4096, help="rows of the random dataset")
    p.add_argument("--steps", type=int, help="timed steps per measurement (20; --paper: 4)")
    p.add_argument("--steps-per-call", type=int, help="steps per compiled call (10; --paper: 2)")
    p.add_argument("--loop-steps", type=int,
                   help="timed steps of the Python loop (4; --paper: 2)")
    p.add_argument("--speaker-hidden", type=int, default=64)
    p.add_argument("--listener-hidden", type=int, default=128)
    p.add_argument("--proj-dim", type=int, default=64)
    p.add_argument("--paper-sizes", action="store_true", help="paper model sizes (256/512/256)")
    p.add_argument("--update", default="vectorised", choices=config_lib.UPDATE_MODES,
                   help="population.update of the timed trainer")
    p.add_argument("--no-loop", action="store_true", help="skip the Python-loop baseline")
    p.add_argument("--paper", action="store_true",
                   help="paper configuration: batch 1024, D 2048, paper sizes, 1 pair; fewer "
                        "timed steps unless given")
    args = p.parse_args(argv)
    counts = (4, 2, 2) if args.paper else (20, 10, 4)  # steps, steps per call, loop steps
    for name, default in zip(("steps", "steps_per_call", "loop_steps"), counts):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.paper:
        args.batch_size, args.dim, args.paper_sizes, args.pairs = 1024, 2048, True, "1"
        args.rows = max(args.rows, 4096)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    pairs = [int(s) for s in args.pairs.split(",")]
    data = jax.random.normal(jax.random.PRNGKey(0), (args.rows, args.dim), jnp.float32)
    peak = matmul_peak()
    device = jax.devices()[0]
    peak_gflops = peak["jax"]["median"]
    for n in pairs:
        cfg = _config(args, n)
        before = load.snapshot()
        timing = time_trainer(cfg, data, args.steps, args.steps_per_call)
        vec = timing.s_per_step
        loop = float("nan") if args.no_loop else bench_loop(cfg, data, args.loop_steps, n)
        parts = flops_lib.config_flops(cfg, args.dim)
        gflop = parts.pop("total") / 1e9
        print(json.dumps({
            "benchmark": "train", "device": f"{device.platform}:{device.device_kind}",
            "num_devices": jax.local_device_count(), "pairs": n, "update": args.update,
            "batch_size": args.batch_size,
            "dim": args.dim, "speaker_hidden": cfg.speaker.hidden_size,
            "listener_hidden": cfg.listener.hidden_size,
            "proj_dim": cfg.listener.proj_dim,
            "steps": args.steps, "steps_per_call": args.steps_per_call,
            "compile_s": timing.compile_s,
            "vectorised_s_per_step": vec, "vectorised_steps_per_s": 1 / vec,
            "vectorised_pair_updates_per_s": n / vec,
            "loop_s_per_step": loop, "loop_steps_per_s": 1 / loop,
            "loop_pair_updates_per_s": n / loop, "speedup_vs_loop": loop / vec,
            "analytic_gflop_per_step": gflop,
            "analytic_gflop_breakdown": {k: float(f"{v / 1e9:.4g}") for k, v in parts.items() if v},
            "vectorised_gflop_per_s": gflop / vec,
            "fraction_of_median_matmul_peak": gflop / vec / peak_gflops,
            "matmul_peak_gflop_per_s": peak, "load": load.since(before),
        }), flush=True)
    return 0
