"""Losses of the Lewis game (paper §2.3, App. A.3) and the per-pair loss of one training step.

Shapes: B batch, T message length, V vocabulary, C candidates. Every speaker term is reduced over
T by `time_reduction` ("mean": the reference code, whose scale produced the paper's numbers; "sum":
the paper's formulas) and averaged over B. The imitation loss uses the same reduction, so that the
game and imitation gradients keep the same ratio in the student's shared Adam state.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from emcom.agents import Listener, Rollout, Speaker, cosine_scores
from emcom.config import TrainConfig
from emcom.game import candidate_logits, info_nce, success, target_log_prob

TIME_REDUCTIONS = ("mean", "sum")


class SpeakerLoss(NamedTuple):
    loss: jax.Array     # () total
    policy: jax.Array   # () policy-gradient term
    value: jax.Array    # () value regression (+ action-value regression for policy_gradient)
    entropy: jax.Array  # () mean over B of the entropy reduced over T (reported, not the loss term)
    kl: jax.Array       # () mean over B of KL(pi || pi_target) reduced over T


def _log_prob_of(logits: jax.Array, words: jax.Array) -> jax.Array:
    # logits (B, T, V), words (B, T) -> (B, T)
    return jnp.take_along_axis(jax.nn.log_softmax(logits), words[..., None], axis=-1)[..., 0]


def _over_time(x: jax.Array, time_reduction: str) -> jax.Array:
    """(B, T) -> (B,): mean or sum over the T positions of a message."""
    if time_reduction == "mean":
        return jnp.mean(x, axis=1)
    if time_reduction == "sum":
        return jnp.sum(x, axis=1)
    raise ValueError(f"loss.time_reduction must be one of {TIME_REDUCTIONS}, got {time_reduction!r}")


def speaker_loss(rollout: Rollout, target_logits: jax.Array, reward: jax.Array, *,
                 kind: str = "reinforce", entropy_coef: float = 1e-4,
                 kl_coef: float = 0.5, time_reduction: str = "mean") -> SpeakerLoss:
    """L = L_V + L_pi + alpha L_H + beta L_KL (paper §2.3).

    Args:
      rollout: the online speaker's words (B, T), logits (B, T, V), values (B, T), q_values.
      target_logits: (B, T, V) logits of the EMA target policy at the same states (no gradient).
      reward: (B,) 0/1 success or log-probability of the target (no gradient).
      kind: "reinforce": L_V = mean_B red_T (R - v)^2, L_pi = -mean_B red_T sg(R - v) log pi(w);
        "policy_gradient" (reference code): L_pi = -mean_B red_T sg(Q(w) - v) log pi(w), plus
        (R - Q(w))^2 regression of the dueling Q head besides (R - v)^2.
      entropy_coef: alpha; L_H = mean_B red_T sum_w pi log pi (the negative entropy).
      kl_coef: beta; L_KL = mean_B red_T KL(pi(.|z_t) || pi_target(.|z_t)).
      time_reduction: red_T, "mean" (reference code) or "sum" (paper) over the T positions.
    """
    over_t = lambda a: _over_time(a, time_reduction)  # noqa: E731
    reward = jax.lax.stop_gradient(reward)[:, None]  # (B, 1)
    target_logits = jax.lax.stop_gradient(target_logits)
    log_pi = jax.nn.log_softmax(rollout.logits)          # (B, T, V)
    pi = jnp.exp(log_pi)
    log_pi_w = _log_prob_of(rollout.logits, rollout.message)
    values = rollout.values
    value_loss = over_t((reward - values) ** 2)  # (B,)
    if kind == "reinforce":
        advantage = reward - values
    elif kind == "policy_gradient":
        q_w = jnp.take_along_axis(rollout.q_values, rollout.message[..., None], axis=-1)[..., 0]
        advantage = q_w - values
        value_loss = value_loss + over_t((reward - q_w) ** 2)
    else:
        raise ValueError(f"loss.speaker must be 'reinforce' or 'policy_gradient', got {kind!r}")
    policy = -over_t(jax.lax.stop_gradient(advantage) * log_pi_w)
    neg_entropy = over_t(jnp.sum(pi * log_pi, axis=2))
    kl = over_t(jnp.sum(pi * (log_pi - jax.nn.log_softmax(target_logits)), axis=2))
    total = value_loss + policy + entropy_coef * neg_entropy + kl_coef * kl
    return SpeakerLoss(loss=total.mean(), policy=policy.mean(), value=value_loss.mean(),
                       entropy=-neg_entropy.mean(), kl=kl.mean())


def imitation_loss(student_logits: jax.Array, teacher_message: jax.Array,
                   time_reduction: str = "mean") -> jax.Array:
    """Student cross-entropy to the teacher's words: -mean_B red_T log pi_S(w_t^teacher).

    student_logits (B, T, V) at the student's states (teacher-forced on, or sampled freely beside,
    teacher_message (B, T)) -> ().
    time_reduction: as the game loss's (`loss.time_reduction`). The student's Adam state is shared
      with its game updates, so the two losses must be on one scale: mixing a T-summed loss with a
      T-averaged one weighs one of them T times more in Adam's moments (docs/training.md).
    """
    return -jnp.mean(_over_time(_log_prob_of(student_logits, teacher_message), time_reduction))


class PairMetrics(NamedTuple):
    accuracy: jax.Array       # () training success rate at the training |C|
    speaker_loss: jax.Array
    listener_loss: jax.Array
    entropy: jax.Array
    kl: jax.Array


def make_pair_loss(cfg: TrainConfig, speaker: Speaker, listener: Listener,
                   num_candidates: int) -> Callable:
    """The loss of one (speaker, listener) pair on one batch, for `jax.grad` over both.

    Returns `pair_loss(speaker_params, listener_params, target_params, x (B, D), rng) ->
    (loss (), PairMetrics)`. The speaker's words and the reward are constants for the listener
    and the speaker respectively, so the gradient of the sum splits into each agent's own loss.
    """
    lc = cfg.loss
    reference_sampling = lc.reference_sampling

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
        reward = (hit if lc.reward == "success"
                  else target_log_prob(jax.lax.stop_gradient(logits), labels))
        s = speaker_loss(rollout, target_logits, reward, kind=lc.speaker,
                         entropy_coef=lc.entropy_coef, kl_coef=lc.kl_coef,
                         time_reduction=lc.time_reduction)
        metrics = PairMetrics(accuracy=hit.mean(), speaker_loss=s.loss, listener_loss=l_loss,
                              entropy=s.entropy, kl=s.kl)
        return s.loss + l_loss, metrics

    return pair_loss
