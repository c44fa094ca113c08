"""The game/training config: paper defaults, deep merge with overrides, validation.

`resolve(overrides)` returns a new nested dict; every error is a `ConfigError` that names the dotted
key (e.g. `loss.kl_coef`). Choices where the paper and its reference code disagree are documented in
`docs/training.md`.
"""

from __future__ import annotations

import copy
from typing import Any

from emcom.errors import EmcomError

# Paper values (Chaabouni et al. 2022, App. A); see docs/training.md for the choices made.
DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "game": {"vocab_size": 20, "message_length": 10, "num_candidates": 1024},  # -1: whole batch
    "speaker": {"hidden_size": 256, "embed_dim": 10, "target_init": "copy"},
    "listener": {"hidden_size": 512, "embed_dim": 10, "proj_dim": 256, "temperature": 0.5},
    "loss": {
        "speaker": "reinforce", "reward": "success", "entropy_coef": 1.0e-4, "kl_coef": 0.5,
        "kl_ema": 0.99, "time_reduction": "mean", "reference_sampling": False,
    },
    "optimizer": {"learning_rate": 1.0e-4, "b1": 0.9, "b2": 0.999, "eps": 1.0e-8},
    "population": {"num_speakers": 1, "num_listeners": 1, "pairs_per_step": None,  # None: N
                   "update": "sequential"},
    "imitation": {"every": 0, "students": 1, "teacher": "best", "ema": 0.99,  # every 0: off
                  "score": "ema", "student": "free"},
    "reset": {"every": 0, "target": "listener"},  # every 0: off
    "training": {
        "steps": 1000, "batch_size": 1024, "steps_per_call": 50, "log_every": 50,
        "eval_every": 500, "checkpoint_every": 500, "eval_candidates": [16, 64, 256, 1024],
        "eval_batches": 4,
    },
}

_CHOICES = {
    "loss.speaker": ("reinforce", "policy_gradient"),
    "loss.reward": ("success", "log_prob"),
    "loss.time_reduction": ("mean", "sum"),
    "speaker.target_init": ("copy", "independent"),
    "population.update": ("sequential", "vectorised", "mean_gradient"),
    "imitation.teacher": ("best", "worst", "random"),
    "imitation.score": ("ema", "cumulative_mean"),
    "imitation.student": ("free", "forced"),
    "reset.target": ("listener", "speaker", "pair"),
}
# Keys whose value may be None (the default then depends on other keys).
_NULLABLE = {"population.pairs_per_step"}
_POSITIVE_INT = {
    "game.vocab_size", "game.message_length", "speaker.hidden_size", "speaker.embed_dim",
    "listener.hidden_size", "listener.embed_dim", "listener.proj_dim", "population.num_speakers",
    "population.num_listeners", "population.pairs_per_step", "imitation.students",
    "training.steps", "training.batch_size", "training.steps_per_call", "training.log_every",
    "training.eval_every", "training.checkpoint_every", "training.eval_batches",
}
_NON_NEGATIVE_INT = {"imitation.every", "reset.every", "seed"}
_UNIT_INTERVAL = {"loss.kl_ema", "imitation.ema", "optimizer.b1", "optimizer.b2"}
_NON_NEGATIVE_FLOAT = {"loss.entropy_coef", "loss.kl_coef"}
_POSITIVE_FLOAT = {"listener.temperature", "optimizer.learning_rate", "optimizer.eps"}


class ConfigError(EmcomError):
    """A config value is unknown, of the wrong type, or out of range; the message names the key."""


def resolve(overrides: dict | None = None) -> dict:
    """Deep-merges `overrides` into a copy of `DEFAULTS` and validates the result.

    Args:
      overrides: nested dict with a subset of the keys of `DEFAULTS` (None: no override).

    Returns:
      A new nested dict with every key of `DEFAULTS`.

    Raises:
      ConfigError: naming the dotted key, for unknown keys, wrong types or values out of range.
    """
    cfg = copy.deepcopy(DEFAULTS)
    if overrides is not None:
        if not isinstance(overrides, dict):
            raise ConfigError(f"config overrides must be a dict, got {type(overrides).__name__}")
        _merge(cfg, overrides, DEFAULTS, prefix="")
    _validate(cfg)
    return cfg


def check_overrides(overrides: dict) -> None:
    """Checks the keys and value types of a partial block of overrides (one config file's
    section); rules that relate several keys need the merged config and are left to `resolve`."""
    if not isinstance(overrides, dict):
        raise ConfigError(f"config overrides must be a dict, got {type(overrides).__name__}")
    _merge(copy.deepcopy(DEFAULTS), overrides, DEFAULTS, prefix="")


def pairs_per_step(cfg: dict) -> int:
    """S, the number of (speaker, listener) pairs trained per step (default: num_speakers)."""
    s = cfg["population"]["pairs_per_step"]
    return cfg["population"]["num_speakers"] if s is None else s


def num_candidates(cfg: dict) -> int:
    """|C| of the training game, target included (-1 in the config means the whole batch)."""
    c = cfg["game"]["num_candidates"]
    return cfg["training"]["batch_size"] if c == -1 else c


def _merge(into: dict, new: dict, schema: dict, prefix: str) -> None:
    for key, value in new.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            raise ConfigError(f"unknown config key {dotted!r} (known: {sorted(schema)})")
        default = schema[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key {dotted!r} must be a mapping, got {value!r}")
            _merge(into[key], value, default, prefix=f"{dotted}.")
        else:
            into[key] = _coerce(dotted, value, default)


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Checks `value` against the type of the default; ints are accepted where floats are."""
    if value is None:
        if key in _NULLABLE:
            return None
        raise ConfigError(f"config key {key!r} must not be null")
    if key in _NULLABLE:
        default = 0  # nullable keys are ints when set
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r} must be true/false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"config key {key!r} must be a list of integers, got {value!r}")
        return list(value)
    raise ConfigError(f"config key {key!r} has an unsupported default {default!r}")


def _get(cfg: dict, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def _validate(cfg: dict) -> None:
    for key, choices in _CHOICES.items():
        if _get(cfg, key) not in choices:
            raise ConfigError(f"config key {key!r} must be one of {choices}, got {_get(cfg, key)!r}")
    for key in _POSITIVE_INT:
        v = _get(cfg, key)
        if v is not None and v < 1:
            raise ConfigError(f"config key {key!r} must be >= 1, got {v!r}")
    for key in _NON_NEGATIVE_INT:
        if _get(cfg, key) < 0:
            raise ConfigError(f"config key {key!r} must be >= 0, got {_get(cfg, key)!r}")
    for key in _UNIT_INTERVAL:
        if not 0.0 <= _get(cfg, key) < 1.0:
            raise ConfigError(f"config key {key!r} must be in [0, 1), got {_get(cfg, key)!r}")
    for key in _NON_NEGATIVE_FLOAT:
        if _get(cfg, key) < 0:
            raise ConfigError(f"config key {key!r} must be >= 0, got {_get(cfg, key)!r}")
    for key in _POSITIVE_FLOAT:
        if _get(cfg, key) <= 0:
            raise ConfigError(f"config key {key!r} must be > 0, got {_get(cfg, key)!r}")

    if cfg["game"]["vocab_size"] < 2:
        raise ConfigError("config key 'game.vocab_size' must be >= 2")
    batch = cfg["training"]["batch_size"]
    c = cfg["game"]["num_candidates"]
    if c != -1 and not 2 <= c <= batch:
        raise ConfigError(
            f"config key 'game.num_candidates' must be -1 (whole batch) or in [2, "
            f"training.batch_size={batch}], got {c}")
    for e in cfg["training"]["eval_candidates"]:
        if e < 2:
            raise ConfigError(f"config key 'training.eval_candidates' entries must be >= 2, got {e}")
    _check_reset_schedule(cfg["reset"]["every"], cfg["training"])
    n = cfg["population"]["num_speakers"]
    if n > 1 and cfg["imitation"]["every"] and cfg["imitation"]["students"] > n - 1:
        raise ConfigError(
            f"config key 'imitation.students' must be <= population.num_speakers - 1 = {n - 1} "
            f"(one more speaker is the teacher), got {cfg['imitation']['students']}")


def _check_reset_schedule(every: int, training: dict) -> None:
    """A run whose last reset falls within one evaluation interval of its end would be judged on a
    listener that has barely trained (its best and final checkpoints measure a newborn agent)."""
    steps, eval_every = training["steps"], training["eval_every"]
    if not every or steps <= every:
        return
    last = ((steps - 1) // every) * every + 1  # resets follow steps kR + 1 (emcom.step)
    if steps - last < min(eval_every, steps):
        raise ConfigError(
            f"config keys 'reset.every'={every}, 'training.steps'={steps}, "
            f"'training.eval_every'={eval_every}: the last reset (after step {last}) falls within "
            f"one evaluation interval of the end, so the run would end on a listener trained "
            f"{steps - last} steps; choose reset.every so that steps - last reset >= eval_every")
