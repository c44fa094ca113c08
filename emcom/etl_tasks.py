"""The tasks of the ETL stage (paper App. A.4): fresh listeners' parameters and per-example losses.

- discrimination: the game's listener (same architecture), InfoNCE over |C| candidates of the
  batch (the game's candidate draw and success), accuracy at |C|;
- classification: the listener's message encoder + a linear softmax head over the labels;
- attributes: the same encoder + one softmax per attribute; accuracy averaged over attributes.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp
import optax

from emcom import agents, game
from emcom.config import TrainConfig

TASKS = ("discrimination", "classification", "attributes")


class Task(NamedTuple):
    """One ETL task: fresh parameters and a loss with per-example successes."""
    name: str
    init: Callable  # (rng, message (B, T), x (B, D)) -> params
    # (params, message (B, T), batch {x (B, D), label (B,), attributes (B, A)}, rng)
    #   -> (per-example loss (B,), successes (B,) or (B, A) float32)
    loss: Callable
    candidates: int  # |C| of discrimination, -1 otherwise


def discrimination_task(cfg: TrainConfig, candidates: int) -> Task:
    """The game's listener architecture trained with InfoNCE over |C| batch candidates."""
    listener = agents.make_listener(cfg)

    def loss(params, message, batch, rng):
        scores = listener.scores(params, message, batch["x"])  # (B, B)
        logits, labels = game.candidate_logits(scores, candidates, rng)
        # = -game.target_log_prob, fused by optax; kept as the stage has always computed it
        # (the unfused form differs by ~1e-7, which Adam carries into different listeners).
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return nll, game.success(logits, labels)

    return Task("discrimination", lambda rng, m, x: listener.init(rng, m, x), loss, candidates)


def classification_task(cfg: TrainConfig, num_classes: int) -> Task:
    """Message encoder + softmax over `num_classes` labels."""
    clf = agents.make_classifier(cfg, num_classes)

    def loss(params, message, batch, rng):
        logits = clf.apply(params, message)  # (B, K)
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        return nll, (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)

    return Task("classification", lambda rng, m, x: clf.init(rng, m), loss, -1)


def attributes_task(cfg: TrainConfig, num_attributes: int, num_values: int) -> Task:
    """Message encoder + one softmax over `num_values` per attribute (A x K outputs)."""
    clf = agents.make_classifier(cfg, num_attributes * num_values)

    def loss(params, message, batch, rng):
        logits = clf.apply(params, message).reshape(-1, num_attributes, num_values)  # (B, A, K)
        target = batch["attributes"].astype(jnp.int32)  # (B, A)
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, target).mean(-1)
        return nll, (jnp.argmax(logits, -1) == target).astype(jnp.float32)

    return Task("attributes", lambda rng, m, x: clf.init(rng, m), loss, -1)
