"""The on-disk format of a prepared split: one uncompressed Arrow IPC file, memory-mapped on read.

A split file holds exactly ONE record batch, so every column is one contiguous buffer and
`load_split` hands out zero-copy numpy views over the memory map (opening a 10 GB split reads
nothing). Writers stream rows into raw spool files first and build that single batch at `close()`
from memory-mapped spools, so memory stays bounded whatever the split size.

Columns (see docs/DESIGN.md):
  features    fixed_size_list<float32>[D]
  label       int64
  image_id    int64
  attributes  fixed_size_list<uint8>[A]   optional; names in metadata `attribute_names` (JSON)
  landmarks   fixed_size_list<int64>[L]   optional; names in metadata `landmark_names` (JSON)
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

from emcom.data.errors import DataError
from emcom.provenance import atomic_path

# Pinned so that the same rows always give byte-identical files (no compression, no threads).
_WRITE_OPTIONS = pa.ipc.IpcWriteOptions(compression=None, use_threads=False)


def schema(feature_dim: int, attribute_names: Sequence[str] | None = None,
           landmark_names: Sequence[str] | None = None) -> pa.Schema:
    """The Arrow schema of a split with D = `feature_dim` and the optional attribute/landmark lists."""
    fields = [
        pa.field("features", pa.list_(pa.float32(), feature_dim), nullable=False),
        pa.field("label", pa.int64(), nullable=False),
        pa.field("image_id", pa.int64(), nullable=False),
    ]
    metadata = {"feature_dim": str(feature_dim)}
    if attribute_names is not None:
        fields.append(pa.field("attributes", pa.list_(pa.uint8(), len(attribute_names)),
                               nullable=False))
        metadata["attribute_names"] = json.dumps(list(attribute_names))
    if landmark_names is not None:
        fields.append(pa.field("landmarks", pa.list_(pa.int64(), len(landmark_names)),
                               nullable=False))
        metadata["landmark_names"] = json.dumps(list(landmark_names))
    return pa.schema(fields, metadata=metadata)


class SplitWriter:
    """Streams rows of one split into `path`; the file appears (atomically) only on `close()`.

    Usage:
        with SplitWriter(path, feature_dim=D, attribute_names=names) as w:
            w.append(features, labels, image_ids, attributes=attrs)   # any number of times
    An exception inside the `with` block removes the spools and leaves `path` untouched.
    """

    def __init__(self, path: str | os.PathLike, feature_dim: int,
                 attribute_names: Sequence[str] | None = None,
                 landmark_names: Sequence[str] | None = None):
        self.path = Path(path)
        self.schema = schema(feature_dim, attribute_names, landmark_names)
        self.feature_dim = feature_dim
        self.num_attributes = None if attribute_names is None else len(attribute_names)
        self.num_landmarks = None if landmark_names is None else len(landmark_names)
        self.num_rows = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._spool_dir = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.spool-"))
        columns = ["features", "label", "image_id"]
        columns += ["attributes"] * (attribute_names is not None)
        columns += ["landmarks"] * (landmark_names is not None)
        self._spools = {name: open(self._spool_dir / name, "wb") for name in columns}

    def append(self, features: np.ndarray, labels: np.ndarray, image_ids: np.ndarray,
               attributes: np.ndarray | None = None, landmarks: np.ndarray | None = None) -> None:
        """Appends n rows: features (n, D) float32, labels (n,), image_ids (n,) int64,
        attributes (n, A) uint8, landmarks (n, L) int64 (the latter two iff declared)."""
        n = len(labels)
        self._put("features", features, np.float32, (n, self.feature_dim))
        self._put("label", labels, np.int64, (n,))
        self._put("image_id", image_ids, np.int64, (n,))
        if (attributes is None) != (self.num_attributes is None):
            raise DataError(f"{self.path}: attributes given/declared mismatch")
        if attributes is not None:
            self._put("attributes", attributes, np.uint8, (n, self.num_attributes))
        if (landmarks is None) != (self.num_landmarks is None):
            raise DataError(f"{self.path}: landmarks given/declared mismatch")
        if landmarks is not None:
            self._put("landmarks", landmarks, np.int64, (n, self.num_landmarks))
        self.num_rows += n

    def _put(self, name: str, values: np.ndarray, dtype: type, shape: tuple[int, ...]) -> None:
        values = np.asarray(values)
        if values.shape != shape:
            raise DataError(f"{self.path}: column {name!r} has shape {values.shape}, expected {shape}")
        if not values.size:
            return  # memoryview cannot cast an empty array, and there is nothing to write
        # Arrow buffers are little-endian; write the (usually already contiguous) array as is.
        self._spools[name].write(memoryview(np.ascontiguousarray(values, dtype=np.dtype(dtype).newbyteorder("<"))).cast("B"))

    def close(self) -> Path:
        """Builds the single record batch from the memory-mapped spools and renames it into place."""
        try:
            for f in self._spools.values():
                f.close()
            arrays = [self._column(field) for field in self.schema]
            batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
            with atomic_path(self.path, suffix=".arrow") as tmp:
                with pa.OSFile(str(tmp), "wb") as sink, \
                        pa.ipc.new_file(sink, self.schema, options=_WRITE_OPTIONS) as writer:
                    writer.write_batch(batch)
            del arrays, batch
        finally:
            self._discard()
        return self.path

    def _column(self, field: pa.Field) -> pa.Array:
        spool = self._spool_dir / field.name
        # Memory-mapped, so writing the batch pages the spool through instead of loading it.
        buf = pa.py_buffer(np.memmap(spool, mode="r")) if spool.stat().st_size else pa.py_buffer(b"")
        if pa.types.is_fixed_size_list(field.type):
            child = pa.Array.from_buffers(field.type.value_type, self.num_rows * field.type.list_size,
                                          [None, buf])
            return pa.FixedSizeListArray.from_arrays(child, type=field.type)
        return pa.Array.from_buffers(field.type, self.num_rows, [None, buf])

    def _discard(self) -> None:
        for f in self._spools.values():
            f.close()
        shutil.rmtree(self._spool_dir, ignore_errors=True)

    def __enter__(self) -> "SplitWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._discard()


def write_split(path: str | os.PathLike, features: np.ndarray, labels: np.ndarray,
                image_ids: np.ndarray, attributes: np.ndarray | None = None,
                attribute_names: Sequence[str] | None = None, landmarks: np.ndarray | None = None,
                landmark_names: Sequence[str] | None = None) -> Path:
    """Writes a whole in-memory split (features (N, D)) in one go; see `SplitWriter`."""
    with SplitWriter(path, np.shape(features)[1], attribute_names, landmark_names) as writer:
        writer.append(features, labels, image_ids, attributes, landmarks)
    return Path(path)


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
