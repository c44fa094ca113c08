"""`python -m emcom.bench lstm`: emcom's LSTM against `hk.LSTM`, in one run.

For the listener's message encoder (hidden 512, word embedding 10) and the speaker's LSTM (hidden
256, embedding 10) at batch 1024 over 10 steps (`hk.dynamic_unroll`, as the agents run them), it
times the gradient of the outputs' sum with respect to the parameters and the inputs, for
`hk.LSTM` (autodiff's backward) and `emcom.lstm.LSTM` (the hand-written one), as the median of
--repeats interleaved calls. Each LSTM's analytic FLOPs (3 x T x 2 B (E + H) 4H: forward, input
gradient and weight gradient) give its GFLOP/s. Prints one JSON object per size with the ratio
(emcom over haiku: below 1 is faster) and the largest relative difference of the gradients, then
the load (`emcom.bench.load`).
"""

from __future__ import annotations

import argparse
import json
import time

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from emcom import lstm
from emcom.bench import load

SIZES = {"listener": (512, 10), "speaker": (256, 10)}  # name -> (hidden, embed)


def gradient_fn(lstm_class, hidden: int):
    """(init, jitted gradient of the unrolled outputs' sum w.r.t. (params, inputs))."""

    def unroll(inputs):
        core = lstm_class(hidden, name="lstm")
        outputs, _ = hk.dynamic_unroll(core, inputs, core.initial_state(inputs.shape[1]))
        return outputs.sum()

    model = hk.without_apply_rng(hk.transform(unroll))
    return model.init, jax.jit(jax.grad(model.apply, argnums=(0, 1)))


def _max_relative_diff(a, b) -> float:
    diffs = [float(jnp.max(jnp.abs(x - y)) / (jnp.max(jnp.abs(y)) + 1e-30))
             for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))]
    return max(diffs)


def compare(hidden: int, embed: int, *, batch: int, length: int, repeats: int) -> dict:
    inputs = jax.random.normal(jax.random.PRNGKey(0), (length, batch, embed), jnp.float32)
    init, haiku_grad = gradient_fn(hk.LSTM, hidden)
    params = init(jax.random.PRNGKey(1), inputs)  # the same tree for both (tests/test_lstm.py)
    fns = {"haiku": haiku_grad, "emcom": gradient_fn(lstm.LSTM, hidden)[1]}
    grads = {name: jax.block_until_ready(f(params, inputs)) for name, f in fns.items()}
    runs = {name: [] for name in fns}
    for _ in range(repeats):  # interleaved: a change of load hits both versions
        for name, f in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(f(params, inputs))
            runs[name].append(time.perf_counter() - start)
    ms = {name: 1000 * float(np.median(r)) for name, r in runs.items()}
    gflop = 3 * length * 2 * batch * (embed + hidden) * 4 * hidden / 1e9
    return {"hidden": hidden, "embed": embed, "batch": batch, "length": length,
            "repeats": repeats, "gflop": gflop,
            "haiku_ms": ms["haiku"], "emcom_ms": ms["emcom"],
            "haiku_gflops": gflop / ms["haiku"] * 1e3, "emcom_gflops": gflop / ms["emcom"] * 1e3,
            "ratio": ms["emcom"] / ms["haiku"],
            "max_relative_grad_diff": _max_relative_diff(grads["emcom"], grads["haiku"])}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m emcom.bench lstm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--length", type=int, default=10, help="message length T")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls of each version")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies the hidden sizes (tests run small)")
    args = parser.parse_args(argv)
    before = load.snapshot()
    for name, (hidden, embed) in SIZES.items():
        row = compare(max(1, round(hidden * args.scale)), embed, batch=args.batch,
                      length=args.length, repeats=args.repeats)
        print(json.dumps({"benchmark": "lstm", "lstm": name, **row}), flush=True)
    print(json.dumps({"benchmark": "lstm", "backend": jax.default_backend(),
                      **load.since(before)}))
    return 0
