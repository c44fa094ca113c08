"""Analytic FLOPs of one training step (`emcom.step.make_step`), matmuls only.

XLA's `cost_analysis()` counts a `while` body once, not once per iteration, and every recurrent
matmul sits in a scan over the T message positions: at the paper's sizes it reports ~20 GFLOP for
a step of ~99.4. This module counts the matmuls of the code instead; `tests/test_bench_flops.py`
checks it against XLA's count of the same step with every scan unrolled.

A matmul X (m, k) @ W (k, n) is 2 m k n FLOPs forward. Its backward takes dX = dY W^T and
dW = X^T dY, 2 m k n each, so forward and backward together cost 3x the forward. Two matmuls have
no input gradient, as their input is the data x: the speaker's adapter and the listener's
candidate projection, 2x. The EMA target is not differentiated, 1x: teacher-forced on the online
speaker's words, or (`loss.reference_sampling`) its own rollout, the same matmuls either way.

Sizes: B batch, D features, T message length, V vocabulary, Hs/Es the speaker's LSTM and word
embedding sizes, Hl/El the listener's, F the projection size, S pairs per step. Per pair:

  speaker adapter      D -> 2 Hs          2 B D 2Hs                  x 2 (weight grad only)
  speaker LSTM         T steps            T 2 B (Es + Hs) 4Hs        x 3
  speaker policy       Hs -> V, T steps   T 2 B Hs V                 x 3
  speaker value head   Hs -> 1, T steps   T 2 B Hs                   x 3
  speaker Q heads      Hs -> 1 + V        T 2 B Hs (1 + V)           x 3 (policy_gradient only)
  EMA target           adapter + LSTM + policy as above              x 1 (forward only)
  listener LSTM        T steps            T 2 B (El + Hl) 4Hl        x 3
  listener msg proj    Hl -> F            2 B Hl F                   x 3
  listener cand proj   D -> F             2 B D F                    x 2 (weight grad only)
  listener scores      (B, F) @ (F, B)    2 B B F                    x 3 (both operands)

The step's total is S times the sum. Not counted: the word embeddings (gathers; their gradient a
scatter-add) and every elementwise op (LSTM gate nonlinearities, softmaxes, losses, Adam, the EMA
update), which XLA counts as well: 1 % more at the paper's sizes, 10 % at small ones
(tests/test_bench_flops.py). The scores are always B x B: candidate sets of |C| < B are gathered
from them. The Q heads exist only for `loss.speaker = policy_gradient` (with reinforce their
outputs are unused and XLA drops them). Imitation and reset steps (off by default) are not counted.
"""

from __future__ import annotations

from emcom.config import TrainConfig


def train_step_flops(*, batch: int, dim: int, speaker_hidden: int, speaker_embed: int,
                     listener_hidden: int, listener_embed: int, proj_dim: int,
                     vocab: int = 20, length: int = 10, pairs: int = 1,
                     q_heads: bool = False) -> dict[str, float]:
    """FLOPs of one training step (forward and backward) by component; 'total' is their sum."""
    b, t, hs, hl, f = batch, length, speaker_hidden, listener_hidden, proj_dim
    adapter = 2 * b * dim * 2 * hs
    s_lstm = t * 2 * b * (speaker_embed + hs) * 4 * hs
    policy = t * 2 * b * hs * vocab
    parts = {
        "speaker_adapter": 2 * adapter,
        "speaker_lstm": 3 * s_lstm,
        "speaker_policy": 3 * policy,
        "speaker_value": 3 * t * 2 * b * hs,
        "speaker_q_heads": 3 * t * 2 * b * hs * (1 + vocab) if q_heads else 0,
        "ema_target": adapter + s_lstm + policy,
        "listener_lstm": 3 * t * 2 * b * (listener_embed + hl) * 4 * hl,
        "listener_message_proj": 3 * 2 * b * hl * f,
        "listener_candidate_proj": 2 * 2 * b * dim * f,
        "listener_scores": 3 * 2 * b * b * f,
    }
    parts = {k: float(pairs * v) for k, v in parts.items()}
    parts["total"] = sum(parts.values())
    return parts


def config_flops(cfg: TrainConfig, dim: int) -> dict[str, float]:
    """`train_step_flops` of a resolved config (`emcom.config.resolve`) on D = dim features."""
    s, li, g = cfg.speaker, cfg.listener, cfg.game
    return train_step_flops(
        batch=cfg.training.batch_size, dim=dim, speaker_hidden=s.hidden_size,
        speaker_embed=s.embed_dim, listener_hidden=li.hidden_size,
        listener_embed=li.embed_dim, proj_dim=li.proj_dim, vocab=g.vocab_size,
        length=g.message_length, pairs=cfg.population.pairs,
        q_heads=cfg.loss.speaker == "policy_gradient")
