"""Losses of the Lewis game (paper §2.3, App. A.3) and the per-pair loss of one training step.

Shapes: B batch, T message length, V vocabulary, C candidates. Sums run over T and means over B,
as in the paper's formulas and the reference code.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from emcom.agents import Listener, Rollout, Speaker, cosine_scores
from emcom.game import candidate_logits, success


class SpeakerLoss(NamedTuple):
    loss: jax.Array     # () total
    policy: jax.Array   # () policy-gradient term
    value: jax.Array    # () value regression (+ action-value regression for policy_gradient)
    entropy: jax.Array  # () mean over B of the entropy summed over T (reported, not the loss term)
    kl: jax.Array       # () mean over B of KL(pi || pi_target) summed over T


def _log_prob_of(logits: jax.Array, words: jax.Array) -> jax.Array:
    # logits (B, T, V), words (B, T) -> (B, T)
    return jnp.take_along_axis(jax.nn.log_softmax(logits), words[..., None], axis=-1)[..., 0]


def speaker_loss(rollout: Rollout, target_logits: jax.Array, reward: jax.Array, *,
                 kind: str = "reinforce", entropy_coef: float = 1e-4,
                 kl_coef: float = 0.5) -> SpeakerLoss:
    """L = L_V + L_pi + alpha L_H + beta L_KL (paper §2.3).

    Args:
      rollout: the online speaker's words (B, T), logits (B, T, V), values (B, T), q_values.
      target_logits: (B, T, V) logits of the EMA target policy at the same states (no gradient).
      reward: (B,) 0/1 success or log-probability of the target (no gradient).
      kind: "reinforce": L_V = mean_B sum_T (R - v)^2, L_pi = -mean_B sum_T sg(R - v) log pi(w);
        "policy_gradient" (reference code): L_pi = -mean_B sum_T sg(Q(w) - v) log pi(w), plus
        (R - Q(w))^2 regression of the dueling Q head besides (R - v)^2.
      entropy_coef: alpha; L_H = mean_B sum_T sum_w pi log pi (the negative entropy).
      kl_coef: beta; L_KL = mean_B sum_T KL(pi(.|z_t) || pi_target(.|z_t)).
    """
    reward = jax.lax.stop_gradient(reward)[:, None]  # (B, 1)
    target_logits = jax.lax.stop_gradient(target_logits)
    log_pi = jax.nn.log_softmax(rollout.logits)          # (B, T, V)
    pi = jnp.exp(log_pi)
    log_pi_w = _log_prob_of(rollout.logits, rollout.message)
    values = rollout.values
    value_loss = jnp.sum((reward - values) ** 2, axis=1)  # (B,)
    if kind == "reinforce":
        advantage = reward - values
    elif kind == "policy_gradient":
        q_w = jnp.take_along_axis(rollout.q_values, rollout.message[..., None], axis=-1)[..., 0]
        advantage = q_w - values
        value_loss = value_loss + jnp.sum((reward - q_w) ** 2, axis=1)
    else:
        raise ValueError(f"loss.speaker must be 'reinforce' or 'policy_gradient', got {kind!r}")
    policy = -jnp.sum(jax.lax.stop_gradient(advantage) * log_pi_w, axis=1)
    neg_entropy = jnp.sum(pi * log_pi, axis=(1, 2))
    kl = jnp.sum(pi * (log_pi - jax.nn.log_softmax(target_logits)), axis=(1, 2))
    total = value_loss + policy + entropy_coef * neg_entropy + kl_coef * kl
    return SpeakerLoss(loss=total.mean(), policy=policy.mean(), value=value_loss.mean(),
                       entropy=-neg_entropy.mean(), kl=kl.mean())


def info_nce(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Listener loss -mean_B log softmax(logits)[label]; logits (B, C), labels (B,) -> ()."""
    log_p = jax.nn.log_softmax(logits, axis=1)
    return -jnp.mean(jnp.take_along_axis(log_p, labels[:, None], axis=1))


def imitation_loss(student_logits: jax.Array, teacher_message: jax.Array,
                   reduction: str = "sum") -> jax.Array:
    """Student cross-entropy to the teacher's words: -mean_B sum_T log pi_S(w_t^teacher).

    student_logits (B, T, V) from teacher forcing on teacher_message (B, T) -> ().
    reduction: "sum" over T (the paper's formula) or "mean" over T (the reference code). The
      student's Adam state is shared with its game updates, so the scale matters: a T times larger
      gradient inflates Adam's second moment and slows the student's game learning (docs/training.md).
    """
    log_p = _log_prob_of(student_logits, teacher_message)  # (B, T)
    if reduction == "sum":
        return -jnp.mean(jnp.sum(log_p, axis=1))
    if reduction == "mean":
        return -jnp.mean(log_p)
    raise ValueError(f"imitation.reduction must be 'sum' or 'mean', got {reduction!r}")


class PairMetrics(NamedTuple):
    accuracy: jax.Array       # () training success rate at the training |C|
    speaker_loss: jax.Array
    listener_loss: jax.Array
    entropy: jax.Array
    kl: jax.Array


def make_pair_loss(cfg: dict, speaker: Speaker, listener: Listener,
                   num_candidates: int) -> Callable:
    """The loss of one (speaker, listener) pair on one batch, for `jax.grad` over both.

    Returns `pair_loss(speaker_params, listener_params, target_params, x (B, D), rng) ->
    (loss (), PairMetrics)`. The speaker's words and the reward are constants for the listener
    and the speaker respectively, so the gradient of the sum splits into each agent's own loss.
    """
    lc = cfg["loss"]
    reference_sampling = lc["reference_sampling"]

    def pair_loss(sp, li, target, x, rng):
        word_key, cand_key = jax.random.split(rng)
        rollout = speaker.rollout(sp, word_key, x)
        if reference_sampling:
            # Reference code: the target samples its own words with the online speaker's key.
            target_logits = speaker.rollout(target, word_key, x).logits
        else:
            target_logits = speaker.teacher_force(target, x, rollout.message)[0]
        scores = cosine_scores(listener.encode_message(li, rollout.message),
                               listener.encode_candidates(li, x), listener.temperature)  # (B, B)
        logits, labels = candidate_logits(scores, num_candidates, cand_key)
        l_loss = info_nce(logits, labels)
        hit = success(jax.lax.stop_gradient(logits), labels)
        if lc["reward"] == "success":
            reward = hit
        else:
            log_p = jax.nn.log_softmax(jax.lax.stop_gradient(logits), axis=1)
            reward = jnp.take_along_axis(log_p, labels[:, None], axis=1)[:, 0]
        s = speaker_loss(rollout, target_logits, reward, kind=lc["speaker"],
                         entropy_coef=lc["entropy_coef"], kl_coef=lc["kl_coef"])
        metrics = PairMetrics(accuracy=hit.mean(), speaker_loss=s.loss, listener_loss=l_loss,
                              entropy=s.entropy, kl=s.kl)
        return s.loss + l_loss, metrics

    return pair_loss
