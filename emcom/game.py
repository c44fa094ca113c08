"""The discrimination game: candidate sets, InfoNCE, success, and play of a population.

Shapes: B batch, C candidates (target included), Ps/Pl speakers/listeners played, T message length.
Candidates (paper §2.1): for |C| = B the whole batch; for |C| < B each target gets |C| - 1
distractors drawn uniformly without replacement from the rest of the batch. The B x B score
matrix is computed once (a matmul) and the candidates' scores are gathered from it. Training,
the periodic evaluation, the evaluation stage and ETL all build on the functions here.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from emcom.agents import Listener, Speaker, cosine_scores


def distractor_indices(rng: jax.Array, batch: int, num_candidates: int) -> jax.Array:
    """(B, C) candidate rows: column 0 the target, then C - 1 uniform distinct distractors."""
    # The C - 1 smallest of B - 1 i.i.d. uniforms (self excluded) are a uniform subset.
    u = jax.random.uniform(rng, (batch, batch))
    u = jnp.where(jnp.eye(batch, dtype=bool), jnp.inf, u)
    _, distractors = jax.lax.top_k(-u, num_candidates - 1)
    return jnp.concatenate([jnp.arange(batch)[:, None], distractors], axis=1)


def candidate_index(rng: jax.Array | None, batch: int, num_candidates: int) -> jax.Array | None:
    """The candidate rows of `distractor_indices`, or None for the whole batch (|C| = B)."""
    if not 2 <= num_candidates <= batch:
        raise ValueError(f"num_candidates must be in [2, B={batch}], got {num_candidates}")
    return None if num_candidates == batch else distractor_indices(rng, batch, num_candidates)


def candidate_labels(batch: int, index: jax.Array | None) -> jax.Array:
    """(B,) int32 column of each target among its candidates: the diagonal for the whole batch,
    else 0 (column 0 of `distractor_indices`)."""
    if index is None:
        return jnp.arange(batch, dtype=jnp.int32)
    return jnp.zeros((batch,), jnp.int32)


def gather_candidates(scores: jax.Array, index: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    """(logits (B, C), labels (B,) int32) of each target's candidate set.

    scores (B, B): row i = message of target i, column j = candidate j; index from
    `candidate_index`; labels from `candidate_labels`.
    """
    logits = scores if index is None else jnp.take_along_axis(scores, index, axis=1)
    return logits, candidate_labels(scores.shape[0], index)


def candidate_logits(scores: jax.Array, num_candidates: int,
                     rng: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    """`gather_candidates` of a fresh draw of |C| candidates (rng unused for |C| = B)."""
    b = scores.shape[0]
    if scores.shape != (b, b):
        raise ValueError(f"candidate_logits: scores must be square (B, B), got {scores.shape}")
    return gather_candidates(scores, candidate_index(rng, b, num_candidates))


def target_log_prob(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """log softmax(logits)[label] per target: logits (B, C), labels (B,) -> (B,).

    The InfoNCE loss is its negated mean; the `log_prob` reward is it, without gradient.
    """
    log_p = jax.nn.log_softmax(logits, axis=1)
    return jnp.take_along_axis(log_p, labels[:, None], axis=1)[:, 0]


def info_nce(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Listener loss -mean_B log softmax(logits)[label]; logits (B, C), labels (B,) -> ()."""
    return -jnp.mean(target_log_prob(logits, labels))


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


def population_messages(speaker: Speaker, speakers, x: jax.Array,
                        keys: jax.Array | None = None) -> jax.Array:
    """(Ps, B, T) evaluation messages of stacked speakers: greedy, or sampled with one key each
    (keys (Ps, 2))."""
    return jax.vmap(lambda p, k: messages(speaker, p, x, k),
                    (0, None if keys is None else 0))(speakers, keys)


def play_pairs(listener: Listener, listeners, msgs: jax.Array, x: jax.Array,
               per_pair: Callable[[jax.Array], Any],
               per_speaker: Callable[[Any], Any] = lambda out: out,
               speaker_chunk: int | None = None) -> Any:
    """Every (speaker, listener) pair's scores on one batch, reduced as the caller needs.

    Args:
      listeners: listener params stacked on a leading axis of size Pl.
      msgs: (Ps, B, T) the speakers' messages about x's rows.
      x: (B, D) the candidates (the whole batch is the candidate pool).
      per_pair: scores (B, B) of one pair -> a pytree (vmapped over listeners).
      per_speaker: the Pl-stacked pytree of one speaker -> its result (e.g. a vote).
      speaker_chunk: speakers vmapped together; memory stays at chunk x Pl x B x B scores.
    Returns:
      per_speaker's results stacked on a leading Ps axis.
    """
    targets = jax.vmap(listener.encode_candidates, (0, None))(listeners, x)  # (Pl, B, F)

    def one_speaker(message):
        def one_listener(lp, t):
            return per_pair(cosine_scores(listener.encode_message(lp, message), t,
                                          listener.temperature))
        return per_speaker(jax.vmap(one_listener)(listeners, targets))

    return jax.lax.map(one_speaker, msgs, batch_size=speaker_chunk)


def population_play(speaker: Speaker, listener: Listener, speakers, listeners, x: jax.Array,
                    candidates: Sequence[int], rng: jax.Array,
                    sample_words: bool = False) -> tuple[jax.Array, jax.Array]:
    """Plays every (speaker, listener) pair of a population on one batch (training's evaluation).

    Args:
      speakers, listeners: params stacked on leading axes of sizes Ps, Pl.
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
    keys = jax.random.split(word_key, ns) if sample_words else None
    msgs = population_messages(speaker, speakers, x, keys)
    cand_keys = jax.random.split(cand_key, len(candidates))

    def per_pair(scores):
        acc = jnp.stack([accuracy_at(scores, c, k).mean() for c, k in zip(candidates, cand_keys)])
        return acc, info_nce(*gather_candidates(scores, None))  # over the whole batch

    acc, loss = play_pairs(listener, listeners, msgs, x, per_pair)  # (Ps, Pl, K), (Ps, Pl)
    return jnp.moveaxis(acc, 2, 0), loss
