"""The game/training config: typed records with the paper's defaults, merged with overrides.

`resolve(overrides)` returns a frozen `TrainConfig`; every error, a `ConfigError`, names the dotted
key (e.g. `loss.kl_coef`). Where the paper and its reference code disagree: `docs/training.md`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

from emcom.errors import EmcomError


@dataclasses.dataclass(frozen=True)
class GameConfig:
    vocab_size: int = 20
    message_length: int = 10
    num_candidates: int = 1024  # target included; -1: the whole batch


@dataclasses.dataclass(frozen=True)
class SpeakerConfig:
    hidden_size: int = 256
    embed_dim: int = 10
    target_init: str = "copy"


@dataclasses.dataclass(frozen=True)
class ListenerConfig:
    hidden_size: int = 512
    embed_dim: int = 10
    proj_dim: int = 256
    temperature: float = 0.5


@dataclasses.dataclass(frozen=True)
class LossConfig:
    speaker: str = "reinforce"
    reward: str = "success"
    entropy_coef: float = 1.0e-4
    kl_coef: float = 0.5
    kl_ema: float = 0.99
    time_reduction: str = "mean"
    reference_sampling: bool = False


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    learning_rate: float = 1.0e-4
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1.0e-8


@dataclasses.dataclass(frozen=True)
class PopulationConfig:
    num_speakers: int = 1
    num_listeners: int = 1
    pairs_per_step: int | None = None  # None: num_speakers
    update: str = "sequential"

    @property
    def pairs(self) -> int:
        """S, the number of (speaker, listener) pairs trained per step."""
        return self.num_speakers if self.pairs_per_step is None else self.pairs_per_step


@dataclasses.dataclass(frozen=True)
class ImitationConfig:
    every: int = 0  # 0: off
    students: int = 1
    teacher: str = "best"
    ema: float = 0.99
    score: str = "ema"
    student: str = "free"


@dataclasses.dataclass(frozen=True)
class ResetConfig:
    every: int = 0  # 0: off
    target: str = "listener"


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    steps: int = 1000
    batch_size: int = 1024
    steps_per_call: int = 50
    log_every: int = 50
    eval_every: int = 500
    checkpoint_every: int = 500
    eval_candidates: tuple[int, ...] = (16, 64, 256, 1024)
    eval_batches: int = 4
    seeds_per_job: int = 1  # seeds of one setting trained by one program (the DAG groups them)
    seeds_batching: str = "map"  # "map": one seed after another; "vmap": vectorised over seeds


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run's config, resolved (`resolve`). Defaults are the paper's (App. A); the
    schema (config/config.schema.yaml) states the same defaults with their descriptions."""
    seed: int = 0
    game: GameConfig = GameConfig()
    speaker: SpeakerConfig = SpeakerConfig()
    listener: ListenerConfig = ListenerConfig()
    loss: LossConfig = LossConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    population: PopulationConfig = PopulationConfig()
    imitation: ImitationConfig = ImitationConfig()
    reset: ResetConfig = ResetConfig()
    training: TrainingConfig = TrainingConfig()

    @property
    def num_candidates(self) -> int:
        """|C| of the training game, target included (-1 in the config: the whole batch)."""
        c = self.game.num_candidates
        return self.training.batch_size if c == -1 else c

    def to_dict(self) -> dict[str, Any]:
        """The nested plain dict (JSON-ready; `resolve` of it gives this config back)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _defaults() -> dict[str, Any]:
    return TrainConfig().to_dict()


_SECTIONS = {
    "game": GameConfig, "speaker": SpeakerConfig, "listener": ListenerConfig, "loss": LossConfig,
    "optimizer": OptimizerConfig, "population": PopulationConfig, "imitation": ImitationConfig,
    "reset": ResetConfig, "training": TrainingConfig,
}
# The population update modes (emcom.step implements one function per mode).
UPDATE_MODES = ("sequential", "vectorised", "mean_gradient")
_CHOICES = {
    "loss.speaker": ("reinforce", "policy_gradient"),
    "loss.reward": ("success", "log_prob"),
    "loss.time_reduction": ("mean", "sum"),
    "speaker.target_init": ("copy", "independent"),
    "population.update": UPDATE_MODES,
    "imitation.teacher": ("best", "worst", "random"),
    "imitation.score": ("ema", "cumulative_mean"),
    "imitation.student": ("free", "forced"),
    "reset.target": ("listener", "speaker", "pair"),
    "training.seeds_batching": ("map", "vmap"),
}
# Keys whose value may be None (the default then depends on other keys).
_NULLABLE = {"population.pairs_per_step"}
_POSITIVE_INT = {
    "game.vocab_size", "game.message_length", "speaker.hidden_size", "speaker.embed_dim",
    "listener.hidden_size", "listener.embed_dim", "listener.proj_dim", "population.num_speakers",
    "population.num_listeners", "population.pairs_per_step", "imitation.students",
    "training.steps", "training.batch_size", "training.steps_per_call", "training.log_every",
    "training.eval_every", "training.checkpoint_every", "training.eval_batches",
    "training.seeds_per_job",
}
_NON_NEGATIVE = {"imitation.every", "reset.every", "seed", "loss.entropy_coef", "loss.kl_coef"}
_UNIT_INTERVAL = {"loss.kl_ema", "imitation.ema", "optimizer.b1", "optimizer.b2"}
_POSITIVE_FLOAT = {"listener.temperature", "optimizer.learning_rate", "optimizer.eps"}
_RANGES = (  # (keys, the test of a value, the message's words for it)
    (_POSITIVE_INT, lambda v: v >= 1, ">= 1"),
    (_NON_NEGATIVE, lambda v: v >= 0, ">= 0"),
    (_UNIT_INTERVAL, lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
    (_POSITIVE_FLOAT, lambda v: v > 0, "> 0"))


class ConfigError(EmcomError):
    """A config value is unknown, of the wrong type, or out of range; the message names the key."""


def resolve(overrides: dict | TrainConfig | None = None) -> TrainConfig:
    """The `TrainConfig` of nested `overrides` of the defaults, validated.

    Args:
      overrides: nested dict with a subset of the keys of `TrainConfig` (None: no override), or
        a TrainConfig (returned as is).

    Raises:
      ConfigError: naming the dotted key, for unknown keys, wrong types or values out of range.
    """
    if isinstance(overrides, TrainConfig):
        return overrides
    defaults = _defaults()
    cfg = copy.deepcopy(defaults)
    if overrides is not None:
        if not isinstance(overrides, dict):
            raise ConfigError(f"config overrides must be a dict, got {type(overrides).__name__}")
        _merge(cfg, overrides, defaults, prefix="")
    _validate(cfg)
    return TrainConfig(seed=cfg["seed"], **{
        name: section(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg[name].items()})
        for name, section in _SECTIONS.items()})


def check_overrides(overrides: dict) -> None:
    """Checks the keys and value types of a partial block of overrides (one config file's
    section); rules that relate several keys need the merged config and are left to `resolve`."""
    if not isinstance(overrides, dict):
        raise ConfigError(f"config overrides must be a dict, got {type(overrides).__name__}")
    defaults = _defaults()
    _merge(copy.deepcopy(defaults), overrides, defaults, prefix="")


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
            into[key] = coerce(dotted, value, default, nullable=dotted in _NULLABLE)


def coerce(key: str, value: Any, default: Any, nullable: bool = False) -> Any:
    """`value` checked against the type of `default` (ints are accepted where floats are; a list
    or tuple default takes a list of its elements' type); errors name `key`. A nullable key takes
    null, or an integer when set."""
    if value is None:
        if nullable:
            return None
        raise ConfigError(f"config key {key!r} must not be null")
    if nullable and default is None:
        default = 0
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
    if isinstance(default, (list, tuple)):
        item = str if default and isinstance(default[0], str) else int
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, item) and not isinstance(v, bool) for v in value):
            kind = "strings" if item is str else "integers"
            raise ConfigError(f"config key {key!r} must be a list of {kind}, got {value!r}")
        return type(default)(value)
    raise ConfigError(f"config key {key!r} has an unsupported default {default!r}")


def _get(cfg: dict, dotted: str) -> Any:
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def _validate(cfg: dict) -> None:
    for key, choices in _CHOICES.items():
        if (v := _get(cfg, key)) not in choices:
            raise ConfigError(f"config key {key!r} must be one of {choices}, got {v!r}")
    for keys, ok, words in _RANGES:
        for key in sorted(keys):
            v = _get(cfg, key)
            if v is not None and not ok(v):  # None: a nullable key left to its derived default
                raise ConfigError(f"config key {key!r} must be {words}, got {v!r}")

    if cfg["game"]["vocab_size"] < 2:
        raise ConfigError("config key 'game.vocab_size' must be >= 2")
    batch = cfg["training"]["batch_size"]
    c = cfg["game"]["num_candidates"]
    if c != -1 and not 2 <= c <= batch:
        raise ConfigError(
            f"config key 'game.num_candidates' must be -1 (whole batch) or in [2, "
            f"training.batch_size={batch}], got {c}")
    if any(e < 2 for e in cfg["training"]["eval_candidates"]):
        raise ConfigError("config key 'training.eval_candidates' entries must be >= 2, got "
                          f"{list(cfg['training']['eval_candidates'])}")
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
