"""Evaluation of a trained population: accuracy at several |C|, P x P pairs, vote, robustness.

Protocol (paper §1.7/§2.4/§3, `docs/evaluation.md`):
- P = min(N, max_agents) first speakers and listeners, all P x P pairs, greedy messages (sampled
  ones under the checkpoint's `loss.reference_sampling`, as the reference code does);
- each epoch reshuffles the split (fixed evaluation seed) into batches of B = max(|C|) rows; each
  target's |C| - 1 distractors are drawn from its batch (the whole batch when |C| = B); the draw is
  shared by all pairs so that every pair plays the same games;
- vote ensemble: per speaker message, the P listeners' softmax over the candidates averaged, argmax;
- robustness: the same games with Gaussian noise of `noise` x the per-feature batch std added,
  independently, to the speaker's input and to the candidates;
- zero-shot transfer: the same on another dataset with the same D (`eval_data_dir`).

All pairs of one batch run in one jitted call: `vmap` over listeners, `lax.map` over speakers in
chunks (a chunk of speakers is vmapped too) so that memory stays at chunk x P x B x B scores.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from emcom import agents, checkpoint as checkpoint_lib, data, game, tidy
from emcom.config import TrainConfig
from emcom.settings import EvalSettings, stage_settings

log = logging.getLogger(__name__)

def as_checkpoint(ckpt: Any) -> checkpoint_lib.Checkpoint:
    """A loaded checkpoint from a path (loaded here) or an already loaded `Checkpoint`."""
    if isinstance(ckpt, (str, os.PathLike)):
        return checkpoint_lib.load(ckpt)
    return ckpt


def first_agents(tree: Any, count: int) -> Any:
    """The first `count` agents of a parameter tree stacked on axis 0."""
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a[:count]), tree)


def num_agents(tree: Any) -> int:
    """The size of the leading agent axis of a stacked parameter tree."""
    return int(jax.tree_util.tree_leaves(tree)[0].shape[0])


def sampled_words(cfg: TrainConfig) -> bool:
    """Whether a checkpoint's config asks for the reference code's sampled words at evaluation
    (`loss.reference_sampling`) instead of the paper's greedy ones."""
    return bool(cfg.loss.reference_sampling)


def speaker_messages(speaker: agents.Speaker, speakers: Any, x: np.ndarray,
                     batch_size: int = 1024, rng: jax.Array | None = None) -> np.ndarray:
    """The evaluation messages of stacked speakers for every row of x: greedy, or sampled with
    `rng` (`loss.reference_sampling`).

    Args:
      speakers: params stacked on a leading axis of size S.
      x: (N, D) inputs.
    Returns:
      (S, N, T) int32 messages.
    """
    s = num_agents(speakers)

    @jax.jit
    def fn(params, xb, key):
        return game.population_messages(speaker, params, xb,
                                        None if rng is None else jax.random.split(key, s))

    chunks = []
    for i, start in enumerate(range(0, len(x), batch_size)):
        chunk = np.asarray(x[start:start + batch_size])
        # The last chunk is padded to the same shape: one compilation for the whole split.
        padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk),) + chunk.shape[1:],
                                                 chunk.dtype)])
        key = None if rng is None else jax.random.fold_in(rng, i)
        chunks.append(np.asarray(fn(speakers, jnp.asarray(padded), key))[:, :len(chunk)])
    return np.concatenate(chunks, axis=1)


def capped_candidates(candidates: list[int], size: int) -> list[int]:
    """The |C| values, each capped by the number of examples, deduplicated, ascending."""
    if not candidates or any(int(c) < 2 for c in candidates):
        raise ValueError(f"evaluate.candidates must be integers >= 2, got {candidates}")
    if size < 2:
        raise ValueError(f"a split of {size} examples cannot make candidate sets")
    return sorted({min(int(c), size) for c in candidates})


def add_noise(rng: jax.Array, x: jax.Array, coeff: float) -> jax.Array:
    """x (B, D) plus N(0, (coeff * per-feature batch std)^2) noise."""
    std = jnp.std(x, axis=0, keepdims=True)
    return x + coeff * std * jax.random.normal(rng, x.shape, x.dtype)


@functools.partial(jax.jit, static_argnames=("speaker", "listener", "candidates", "noise",
                                             "speaker_chunk", "sample_words"))
def play_batch(speaker: agents.Speaker, listener: agents.Listener, speakers: Any, listeners: Any,
               x: jax.Array, rng: jax.Array, *, candidates: tuple[int, ...], noise: float,
               speaker_chunk: int, sample_words: bool = False) -> dict[str, jax.Array]:
    """Successes of every pair and every speaker's vote on one batch, clean and noisy.

    Args:
      speakers, listeners: params stacked on leading axes of sizes Ps, Pl.
      x: (B, D) batch, B = max(candidates).
      rng: key of this batch (distractors and noise).
      candidates: the |C| values (static), each in [2, B].
      sample_words: sampled messages (the reference code) instead of greedy ones.
    Returns:
      {"accuracy", "accuracy_noisy"}: (K, Ps, Pl) success counts over the B targets;
      {"accuracy_vote", "accuracy_vote_noisy"}: (K, Ps) success counts.
    """
    b = x.shape[0]
    k_cand, k_speaker, k_candidates = jax.random.split(rng, 3)
    index = [game.candidate_index(k, b, c)
             for c, k in zip(candidates, jax.random.split(k_cand, len(candidates)))]
    labels = [game.candidate_labels(b, i) for i in index]
    word_keys = (jax.random.split(jax.random.fold_in(rng, 1), num_agents(speakers))
                 if sample_words else None)

    def per_pair(scores: jax.Array) -> list[jax.Array]:
        return [game.gather_candidates(scores, i)[0] for i in index]  # K x (B, C)

    def per_speaker(logits: list[jax.Array]) -> tuple[jax.Array, jax.Array]:
        # logits: K x (Pl, B, C), one per |C|
        pair = jnp.stack([jax.vmap(game.success, (0, None))(lg, lb).sum(-1)
                          for lg, lb in zip(logits, labels)])  # (K, Pl)
        vote = jnp.stack([game.success(jax.nn.softmax(lg, axis=-1).mean(0), lb).sum()
                          for lg, lb in zip(logits, labels)])  # (K,)
        return pair, vote

    def counts(x_speaker: jax.Array, x_candidates: jax.Array) -> tuple[jax.Array, jax.Array]:
        msgs = game.population_messages(speaker, speakers, x_speaker, word_keys)  # (Ps, B, T)
        pair, vote = game.play_pairs(listener, listeners, msgs, x_candidates, per_pair,
                                     per_speaker, speaker_chunk)  # (Ps, K, Pl), (Ps, K)
        return jnp.moveaxis(pair, 0, 1), vote.T

    pair, vote = counts(x, x)
    pair_noisy, vote_noisy = counts(add_noise(k_speaker, x, noise),
                                    add_noise(k_candidates, x, noise))
    return {"accuracy": pair, "accuracy_vote": vote, "accuracy_noisy": pair_noisy,
            "accuracy_vote_noisy": vote_noisy}


def evaluate_split(speaker: agents.Speaker, listener: agents.Listener, speakers: Any,
                   listeners: Any, features: np.ndarray, settings: EvalSettings,
                   sample_words: bool = False) -> tuple[list[int], dict[str, np.ndarray]]:
    """Accuracies of P x P pairs and votes on one split, averaged over the reshuffled epochs.

    Args:
      speakers, listeners: params stacked on leading axes of sizes Ps, Pl.
      features: (N, D) inputs of the split.
      settings: the evaluation settings.
      sample_words: sampled messages (`loss.reference_sampling`) instead of greedy ones.
    Returns:
      (the |C| values used, {"accuracy", "accuracy_noisy": (K, Ps, Pl),
      "accuracy_vote", "accuracy_vote_noisy": (K, Ps)}) mean successes in [0, 1].
    """
    n = len(features)
    candidates = capped_candidates(list(settings.candidates), n)
    batch = candidates[-1]
    ps, pl = num_agents(speakers), num_agents(listeners)
    # The candidate scores of one vmapped speaker: Pl x B x B floats, a few copies alive.
    per_speaker = 4 * pl * batch * batch * (len(candidates) + 2)
    chunk = int(max(1, min(ps, settings.memory_budget // per_speaker)))
    order_rng = np.random.default_rng(int(settings.seed))
    key = jax.random.PRNGKey(int(settings.seed))
    totals: dict[str, np.ndarray] = {}
    games = 0
    for epoch in range(int(settings.epochs)):
        order = order_rng.permutation(n)
        # The last partial batch is dropped: the next epoch's reshuffle covers those rows.
        for b, start in enumerate(range(0, n - batch + 1, batch)):
            x = jnp.asarray(features[np.sort(order[start:start + batch])])
            out = play_batch(speaker, listener, speakers, listeners, x,
                             jax.random.fold_in(jax.random.fold_in(key, epoch), b),
                             candidates=tuple(candidates), noise=float(settings.noise),
                             speaker_chunk=chunk, sample_words=sample_words)
            for name, value in out.items():
                totals[name] = totals.get(name, 0) + np.asarray(value, dtype=np.float64)
            games += batch
        log.info("epoch %d/%d: %d games per pair", epoch + 1, settings.epochs, games)
    return candidates, {name: value / games for name, value in totals.items()}


def _relative_drop(clean: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """(clean - noisy) / clean, NaN where the clean accuracy is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(clean > 0, (clean - noisy) / np.where(clean > 0, clean, 1), np.nan)


def split_rows(split: str, candidates: list[int], acc: Mapping[str, np.ndarray], step: int,
               eval_dataset: str) -> list[dict[str, Any]]:
    """Tidy rows of one split from `evaluate_split`'s output.

    Per pair: accuracy, accuracy_noisy, robustness_drop (clean - noisy), robustness_drop_rel
    ((clean - noisy) / clean). Per speaker (listener = -1): accuracy_vote(_noisy). The "average"
    ensemble (mean over pairs, speaker = listener = -1): the same four pair metrics, the drops
    taken on the pair-mean accuracies; and the vote averaged over speakers.
    """
    ps, pl = acc["accuracy"].shape[1:]
    common = dict(stage="eval", split=split, step=step, eval_dataset=eval_dataset)
    rows: list[dict[str, Any]] = []
    for k, c in enumerate(candidates):
        clean, noisy = acc["accuracy"][k], acc["accuracy_noisy"][k]  # (Ps, Pl)
        per_pair = {"accuracy": clean, "accuracy_noisy": noisy,
                    "robustness_drop": clean - noisy,
                    "robustness_drop_rel": _relative_drop(clean, noisy)}
        for metric, value in per_pair.items():
            rows += tidy.make_rows(metric, value, axes=("speaker", "listener"),
                                   coords=(range(ps), range(pl)), candidates=c, **common)
        mean_clean, mean_noisy = clean.mean(), noisy.mean()
        average = {"accuracy": mean_clean, "accuracy_noisy": mean_noisy,
                   "robustness_drop": mean_clean - mean_noisy,
                   "robustness_drop_rel": _relative_drop(mean_clean, mean_noisy),
                   "accuracy_vote": acc["accuracy_vote"][k].mean(),
                   "accuracy_vote_noisy": acc["accuracy_vote_noisy"][k].mean()}
        for metric, value in average.items():
            rows += tidy.make_rows(metric, value, candidates=c, **common)
        for metric in ("accuracy_vote", "accuracy_vote_noisy"):
            rows += tidy.make_rows(metric, acc[metric][k], axes=("speaker",),
                                   coords=(range(ps),), candidates=c, **common)
    return rows


def run(settings: EvalSettings | Mapping[str, Any] | None, checkpoint: Any,
        data_dir: str | os.PathLike, *, eval_data_dir: str | os.PathLike | None = None
        ) -> pd.DataFrame:
    """Evaluates a checkpoint's first P = min(N, max_agents) speakers and listeners.

    Args:
      checkpoint: a checkpoint path or an `emcom.checkpoint.Checkpoint`.
      data_dir: the prepared dataset (the training one, or the transfer target when the workflow
        passes it directly).
      settings: `evaluate:` (an EvalSettings or a mapping of overrides of its defaults).
      eval_data_dir: evaluate on this dataset instead (zero-shot transfer); its rows carry its
        manifest name as `eval_dataset`. Otherwise `eval_dataset` is left empty for the caller.
    Returns:
      the tidy rows (stage "eval") of every available split among settings.splits.
    """
    settings = stage_settings("evaluate", settings)
    ckpt = as_checkpoint(checkpoint)
    target_dir = Path(eval_data_dir if eval_data_dir is not None else data_dir)
    manifest = data.read_manifest(target_dir)
    eval_dataset = str(manifest.get("name", target_dir.name)) if eval_data_dir is not None else ""
    if int(manifest["feature_dim"]) != ckpt.feature_dim:
        raise ValueError(f"{target_dir}: feature_dim {manifest['feature_dim']} differs from the "
                         f"checkpoint's D = {ckpt.feature_dim}; zero-shot transfer needs equal D")
    cfg = ckpt.config
    speaker, listener = agents.make_speaker(cfg), agents.make_listener(cfg)
    p = int(settings.max_agents)
    speakers = first_agents(ckpt.speakers, min(num_agents(ckpt.speakers), p))
    listeners = first_agents(ckpt.listeners, min(num_agents(ckpt.listeners), p))
    available = manifest.get("splits", {})
    rows: list[dict[str, Any]] = []
    for split in settings.splits:
        if split not in available:
            log.info("split %r not in %s (has %s): skipped", split, target_dir, sorted(available))
            continue
        features = data.load_split(target_dir, split).features
        log.info("evaluating %d x %d pairs on %s/%s (%d examples)", num_agents(speakers),
                 num_agents(listeners), target_dir, split, len(features))
        candidates, acc = evaluate_split(speaker, listener, speakers, listeners, features, settings,
                                         sampled_words(cfg))
        rows += split_rows(split, candidates, acc, ckpt.step, eval_dataset)
    return tidy.frame(rows)
