"""The analytic FLOP count of a training step (`emcom.bench.flops`) against XLA's own count.

XLA's cost analysis counts a `while` body once, so the step is compiled with every `lax.scan`
fully unrolled (test only: `jax.lax.scan` is patched to `unroll=True`; haiku's scan and
dynamic_unroll call it). Two checks on the compiled program:

- its matmuls (every `dot` of the optimised HLO, 2 x output size x contracted size) equal the
  analytic count, less at most the heads of output size 1 (value, and the Q head's state value):
  XLA may rewrite such a matrix-vector product as a multiply-reduce, no longer a dot. Any error
  of the count larger than those heads (0.014 % of it at the paper's sizes, 0.2 % at the small
  ones) fails;
- its cost analysis total exceeds the analytic count by less than `ELEMENTWISE`: what it counts
  besides the matmuls is elementwise work (LSTM gates, softmaxes, losses, Adam, EMA update, the
  random bits; XLA counts one FLOP per element and op), which shrinks as the sizes grow.

A message length of 4 instead of 10 keeps the unrolled compile short; the count is linear in it.
"""

import math
import re

import jax
import jax.numpy as jnp
import pytest

from emcom import agents, config, population, step as step_lib
from emcom.bench import flops

# Measured with jax 0.10.2: +1.0 % at the paper sizes, +9.6 % at the small ones.
ELEMENTWISE = {"paper": 0.02, "small": 0.12}

CASES = {
    # The paper's sizes, one pair, the benchmark's update mode.
    "paper": ({"training": {"batch_size": 1024}}, 2048),
    # Two vmapped pairs, the Q heads of the policy-gradient loss, the target's own rollout.
    "small": ({"speaker": {"hidden_size": 64, "embed_dim": 5},
               "listener": {"hidden_size": 96, "embed_dim": 7, "proj_dim": 24},
               "loss": {"speaker": "policy_gradient", "reference_sampling": True},
               "population": {"num_speakers": 2, "num_listeners": 2},
               "training": {"batch_size": 40}}, 72),
}


def _cfg(overrides):
    base = {"game": {"num_candidates": -1, "message_length": 4},
            "population": {"update": "vectorised"}, "training": {"eval_candidates": [2]}}
    for k, v in overrides.items():
        base[k] = {**base.get(k, {}), **v}
    return config.resolve(base)


def hlo_dot_flops(hlo: str) -> float:
    """Sum over the `dot` instructions of an HLO module of 2 x output size x contracted size."""
    def dims(s):
        return [int(d) for d in s.split(",") if d]
    shapes = {m[1]: dims(m[2]) for m in re.finditer(r"%([\w.-]+) = \w+\[([\d,]*)\]", hlo)}
    dots = re.findall(r"= \w+\[([\d,]*)\]\S* dot\(%([\w.-]+), %[\w.-]+\),.*?"
                      r"lhs_contracting_dims=\{([\d,]*)\}", hlo)
    assert dots, "no dot instruction found: has the HLO text format changed?"
    return float(sum(2 * math.prod(dims(out)) * math.prod(shapes[lhs][i] for i in dims(k))
                     for out, lhs, k in dots))


def compiled_unrolled_step(cfg, dim, monkeypatch):
    # Unrolled, every loop body appears once per iteration in the program XLA counts.
    scan = jax.lax.scan
    monkeypatch.setattr(jax.lax, "scan", lambda *a, unroll=1, **kw: scan(*a, unroll=True, **kw))
    speaker, listener = agents.make_speaker(cfg), agents.make_listener(cfg)
    state = population.init_state(cfg, speaker, listener, dim)
    x = jnp.zeros((cfg.training.batch_size, dim), jnp.float32)
    return jax.jit(step_lib.make_step(cfg, speaker, listener, dim)).lower(state, x).compile()


@pytest.mark.parametrize("case", sorted(CASES))
def test_analytic_count_matches_xla_unrolled(case, monkeypatch):
    overrides, dim = CASES[case]
    cfg = _cfg(overrides)
    parts = flops.config_flops(cfg, dim)
    analytic = parts["total"]
    matvec = parts["speaker_value"] * (2 if parts["speaker_q_heads"] else 1)
    compiled = compiled_unrolled_step(cfg, dim, monkeypatch)
    cost = compiled.cost_analysis()
    xla_total = float((cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"])
    dots = hlo_dot_flops(compiled.as_text())
    print(f"{case}: analytic {analytic:.6g}, XLA dots {dots:.6g} ({dots / analytic - 1:+.2e}), "
          f"XLA total {xla_total:.6g} ({xla_total / analytic - 1:+.2%})")
    assert 0 <= analytic - dots <= matvec
    assert 0 <= xla_total / analytic - 1 < ELEMENTWISE[case]


def test_breakdown_by_hand():
    """The paper's sizes, counted once more by hand from the formulas of the module docstring."""
    p = flops.train_step_flops(batch=1024, dim=2048, speaker_hidden=256, speaker_embed=10,
                               listener_hidden=512, listener_embed=10, proj_dim=256)
    assert p["listener_lstm"] == 3 * 10 * 2 * 1024 * 522 * 2048
    assert p["speaker_lstm"] == 3 * 10 * 2 * 1024 * 266 * 1024
    assert p["ema_target"] == 2 * 1024 * 2048 * 512 + 10 * 2 * 1024 * (266 * 1024 + 256 * 20)
    assert p["speaker_q_heads"] == 0
    assert p["total"] == sum(v for k, v in p.items() if k != "total")
    assert p["total"] == pytest.approx(99.42e9, rel=1e-3)
    two = flops.train_step_flops(batch=1024, dim=2048, speaker_hidden=256, speaker_embed=10,
                                 listener_hidden=512, listener_embed=10, proj_dim=256, pairs=2)
    assert two["total"] == 2 * p["total"]
