"""Safe, atomic checkpoints of a population: one .npz of plain arrays + a JSON header, no pickle.

Layout of the .npz (written with `np.savez` into an `atomic_path`, so a reader sees the old file or
the new one, never half of one): arrays `a0`, `a1`, ... are the leaves of the `TrainState` in
`jax.tree_util` flattening order, and `header` is a uint8 array holding UTF-8 JSON:
`{"format": 1, "config": <resolved config>, "logit_dim": D, "paths": [keystr of each leaf],
"meta": {...}}`. Loading rebuilds the tree structure from the config (optax states included) and
checks every path, shape and dtype against the file, so a file from another config is refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from emcom import agents, config as config_lib, population
from emcom.provenance import atomic_path

FORMAT = 2  # 2: TrainState.score_counts


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or does not match its config."""


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint; array leaves are NumPy arrays.

    speakers / targets / speaker_opt have a leading axis num_speakers; listeners / listener_opt a
    leading axis num_listeners; scores (num_speakers,) is the EMA training accuracy per speaker.
    """
    config: dict
    step: int
    logit_dim: int
    state: population.TrainState
    meta: dict

    @property
    def speakers(self):
        return self.state.speakers

    @property
    def listeners(self):
        return self.state.listeners

    @property
    def targets(self):
        return self.state.targets

    @property
    def speaker_opt(self):
        return self.state.speaker_opt

    @property
    def listener_opt(self):
        return self.state.listener_opt

    @property
    def scores(self) -> np.ndarray:
        return self.state.scores

    @property
    def rng(self) -> np.ndarray:
        return self.state.rng


def _paths(tree) -> list[str]:
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def logit_dim_of(state: population.TrainState) -> int:
    """D, the input size of the speakers' adapter."""
    w = state.speakers["speaker/~/adapter"]["w"]  # (N, D, 2H)
    return int(w.shape[1])


def save(path: str | os.PathLike, state: population.TrainState, config: dict,
         meta: dict | None = None) -> Path:
    """Writes `state` (a TrainState), its resolved `config` and JSON-able `meta`, atomically."""
    path = Path(path)
    leaves = [np.asarray(a) for a in jax.tree_util.tree_leaves(state)]
    header = {"format": FORMAT, "config": config, "logit_dim": logit_dim_of(state),
              "paths": _paths(state), "meta": meta or {}}
    arrays = {f"a{i}": a for i, a in enumerate(leaves)}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
    return path


def load(path: str | os.PathLike) -> Checkpoint:
    """Reads a checkpoint written by `save`; raises CheckpointError naming the file on mismatch."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(bytes(z["header"]).decode())
            files = {k: z[k] for k in z.files if k != "header"}
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path} is not a readable emcom checkpoint: {e}") from e
    if header.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: format {header.get('format')!r} != {FORMAT}")
    try:
        cfg = config_lib.resolve(header["config"])
    except config_lib.ConfigError as e:
        raise CheckpointError(f"checkpoint {path}: invalid config: {e}") from e
    d = int(header["logit_dim"])
    template = jax.eval_shape(
        lambda: population.init_state(cfg, agents.make_speaker(cfg), agents.make_listener(cfg), d))
    expected = _paths(template)
    if header["paths"] != expected:
        raise CheckpointError(f"checkpoint {path}: its tree does not match its config")
    specs, treedef = jax.tree_util.tree_flatten(template)
    leaves = []
    for i, (spec, name) in enumerate(zip(specs, expected)):
        a = files.get(f"a{i}")
        if a is None or a.shape != spec.shape or a.dtype != spec.dtype:
            got = None if a is None else (a.shape, a.dtype)
            raise CheckpointError(f"checkpoint {path}: leaf {name} is {got}, expected "
                                  f"{(spec.shape, spec.dtype)}")
        leaves.append(a)
    state = jax.tree_util.tree_unflatten(treedef, leaves)
    return Checkpoint(config=cfg, step=int(state.step), logit_dim=d, state=state,
                      meta=header.get("meta", {}))


def as_dict(value: Any) -> Any:
    """JSON-able copy of meta values (NumPy scalars become Python numbers)."""
    if isinstance(value, dict):
        return {k: as_dict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_dict(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
