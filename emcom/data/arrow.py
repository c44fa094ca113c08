"""The on-disk format of a prepared split (one uncompressed Arrow IPC file) and its writer.

A split file holds exactly ONE record batch, so every column is one contiguous buffer and
`emcom.data.splits.load_split` hands out zero-copy numpy views over the memory map (opening a
10 GB split reads nothing). Writers stream rows into raw spool files first and build that single
batch at `close()` from memory-mapped spools, so memory stays bounded whatever the split size.

Columns (see docs/DESIGN.md):
  features    fixed_size_list<float32>[D]
  label       int64
  image_id    int64
  attributes  fixed_size_list<uint8>[A]   optional; names in metadata `attribute_names` (JSON)
  landmarks   fixed_size_list<int64>[L]   optional; names in metadata `landmark_names` (JSON)
"""

from __future__ import annotations

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
