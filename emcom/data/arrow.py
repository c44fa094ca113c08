"""The on-disk format of a prepared split: one uncompressed Arrow IPC file, memory-mapped on read.

A split file holds exactly ONE record batch, so every column is one contiguous buffer and
`load_split` hands out zero-copy numpy views over the memory map (opening a 10 GB split reads
nothing). Writers stream rows into raw spool files first and build that single batch at `close()`
from memory-mapped spools, so memory stays bounded whatever the split size.

Columns (see docs/DESIGN.md):
  logit       fixed_size_list<float32>[D]
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

SPLITS = ("train", "valid", "test", "test_official")
# Pinned so that the same rows always give byte-identical files (no compression, no threads).
_WRITE_OPTIONS = pa.ipc.IpcWriteOptions(compression=None, use_threads=False)


def schema(logit_dim: int, attribute_names: Sequence[str] | None = None,
           landmark_names: Sequence[str] | None = None) -> pa.Schema:
    """The Arrow schema of a split with D = `logit_dim` and the optional attribute/landmark lists."""
    fields = [
        pa.field("logit", pa.list_(pa.float32(), logit_dim), nullable=False),
        pa.field("label", pa.int64(), nullable=False),
        pa.field("image_id", pa.int64(), nullable=False),
    ]
    metadata = {"logit_dim": str(logit_dim)}
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
        with SplitWriter(path, logit_dim=D, attribute_names=names) as w:
            w.append(logits, labels, image_ids, attributes=attrs)   # any number of times
    An exception inside the `with` block removes the spools and leaves `path` untouched.
    """

    def __init__(self, path: str | os.PathLike, logit_dim: int,
                 attribute_names: Sequence[str] | None = None,
                 landmark_names: Sequence[str] | None = None):
        self.path = Path(path)
        self.schema = schema(logit_dim, attribute_names, landmark_names)
        self.logit_dim = logit_dim
        self.num_attributes = None if attribute_names is None else len(attribute_names)
        self.num_landmarks = None if landmark_names is None else len(landmark_names)
        self.num_rows = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._spool_dir = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.spool-"))
        columns = ["logit", "label", "image_id"]
        columns += ["attributes"] * (attribute_names is not None)
        columns += ["landmarks"] * (landmark_names is not None)
        self._spools = {name: open(self._spool_dir / name, "wb") for name in columns}

    def append(self, logits: np.ndarray, labels: np.ndarray, image_ids: np.ndarray,
               attributes: np.ndarray | None = None, landmarks: np.ndarray | None = None) -> None:
        """Appends n rows: logits (n, D) float32, labels (n,), image_ids (n,) int64,
        attributes (n, A) uint8, landmarks (n, L) int64 (the latter two iff declared)."""
        n = len(labels)
        self._put("logit", logits, np.float32, (n, self.logit_dim))
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


def write_split(path: str | os.PathLike, logits: np.ndarray, labels: np.ndarray,
                image_ids: np.ndarray, attributes: np.ndarray | None = None,
                attribute_names: Sequence[str] | None = None, landmarks: np.ndarray | None = None,
                landmark_names: Sequence[str] | None = None) -> Path:
    """Writes a whole in-memory split (logits (N, D)) in one go; see `SplitWriter`."""
    with SplitWriter(path, np.shape(logits)[1], attribute_names, landmark_names) as writer:
        writer.append(logits, labels, image_ids, attributes, landmarks)
    return Path(path)


@dataclasses.dataclass(frozen=True)
class Split:
    """One split, memory-mapped. Arrays are read-only views over the file (zero-copy)."""

    logits: np.ndarray                 # (N, D) float32
    labels: np.ndarray                 # (N,) int64
    image_ids: np.ndarray              # (N,) int64
    attributes: np.ndarray | None      # (N, A) uint8
    attribute_names: list[str] | None  # A names, column order
    landmarks: np.ndarray | None       # (N, L) int64
    landmark_names: list[str] | None   # L names, column order

    def __len__(self) -> int:
        return len(self.labels)


def load_split(data_dir: str | os.PathLike, split: str) -> Split:
    """Memory-maps `data_dir/<split>.arrow`; nothing is read into RAM until the arrays are used."""
    path = Path(data_dir) / f"{split}.arrow"
    if not path.is_file():
        raise DataError(f"{path}: no such split file (splits: {available_splits(data_dir)})")
    try:
        reader = pa.ipc.open_file(pa.memory_map(str(path), "r"))
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{path}: not a readable Arrow IPC file: {e}") from e
    if reader.num_record_batches != 1:
        raise DataError(f"{path}: expected exactly one record batch, found "
                        f"{reader.num_record_batches} (not written by emcom.data.arrow)")
    batch = reader.get_batch(0)
    meta = {k.decode(): v.decode() for k, v in (reader.schema.metadata or {}).items()}
    names = batch.schema.names
    for required in ("logit", "label", "image_id"):
        if required not in names:
            raise DataError(f"{path}: missing column {required!r} (columns: {names})")

    def matrix(name: str, dtype: type) -> np.ndarray | None:
        if name not in names:
            return None
        column = batch.column(name)
        width = column.type.list_size
        flat = column.flatten().to_numpy(zero_copy_only=True)
        return flat.astype(dtype, copy=False).reshape(len(column), width)

    def vector(name: str) -> np.ndarray:
        return batch.column(name).to_numpy(zero_copy_only=True)

    attribute_names = json.loads(meta["attribute_names"]) if "attribute_names" in meta else None
    landmark_names = json.loads(meta["landmark_names"]) if "landmark_names" in meta else None
    return Split(logits=matrix("logit", np.float32), labels=vector("label"),
                 image_ids=vector("image_id"), attributes=matrix("attributes", np.uint8),
                 attribute_names=attribute_names, landmarks=matrix("landmarks", np.int64),
                 landmark_names=landmark_names)


def available_splits(data_dir: str | os.PathLike) -> list[str]:
    """Split names with a `<split>.arrow` file in `data_dir`."""
    return sorted(p.stem for p in Path(data_dir).glob("*.arrow"))


def read_manifest(data_dir: str | os.PathLike) -> dict:
    """The dataset's `manifest.json` (see docs/DESIGN.md for its keys)."""
    path = Path(data_dir) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as e:
        raise DataError(f"{path}: no manifest; prepare the dataset first "
                        f"(python -m emcom.data ...)") from e
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: invalid JSON: {e}") from e
