"""Reading a prepared dataset: `load_split` (memory-mapped split files) and `read_manifest`.

The readers every later stage uses, apart from the writer (`emcom.data.arrow`). Each check runs
before anything is handed out: column types against the schema, rows and D against the manifest
(if there is one), and a block-wise NaN/inf scan of the features (bounded memory, once per file
per process).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from emcom.data.errors import DataError


@dataclasses.dataclass(frozen=True)
class Split:
    """One split, memory-mapped. Arrays are read-only views over the file (zero-copy)."""

    features: np.ndarray               # (N, D) float32
    labels: np.ndarray                 # (N,) int64
    image_ids: np.ndarray              # (N,) int64
    attributes: np.ndarray | None      # (N, A) uint8
    attribute_names: list[str] | None  # A names, column order
    landmarks: np.ndarray | None       # (N, L) int64
    landmark_names: list[str] | None   # L names, column order

    def __len__(self) -> int:
        return len(self.labels)


def load_split(data_dir: str | os.PathLike, split: str) -> Split:
    """Memory-maps `data_dir/<split>.arrow` after checking it (see `check_split`); the arrays are
    not read into RAM until used (the finiteness scan streams through the mapping once)."""
    path = Path(data_dir) / f"{split}.arrow"
    if not path.is_file():
        raise DataError(f"{path}: no such split file (splits: {available_splits(data_dir)})")
    manifest_path = Path(data_dir) / "manifest.json"
    manifest = read_manifest(data_dir) if manifest_path.exists() else None
    try:
        source = pa.memory_map(str(path), "r")
        reader = pa.ipc.open_file(source)
        if reader.num_record_batches != 1:
            raise DataError(f"{path}: expected exactly one record batch, found "
                            f"{reader.num_record_batches} (not written by emcom.data.arrow)")
        batch = reader.get_batch(0)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: not a readable Arrow IPC file: {e}") from e
    meta = {k.decode(errors="replace"): v.decode(errors="replace")
            for k, v in (reader.schema.metadata or {}).items()}
    attribute_names = _names(meta, "attribute_names", path)
    landmark_names = _names(meta, "landmark_names", path)
    _check_columns(batch, path, attribute_names, landmark_names)
    if manifest is not None:
        _check_against_manifest(batch, path, split, manifest, manifest_path)

    def matrix(name: str) -> np.ndarray | None:
        if name not in batch.schema.names:
            return None
        column = batch.column(name)
        flat = column.flatten().to_numpy(zero_copy_only=True)
        return flat.reshape(len(column), column.type.list_size)

    def vector(name: str) -> np.ndarray:
        return batch.column(name).to_numpy(zero_copy_only=True)

    features = matrix("features")
    if features.size:
        source.seek(0)
        _check_finite(path, features.ctypes.data - source.read_buffer(1).address, features.shape)
    return Split(features=features, labels=vector("label"), image_ids=vector("image_id"),
                 attributes=matrix("attributes"), attribute_names=attribute_names,
                 landmarks=matrix("landmarks"), landmark_names=landmark_names)


def _names(meta: dict, key: str, path: Path) -> list[str] | None:
    if key not in meta:
        return None
    try:
        names = json.loads(meta[key])
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: schema metadata {key!r} is not JSON: {e}") from e
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise DataError(f"{path}: schema metadata {key!r} must be a JSON list of strings")
    return names


def _check_columns(batch: pa.RecordBatch, path: Path, attribute_names: list[str] | None,
                   landmark_names: list[str] | None) -> None:
    """Every column has its schema type (fixed-size lists of the declared width) and no nulls."""
    names = batch.schema.names
    logit = batch.schema.field("features").type if "features" in names else None
    width = logit.list_size if isinstance(logit, pa.FixedSizeListType) else 1
    expected = {"features": pa.list_(pa.float32(), width), "label": pa.int64(),
                "image_id": pa.int64()}
    if attribute_names is not None or "attributes" in names:
        expected["attributes"] = pa.list_(pa.uint8(), len(attribute_names or ()))
    if landmark_names is not None or "landmarks" in names:
        expected["landmarks"] = pa.list_(pa.int64(), len(landmark_names or ()))
    for name, kind in expected.items():
        if name not in names:
            raise DataError(f"{path}: missing column {name!r} (columns: {names})")
        column = batch.column(name)
        if column.type != kind:
            raise DataError(f"{path}: column {name!r} is {column.type}, expected {kind}")
        nulls = column.null_count + (column.flatten().null_count
                                     if isinstance(kind, pa.FixedSizeListType) else 0)
        if nulls:
            raise DataError(f"{path}: column {name!r} has {nulls} null value(s)")


def _check_against_manifest(batch: pa.RecordBatch, path: Path, split: str, manifest: dict,
                            manifest_path: Path) -> None:
    rows = manifest["splits"].get(split)
    if rows is None:
        raise DataError(f"{path}: split {split!r} is not listed in {manifest_path} "
                        f"(splits: {sorted(manifest['splits'])})")
    if batch.num_rows != rows:
        raise DataError(f"{path}: {batch.num_rows} rows, but {manifest_path} key "
                        f"'splits.{split}' says {rows}")
    width = batch.schema.field("features").type.list_size
    if width != manifest["feature_dim"]:
        raise DataError(f"{path}: features have width {width}, but {manifest_path} key "
                        f"'feature_dim' says {manifest['feature_dim']}")


# Floats per block of the finiteness scan: bounds its memory (32 MB).
_SCAN_FLOATS = 1 << 23
# Files already scanned by this process, by identity and version (stages open a split repeatedly).
_SCANNED: set[tuple] = set()


def _check_finite(path: Path, offset: int, shape: tuple[int, int]) -> None:
    """Raises DataError naming the first row of the (rows, D) float32 features at byte `offset` of
    `path` with a NaN or infinite value.

    Reads the file block by block into one reused buffer (plain reads: the page cache holds the
    pages, not this process), so memory stays bounded whatever the split size. A block's float32
    sum is finite iff the block is, unless it overflowed, which the exact per-row check clears.
    """
    stat = path.stat()
    key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key in _SCANNED:
        return
    n, d = shape
    rows = max(1, _SCAN_FLOATS // max(1, d))
    buffer = np.empty(rows * d, np.float32)
    with open(path, "rb") as f:
        f.seek(offset)
        for start in range(0, n, rows):
            count = min(rows, n - start)
            block = buffer[:count * d]
            if f.readinto(block.view(np.uint8)) != block.nbytes:
                raise DataError(f"{path}: file ends inside the 'features' column")
            with np.errstate(over="ignore"):
                if np.isfinite(block.sum(dtype=np.float32)):
                    continue
            bad = np.flatnonzero(~np.isfinite(block.reshape(count, d)).all(axis=1))
            if bad.size:
                raise DataError(f"{path}: row {start + int(bad[0])}: NaN or infinite value in "
                                f"'features' ({bad.size} such row(s) in rows {start}.."
                                f"{start + count - 1})")
    _SCANNED.add(key)


def available_splits(data_dir: str | os.PathLike) -> list[str]:
    """Split names with a `<split>.arrow` file in `data_dir`."""
    return sorted(p.stem for p in Path(data_dir).glob("*.arrow"))


def read_manifest(data_dir: str | os.PathLike) -> dict:
    """The dataset's `manifest.json` (see docs/DESIGN.md for its keys)."""
    path = Path(data_dir) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise DataError(f"{path}: no manifest; prepare the dataset first "
                        f"(python -m emcom.data ...)") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: invalid JSON: {e}") from e
    _check_manifest(manifest, path)
    return manifest


def _check_manifest(manifest: object, path: Path) -> None:
    """The keys every reader relies on: an object with a positive `feature_dim` and `splits`
    mapping split names to row counts."""
    if not isinstance(manifest, dict):
        raise DataError(f"{path}: expected a JSON object, got a JSON {type(manifest).__name__}")
    d = manifest.get("feature_dim")
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise DataError(f"{path}: key 'feature_dim' must be a positive integer, got {d!r}")
    splits = manifest.get("splits")
    if not isinstance(splits, dict):
        raise DataError(f"{path}: key 'splits' must be an object {{split: rows}}, got {splits!r}")
    for name, rows in splits.items():
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            raise DataError(f"{path}: key 'splits.{name}' must be a row count, got {rows!r}")
