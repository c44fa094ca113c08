"""Where one training step's time goes: `python -m emcom.bench step_profile [options]`.

At the paper's sizes (batch 1024, D 2048, 1 pair; or a workflow config's `train:` sizes with
`--config`), it times each part of a step alone, jitted, as the median of `--repeats` calls:

  speaker rollout           the online speaker's sampled rollout, forward only
  speaker rollout, grad     forward and backward (the gradient of its logits' and values' sums)
  EMA target                the target's teacher-forced pass on the rollout's words
  listener message          the listener's message encoder (embedding, LSTM, projection), forward
  listener message, grad    forward and backward
  listener candidates, grad the candidate projection, forward and backward
  pair loss                 the whole game of one pair, forward
  pair gradient             the whole game, forward and backward, both agents
  Adam, both agents         one optimiser step of the speaker and of the listener
  training step             the trainer's update (`emcom.bench.train.time_trainer`, a scan of
                            `--steps-per-call` steps), per step

Each part's analytic FLOPs (`emcom.bench.flops`, matmuls only) give its GFLOP/s and the fraction of
this machine's jax matmul peak, the median of 11 measurements in the same run
(`emcom.bench.train.matmul_peak`). The parts are separate programs, so their sum need not equal the
step: XLA fuses and schedules the whole step together. One JSON object per part, then a Markdown
table.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from emcom import agents, config as config_lib, population
from emcom.bench import flops as flops_lib, load
from emcom.bench.train import matmul_peak, sizes, time_trainer
from emcom.losses import make_pair_loss


def median_ms(f, *args, repeats: int) -> float:
    f = jax.jit(f)
    jax.block_until_ready(f(*args))  # compile, warm up
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(f(*args))
        runs.append(time.perf_counter() - t)
    return 1000 * float(np.median(runs))


def parts(cfg: config_lib.TrainConfig, dim: int) -> dict[str, tuple]:
    """name -> (function, its arguments, its analytic FLOPs)."""
    speaker, listener = agents.make_speaker(cfg), agents.make_listener(cfg)
    state = population.init_state(cfg, speaker, listener, dim)
    sp, li, target, sp_opt, li_opt = (jax.tree_util.tree_map(lambda a: a[0], t) for t in (
        state.speakers, state.listeners, state.targets, state.speaker_opt, state.listener_opt))
    x = jax.random.normal(jax.random.PRNGKey(1), (cfg.training.batch_size, dim), jnp.float32)
    key = jax.random.PRNGKey(2)
    words = speaker.greedy(sp, x)
    pair_loss = make_pair_loss(cfg, speaker, listener, cfg.num_candidates)
    optimizer = population.make_optimizer(cfg)
    f = flops_lib.config_flops(cfg, dim)
    rollout_flops = sum(f[k] for k in ("speaker_adapter", "speaker_lstm", "speaker_policy",
                                       "speaker_value", "speaker_q_heads"))
    message_flops = f["listener_lstm"] + f["listener_message_proj"]

    def rollout_sums(p, x, k):
        r = speaker.rollout(p, k, x)
        return r.logits.sum() + r.values.sum()

    def adam_both(sp, sp_opt, li, li_opt):
        return (population.adam_step(optimizer, sp, sp_opt, sp),
                population.adam_step(optimizer, li, li_opt, li))

    return {
        "speaker rollout": (lambda p, x, k: speaker.rollout(p, k, x), (sp, x, key),
                            rollout_flops / 3),
        "speaker rollout, grad": (jax.grad(rollout_sums), (sp, x, key), rollout_flops),
        "EMA target": (lambda p, x, m: speaker.teacher_force(p, x, m), (target, x, words),
                       f["ema_target"]),
        "listener message": (listener.encode_message, (li, words), message_flops / 3),
        "listener message, grad": (jax.grad(lambda p, m: listener.encode_message(p, m).sum()),
                                   (li, words), message_flops),
        "listener candidates, grad": (
            jax.grad(lambda p, x: listener.encode_candidates(p, x).sum()), (li, x),
            f["listener_candidate_proj"]),
        "pair loss": (pair_loss, (sp, li, target, x, key), None),
        "pair gradient": (jax.grad(pair_loss, argnums=(0, 1), has_aux=True),
                          (sp, li, target, x, key), f["total"]),
        "Adam, both agents": (adam_both, (sp, sp_opt, li, li_opt), 0.0),
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m emcom.bench step_profile", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, help="a workflow config whose `train:` sizes to use")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--dim", type=int, default=2048, help="input feature size D")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps-per-call", type=int, default=2)
    args = p.parse_args(argv)
    cfg = config_lib.resolve(sizes(args.config, args.batch_size))
    peak = matmul_peak()
    peak_gflops = peak["jax"]["median"]
    before = load.snapshot()
    rows = []
    for name, (f, f_args, flop) in parts(cfg, args.dim).items():
        rows.append((name, median_ms(f, *f_args, repeats=args.repeats), flop))
    data = jax.random.normal(jax.random.PRNGKey(0), (4 * cfg.training.batch_size, args.dim),
                             jnp.float32)
    timing = time_trainer(cfg, data, args.repeats * args.steps_per_call, args.steps_per_call)
    rows.append(("training step", 1000 * timing.s_per_step, flops_lib.config_flops(cfg, args.dim)
                 ["total"]))
    figures = load.since(before)
    step_ms = rows[-1][1]
    table = ["| part | ms | of the step | GFLOP | GFLOP/s | of the matmul peak |",
             "|---|---|---|---|---|---|"]
    for name, ms, flop in rows:
        gflops = None if not flop else flop / 1e9 / (ms / 1000)
        print(json.dumps({"benchmark": "step_profile", "part": name, "ms": ms,
                          "fraction_of_step": ms / step_ms,
                          "gflop": None if flop is None else flop / 1e9, "gflop_per_s": gflops,
                          "fraction_of_matmul_peak": None if gflops is None
                          else gflops / peak_gflops}), flush=True)
        table.append(f"| {name} | {ms:.1f} | {ms / step_ms:.0%} | "
                     + ("n/a | n/a | n/a |" if not flop else
                        f"{flop / 1e9:.3g} | {gflops:.1f} | {gflops / peak_gflops:.0%} |"))
    print(json.dumps({"benchmark": "step_profile", "batch_size": cfg.training.batch_size,
                      "dim": args.dim, "sizes": args.config or "paper",
                      "compile_s": timing.compile_s, "matmul_peak_gflop_per_s": peak,
                      "load": figures}))
    print("\n".join(table))
    return 0
