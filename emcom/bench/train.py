"""Training speed: `python -m emcom.bench train [options]`, one JSON object per population size.

For each population of N pairs (N speakers, N listeners, S = N pairs per step) it times
(a) the trainer (`emcom.train.make_update`, many steps per call under `lax.scan`) in the
population update mode `--update` (default `vectorised`: all S pairs in one vmapped gradient) and (b) the reference implementation's pattern, a Python loop
that updates one pair per jitted call. It reports steps/s and pair-updates/s of both, their
ratio, the model FLOPs of one step (XLA cost analysis of the compiled single step) and the
achieved FLOP/s against this machine's float32 matmul peak, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from emcom import agents, config as config_lib, parallel, population, step as step_lib, train


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """Measured float32 FLOP/s of an n x n matmul (best of `repeats`)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    f(a, a).block_until_ready()
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        f(a, a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost.get("flops", float("nan"))) if cost else float("nan")


def _config(args, pairs: int) -> dict:
    c = {"game": {"num_candidates": -1},
         "population": {"num_speakers": pairs, "num_listeners": pairs, "update": args.update},
         "training": {"batch_size": args.batch_size, "eval_candidates": [2]}}
    if not args.paper_sizes:
        c["speaker"] = {"hidden_size": args.speaker_hidden}
        c["listener"] = {"hidden_size": args.listener_hidden, "proj_dim": args.proj_dim}
    return config_lib.resolve(c)


def bench_vectorised(cfg: dict, data: jax.Array, steps: int, steps_per_call: int):
    """(seconds per step, FLOPs of one step) of the vectorised trainer."""
    speaker, listener = agents.make_speaker(cfg), agents.make_listener(cfg)
    d = data.shape[1]
    mesh = parallel.data_mesh()
    state = parallel.replicate(population.init_state(cfg, speaker, listener, d), mesh)
    update = train.make_update(cfg, speaker, listener, d, mesh, on_device=True)
    schedule = train.BatchSchedule(0, data.shape[0], cfg["training"]["batch_size"])
    idx = jnp.asarray(schedule.indices(0, steps_per_call))
    state, m = update(state, data, idx)  # compile + warm up
    jax.block_until_ready(m)
    calls = max(1, steps // steps_per_call)
    t = time.perf_counter()
    for _ in range(calls):
        state, m = update(state, data, idx)
    jax.block_until_ready((state, m))
    per_step = (time.perf_counter() - t) / (calls * steps_per_call)
    step = step_lib.make_step(cfg, speaker, listener, d)
    x = data[:cfg["training"]["batch_size"]]
    flops = _flops(jax.jit(step).lower(state, x).compile())
    return per_step, flops


def bench_loop(cfg: dict, data: jax.Array, steps: int, pairs: int) -> float:
    """Seconds per step when each of the S pairs is updated by its own jitted call."""
    one = config_lib.resolve({**cfg, "population": {"num_speakers": 1, "num_listeners": 1,
                                                     "pairs_per_step": 1}})
    speaker, listener = agents.make_speaker(one), agents.make_listener(one)
    d = data.shape[1]
    step = jax.jit(step_lib.make_step(one, speaker, listener, d), donate_argnums=0)
    states = [population.init_state(config_lib.resolve({**one, "seed": i}), speaker, listener, d)
              for i in range(pairs)]
    b = cfg["training"]["batch_size"]
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


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m emcom.bench train", description=__doc__)
    p.add_argument("--pairs", default="1,10,50", help="comma-separated population sizes")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--dim", type=int, default=128, help="input feature size D")
    p.add_argument("--rows", type=int, default=4096, help="rows of the random dataset")
    p.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    p.add_argument("--steps-per-call", type=int, default=10)
    p.add_argument("--loop-steps", type=int, default=4, help="timed steps of the Python loop")
    p.add_argument("--speaker-hidden", type=int, default=64)
    p.add_argument("--listener-hidden", type=int, default=128)
    p.add_argument("--proj-dim", type=int, default=64)
    p.add_argument("--paper-sizes", action="store_true", help="paper model sizes (256/512/256)")
    p.add_argument("--update", default="vectorised", choices=step_lib.UPDATE_MODES,
                   help="population.update of the timed trainer")
    p.add_argument("--no-loop", action="store_true", help="skip the Python-loop baseline")
    p.add_argument("--paper", action="store_true",
                   help="paper configuration: batch 1024, D 2048, paper sizes, 1 pair")
    args = p.parse_args(argv)
    if args.paper:
        args.batch_size, args.dim, args.paper_sizes, args.pairs = 1024, 2048, True, "1"
        args.steps, args.steps_per_call, args.loop_steps = 4, 2, 2
        args.rows = max(args.rows, 4096)
    pairs = [int(s) for s in args.pairs.split(",")]
    data = jax.random.normal(jax.random.PRNGKey(0), (args.rows, args.dim), jnp.float32)
    peak = matmul_peak()
    device = jax.devices()[0]
    for n in pairs:
        cfg = _config(args, n)
        vec, flops = bench_vectorised(cfg, data, args.steps, args.steps_per_call)
        loop = float("nan") if args.no_loop else bench_loop(cfg, data, args.loop_steps, n)
        print(json.dumps({
            "benchmark": "train", "device": f"{device.platform}:{device.device_kind}",
            "num_devices": jax.local_device_count(), "pairs": n, "update": args.update,
            "batch_size": args.batch_size,
            "dim": args.dim, "speaker_hidden": cfg["speaker"]["hidden_size"],
            "listener_hidden": cfg["listener"]["hidden_size"],
            "vectorised_s_per_step": vec, "vectorised_steps_per_s": 1 / vec,
            "vectorised_pair_updates_per_s": n / vec,
            "loop_s_per_step": loop, "loop_steps_per_s": 1 / loop,
            "loop_pair_updates_per_s": n / loop, "speedup_vs_loop": loop / vec,
            "model_flops_per_step": flops, "model_flops_per_s": flops / vec,
            "matmul_peak_flops_per_s": peak, "fraction_of_matmul_peak": flops / vec / peak,
        }), flush=True)
    return 0
