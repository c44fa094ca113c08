"""The settings of the per-checkpoint stages (`evaluate:`, `language:`, `etl:`): one typed record
each with the defaults (the schema states the same, tests/test_configdoc.py checks it), built from
the config's mapping by `stage_settings`, whose errors name the key."""

from __future__ import annotations

import dataclasses
from typing import Any

from emcom.config import ConfigError, coerce


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """`evaluate:` (also the zero-shot transfer jobs); docs/evaluation.md."""
    candidates: tuple[int, ...] = (16, 64, 256, 1024, 4096)
    epochs: int = 5
    seed: int = 42
    max_agents: int = 10
    noise: float = 0.5
    splits: tuple[str, ...] = ("valid", "test", "test_official")
    memory_budget: int = 1 << 30  # bytes of float32 score matrices per jitted speaker chunk


@dataclasses.dataclass(frozen=True)
class LanguageSettings:
    """`language:`: TopSim and the speakers' edit distance; docs/evaluation.md."""
    split: str = "test"
    max_agents: int = 10
    max_messages: int | None = None  # None: the whole split (time grows as N^2)
    seed: int = 42
    batch_size: int = 1024


@dataclasses.dataclass(frozen=True)
class EtlSettings:
    """`etl:`: fresh listeners on frozen speakers; docs/evaluation.md."""
    steps: int = 10_000
    eval_every: int = 1_000
    steps_per_call: int = 50
    listeners: int = 3
    max_speakers: int = 5
    batch_size: int = 4096  # paper Table 3; the reference code uses 1024
    candidates: int = 4096  # capped by the batch size (and the evaluation split's size)
    learning_rate: float = 1.0e-3
    tasks: tuple[str, ...] = ("discrimination", "classification", "attributes")
    train_split: str = "train"
    split: str = "test"
    # test: the held-out `split`; train: a batch of `train_split` drawn for the measurement, like
    # the batch accuracy the reference code logs (eol_experiment.py)
    measure_on: str = "test"
    seed: int = 0


STAGE_SETTINGS = {"evaluate": EvalSettings, "language": LanguageSettings, "etl": EtlSettings}


def stage_settings(stage: str, overrides: Any = None):
    """The settings record of `stage` ("evaluate", "language", "etl") from a mapping of overrides
    (or a record, returned as is); raises ConfigError naming an unknown or mistyped `stage.key`."""
    cls = STAGE_SETTINGS[stage]
    if isinstance(overrides, cls):
        return overrides
    overrides = dict(overrides or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {stage} setting(s) {[f'{stage}.{k}' for k in unknown]}; "
                          f"known: {sorted(fields)}")
    return cls(**{key: coerce(f"{stage}.{key}", value, fields[key].default,
                              nullable=fields[key].default is None)
                   for key, value in overrides.items()})
