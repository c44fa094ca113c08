"""Safe, atomic checkpoints of a population: one .npz of plain arrays + a JSON header, no pickle.

Layout of the .npz (written with `np.savez` into an `atomic_path`, so a reader sees the old file or
the new one, never half of one): arrays `a0`, `a1`, ... are the leaves of the `TrainState` in
`jax.tree_util` flattening order, and `header` is a uint8 array holding UTF-8 JSON:
`{"format": 2, "config": <resolved config>, "feature_dim": D, "paths": [keystr of each leaf],
"meta": {...}}`. Loading rebuilds the tree structure from the config (optax states included) and
checks every path, shape and dtype against the file, so a file from another config is refused.
Any damage (truncated, byte-flipped, empty, foreign file) is a `CheckpointError` naming the file.

`save` re-reads what it wrote before renaming it into place, so a checkpoint that exists was once
readable. With `keep_previous` (the training's resume point) the file it replaces becomes
`<stem>.previous.npz`, and `load_resume` falls back on that generation when the newest is damaged.
"""

from __future__ import annotations

import io
import json
import logging
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from emcom import agents, config as config_lib, population
from emcom.config import TrainConfig
from emcom.errors import EmcomError
from emcom.provenance import atomic_path, remove_leftovers

FORMAT = 2  # 2: TrainState.score_counts
log = logging.getLogger(__name__)
# What np.load / zipfile / json raise on a damaged file, besides OSError and ValueError.
_DAMAGE = (OSError, ValueError, KeyError, EOFError, TypeError, AttributeError,
           zipfile.BadZipFile, zlib.error)


class CheckpointError(EmcomError):
    """A checkpoint file is missing, corrupt, or does not match its config."""


class CheckpointVersionError(CheckpointError):
    """A readable checkpoint written by another version of emcom (format or config keys): not
    damage, so a resume stops with it instead of falling back or starting afresh."""


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint; array leaves are NumPy arrays.

    speakers / targets / speaker_opt have a leading axis num_speakers; listeners / listener_opt a
    leading axis num_listeners; scores (num_speakers,) is the teacher score (`imitation.score`) per
    speaker.
    """
    config: TrainConfig
    step: int
    feature_dim: int
    state: population.TrainState
    meta: dict

    @property
    def speakers(self):
        return self.state.speakers

    @property
    def listeners(self):
        return self.state.listeners


def _paths(tree) -> list[str]:
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def feature_dim_of(state: population.TrainState) -> int:
    """D, the input size of the speakers' adapter."""
    w = state.speakers["speaker/~/adapter"]["w"]  # (N, D, 2H)
    return int(w.shape[1])


def previous_of(path: str | os.PathLike) -> Path:
    """The older generation kept beside a checkpoint saved with `keep_previous`."""
    path = Path(path)
    return path.with_name(f"{path.stem}.previous{path.suffix}")


def save(path: str | os.PathLike, state: population.TrainState, config: TrainConfig,
         meta: dict | None = None, keep_previous: bool = False) -> Path:
    """Writes `state` (a TrainState), its resolved `config` and JSON-able `meta`, atomically.

    The written file is read back and compared with `state` before it replaces `path`; with
    `keep_previous`, the replaced file is kept as `previous_of(path)`.
    """
    path = Path(path)
    leaves = [np.asarray(a) for a in jax.tree_util.tree_leaves(state)]
    header = {"format": FORMAT, "config": config.to_dict(), "feature_dim": feature_dim_of(state),
              "paths": _paths(state), "meta": meta or {}}
    arrays = {f"a{i}": a for i, a in enumerate(leaves)}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    remove_leftovers(path)  # temporaries of a writer killed before its rename
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        _verify(tmp, path, arrays)
        if keep_previous and path.exists():
            os.replace(path, previous_of(path))
    return path


def _verify(tmp: Path, path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Raises CheckpointError unless `tmp` reads back as exactly `arrays`."""
    got = _read_arrays(tmp, path)
    for name, a in arrays.items():
        b = got.get(name)
        if b is None or b.shape != a.shape or b.dtype != a.dtype or b.tobytes() != a.tobytes():
            raise CheckpointError(f"checkpoint {path}: array {name} read back differs from what "
                                  "was written (disk or file system error); file not replaced")


def _read_arrays(file: Path, path: Path) -> dict[str, np.ndarray]:
    """Every array of the .npz `file` (named `path` in errors).

    Each member is read whole so that zipfile checks its CRC (np.load reads an array's exact
    byte count and stops short of the end, where the check happens, so flipped bytes pass it).
    """
    try:
        arrays = {}
        with zipfile.ZipFile(file) as zf:
            for name in zf.namelist():
                if not name.endswith(".npy"):
                    raise ValueError(f"member {name!r} is not a .npy array")
                arrays[name[:-4]] = np.lib.format.read_array(io.BytesIO(zf.read(name)),
                                                             allow_pickle=False)
        return arrays
    except _DAMAGE as e:
        raise CheckpointError(f"checkpoint {path} is not a readable emcom checkpoint "
                              f"({type(e).__name__}: {e})") from e


def _header(arrays: dict[str, np.ndarray], path: Path) -> dict:
    try:
        header = json.loads(bytes(arrays["header"]).decode())
        if not isinstance(header, dict):
            raise TypeError(f"header is a JSON {type(header).__name__}, not an object")
        int(header["feature_dim"]), header["config"], list(header["paths"])
    except _DAMAGE as e:
        raise CheckpointError(f"checkpoint {path}: damaged header ({type(e).__name__}: {e})") from e
    if header.get("format") != FORMAT:
        raise CheckpointVersionError(
            f"checkpoint {path}: format {header.get('format')!r} != {FORMAT} (written by another "
            "version of emcom); retrain into a fresh folder or remove it")
    return header


def load(path: str | os.PathLike) -> Checkpoint:
    """Reads a checkpoint written by `save`; raises CheckpointError naming the file on mismatch."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    files = _read_arrays(path, path)
    header = _header(files, path)
    try:
        cfg = config_lib.resolve(header["config"])
    except config_lib.ConfigError as e:
        raise CheckpointVersionError(f"checkpoint {path}: its config is not valid for this version "
                                     f"of emcom: {e}") from e
    d = int(header["feature_dim"])
    if d < 1:
        raise CheckpointError(f"checkpoint {path}: header feature_dim {d} is not positive")
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
    meta = header.get("meta", {})
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path}: header 'meta' is not an object")
    return Checkpoint(config=cfg, step=int(state.step), feature_dim=d, state=state, meta=meta)


def load_resume(path: str | os.PathLike) -> Checkpoint | None:
    """The newest readable generation of a resume point saved with `keep_previous`, or None.

    A damaged generation is logged and renamed to `<name>.corrupt` (kept for inspection, never
    read again), so a retried job falls back on the previous one instead of failing identically.
    """
    path = Path(path)
    for candidate in (path, previous_of(path)):
        if not candidate.exists():
            continue
        try:
            return load(candidate)
        except CheckpointVersionError:
            raise
        except CheckpointError as e:
            aside = candidate.with_name(candidate.name + ".corrupt")
            os.replace(candidate, aside)
            log.warning("%s; moved to %s, falling back on the previous generation", e, aside)
    return None


def load_generation(path: str | os.PathLike, step: int) -> Checkpoint | None:
    """The checkpoint at `path` if it is readable and holds `step`, else None (logged)."""
    try:
        ckpt = load(path)
    except CheckpointVersionError:
        raise
    except CheckpointError as e:
        log.warning("%s", e)
        return None
    if ckpt.step != step:
        log.warning("%s holds step %d, not %d", path, ckpt.step, step)
        return None
    return ckpt
