"""The discrimination game: candidate sets, success, and greedy play of a population.

Shapes: B batch, C candidates (target included), P agents evaluated, T message length.
Candidates (paper §2.1): for |C| = B the whole batch; for |C| < B each target gets |C| - 1
distractors drawn uniformly without replacement from the rest of the batch. The B x B score
matrix is computed once (a matmul) and the candidates' scores are gathered from it.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from emcom.agents import Listener, Speaker, cosine_scores


def candidate_logits(scores: jax.Array, num_candidates: int,
                     rng: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    """Scores of each target's candidate set.

    Args:
      scores: (B, B) listener scores, row i = message of target i, column j = candidate j.
      num_candidates: |C| in [2, B]; B means the whole batch (rng unused).
      rng: key for drawing the distractors when |C| < B.

    Returns:
      logits (B, C) and labels (B,) int32, the target's column: the diagonal for |C| = B, else 0
      (column 0 holds the target, columns 1.. its distractors).
    """
    b = scores.shape[0]
    if scores.shape != (b, b):
        raise ValueError(f"candidate_logits: scores must be square (B, B), got {scores.shape}")
    if not 2 <= num_candidates <= b:
        raise ValueError(f"candidate_logits: num_candidates must be in [2, B={b}], "
                         f"got {num_candidates}")
    if num_candidates == b:
        return scores, jnp.arange(b, dtype=jnp.int32)
    # The C - 1 smallest of B - 1 i.i.d. uniforms (self excluded) are a uniform subset.
    u = jax.random.uniform(rng, (b, b))
    u = jnp.where(jnp.eye(b, dtype=bool), jnp.inf, u)
    _, distractors = jax.lax.top_k(-u, num_candidates - 1)          # (B, C - 1)
    idx = jnp.concatenate([jnp.arange(b)[:, None], distractors], 1)  # (B, C)
    return jnp.take_along_axis(scores, idx, axis=1), jnp.zeros((b,), jnp.int32)


def success(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """1.0 where the target's score is strictly above every other candidate's (ties lose).

    logits (B, C), labels (B,) -> (B,) float32. Ties count as failures so that the result does not
    depend on where the target sits among the candidates.
    """
    target = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    others = jnp.where(jax.nn.one_hot(labels, logits.shape[1], dtype=bool), -jnp.inf, logits)
    return (target > others.max(axis=1)).astype(jnp.float32)


def accuracy_at(scores: jax.Array, num_candidates: int, rng: jax.Array | None) -> jax.Array:
    """Per-target success (B,) float32 of the listener's argmax among |C| candidates.

    scores (B, B) as in `candidate_logits`; for |C| < B the distractors are drawn with `rng`.
    """
    return success(*candidate_logits(scores, num_candidates, rng))


def messages(speaker: Speaker, params, x: jax.Array, rng: jax.Array | None = None) -> jax.Array:
    """Evaluation messages (B, T): greedy, or sampled with `rng` (reference-code behaviour,
    `loss.reference_sampling`, paper.md §7)."""
    if rng is None:
        return speaker.greedy(params, x)
    return speaker.sample(params, rng, x)[0]


def population_play(speaker: Speaker, listener: Listener, speakers, listeners, x: jax.Array,
                    candidates: Sequence[int], rng: jax.Array,
                    sample_words: bool = False) -> tuple[jax.Array, jax.Array]:
    """Plays every (speaker, listener) pair of a population on one batch.

    Args:
      speakers: speaker params stacked on a leading axis of size Ps (e.g. the first P = min(N, 10)).
      listeners: listener params stacked on a leading axis of size Pl.
      x: (B, D) batch; the whole batch is the candidate pool.
      candidates: the |C| values to measure (each in [2, B]).
      rng: key for the distractor draws (shared by all pairs, so that pairs face the same games)
        and, with sample_words, for the words.
      sample_words: sample the messages instead of the greedy evaluation messages.

    Returns:
      accuracy (len(candidates), Ps, Pl) mean success, and listener loss (Ps, Pl): the InfoNCE
      loss over the whole batch.
    """
    word_key, cand_key = jax.random.split(rng)
    ns = jax.tree_util.tree_leaves(speakers)[0].shape[0]
    speaker_keys = jax.random.split(word_key, ns)
    msgs = jax.vmap(lambda p, k: messages(speaker, p, x, k if sample_words else None))(
        speakers, speaker_keys)                                              # (Ps, B, T)
    targets = jax.vmap(listener.encode_candidates, (0, None))(listeners, x)  # (Pl, B, F)
    cand_keys = jax.random.split(cand_key, len(candidates))

    def one_speaker(message):
        def one_listener(lp, t):
            scores = cosine_scores(listener.encode_message(lp, message), t,
                                   listener.temperature)  # (B, B)
            acc = jnp.stack([accuracy_at(scores, c, k).mean()
                             for c, k in zip(candidates, cand_keys)])
            loss = -jnp.mean(jnp.diagonal(jax.nn.log_softmax(scores, axis=1)))
            return acc, loss
        return jax.vmap(one_listener)(listeners, targets)

    # lax.map over speakers keeps memory at Pl x B x B instead of Ps x Pl x B x B.
    acc, loss = jax.lax.map(one_speaker, msgs)  # (Ps, Pl, K), (Ps, Pl)
    return jnp.moveaxis(acc, 2, 0), loss

