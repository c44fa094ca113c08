"""TFDS datasets (a `.tar.gz` archive or an extracted folder of TFRecord shards) to Arrow splits.

The folder's shards and record plan come from `emcom.data.tfds_layout`; this module streams the
records into `SplitWriter`s and writes the manifest. Rows keep the source order: shards by index,
records in file order. Conversion streams: memory is bounded by one batch of `batch_size` rows
whatever the split size. Outputs are staged next to `out_dir` and moved in only when every split
converted; on any error `out_dir` gets nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from emcom.data.arrow import SplitWriter
from emcom.data.download import sha256_file
from emcom.data.errors import DataError
from emcom.data.example import parse_example
from emcom.data.extract import MAX_BYTES, MAX_MEMBERS, extract_into
from emcom.data.tfds_layout import Layout, RecordPlan, find_layout, record_plan
from emcom.data.tfrecord import read_records
from emcom.provenance import package_versions, remove_leftovers, write_json, write_provenance

log = logging.getLogger(__name__)


class _Batch:
    """Preallocated rows of one batch, plus where each row came from for error messages."""

    def __init__(self, size: int, plan: RecordPlan):
        self.size, self.n = size, 0
        self.logits = np.empty((size, plan.logit_dim), np.float32)
        self.scalars = np.empty((size, 2), np.int64)            # label, image_id
        self.attributes = np.empty((size, len(plan.attribute_names or ())), np.int64)
        self.landmarks = np.empty((size, len(plan.landmark_names or ())), np.int64)
        self.origin: list[tuple[Path, int]] = []


def _ints(ex: dict, keys: str | list[str], count: int, shard: Path, record: int) -> np.ndarray:
    """The int64 values of `keys` (one value each), or a DataError naming shard, record and key."""
    keys = [keys] if isinstance(keys, str) else keys
    values = [ex[k] for k in keys]
    if all(isinstance(v, np.ndarray) and v.dtype == np.int64 and v.shape == (1,) for v in values):
        return np.concatenate(values) if count > 1 else values[0]
    bad = next(k for k, v in zip(keys, values)
               if not (isinstance(v, np.ndarray) and v.dtype == np.int64 and v.shape == (1,)))
    raise DataError(f"{shard}: record {record}: {bad!r} must hold exactly one int64, got {ex[bad]!r}")


def _convert_split(split: str, shards: list[Path], plan: RecordPlan, num_classes: int | None,
                   path: Path, batch_size: int) -> tuple[int, int]:
    """Streams one split into `path`; returns (rows, largest label)."""
    attr_keys = [f"attributes/{a}" for a in plan.attribute_names or ()]
    landmark_keys = [f"landmarks/{a}" for a in plan.landmark_names or ()]
    batch = _Batch(batch_size, plan)
    rows, max_label, start = 0, -1, time.perf_counter()

    def flush(writer: SplitWriter) -> None:
        nonlocal rows, max_label
        n = batch.n
        logits = batch.logits[:n]
        finite = np.isfinite(logits).all(axis=1)
        if not finite.all():
            file, record = batch.origin[int(np.argmin(finite))]
            raise DataError(f"{file}: record {record}: NaN or infinite value in 'logit'")
        labels = batch.scalars[:n, 0]
        bad = (labels < 0) | (labels >= num_classes) if num_classes else labels < 0
        if bad.any():
            file, record = batch.origin[int(np.argmax(bad))]
            raise DataError(f"{file}: record {record}: label {labels[np.argmax(bad)]} outside "
                            f"[0, {num_classes or 'inf'}) (features.json numClasses)")
        attributes = landmarks = None
        if plan.attribute_names is not None:
            attributes = batch.attributes[:n]
            bad = (attributes < 0) | (attributes > 255)
            if bad.any():
                row = int(np.argmax(bad.any(axis=1)))
                file, record = batch.origin[row]
                raise DataError(f"{file}: record {record}: attribute value outside 0..255")
            attributes = attributes.astype(np.uint8)
        if plan.landmark_names is not None:
            landmarks = batch.landmarks[:n]
        image_ids = batch.scalars[:n, 1] if plan.has_image_id else np.arange(rows, rows + n)
        writer.append(logits, labels, image_ids, attributes, landmarks)
        rows += n
        max_label = max(max_label, int(labels.max()))
        batch.n = 0
        batch.origin.clear()

    with SplitWriter(path, plan.logit_dim, plan.attribute_names, plan.landmark_names) as writer:
        for shard_index, shard in enumerate(shards):
            for record, payload in enumerate(read_records(shard)):
                try:
                    ex = parse_example(payload)
                except DataError as e:
                    raise DataError(f"{shard}: record {record}: {e}") from e
                if ex.keys() != plan.keys:
                    missing = sorted(plan.keys - ex.keys())
                    unknown = sorted(ex.keys() - plan.keys)
                    raise DataError(f"{shard}: record {record}: "
                                    + (f"missing key(s) {missing}" if missing else "")
                                    + ("; " if missing and unknown else "")
                                    + (f"unknown key(s) {unknown}" if unknown else ""))
                logit = ex["logit"]
                if not isinstance(logit, np.ndarray) or logit.shape != (plan.logit_dim,) \
                        or logit.dtype != np.float32:
                    raise DataError(f"{shard}: record {record}: 'logit' has {len(logit)} "
                                    f"{getattr(logit, 'dtype', 'bytes')} values, expected "
                                    f"{plan.logit_dim} float32 (features.json / first record)")
                i = batch.n
                batch.logits[i] = logit
                batch.scalars[i, 0] = _ints(ex, "label", 1, shard, record)[0]
                if plan.has_image_id:
                    batch.scalars[i, 1] = _ints(ex, "image_id", 1, shard, record)[0]
                if attr_keys:
                    batch.attributes[i] = _ints(ex, attr_keys, len(attr_keys), shard, record)
                if landmark_keys:
                    batch.landmarks[i] = _ints(ex, landmark_keys, len(landmark_keys), shard, record)
                batch.origin.append((shard, record))
                batch.n += 1
                if batch.n == batch_size:
                    flush(writer)
            log.info("%s: shard %d/%d done, %d records, %.0f records/s", split, shard_index + 1,
                     len(shards), rows + batch.n, (rows + batch.n) / (time.perf_counter() - start))
        if batch.n:
            flush(writer)
    return rows, max_label


def _first_record(layout: Layout, splits: Sequence[str]) -> dict:
    for split in splits:
        for shard in layout.shards[split]:
            for payload in read_records(shard):
                try:
                    return parse_example(payload)
                except DataError as e:
                    raise DataError(f"{shard}: record 0: {e}") from e
    raise DataError(f"{layout.folder}: the selected splits {list(splits)} hold no records")


def _convert_folder(root: Path, staging: Path, splits: Sequence[str] | None,
                    batch_size: int) -> dict:
    layout = find_layout(root)
    if splits is None:
        splits = list(layout.shards)
    missing = [s for s in splits if s not in layout.shards]
    if missing:
        raise DataError(f"{layout.folder}: split(s) {missing} not found; found {list(layout.shards)}")
    if layout.keys is not None:
        where = str(layout.folder / "features.json")
        keys, logit_dim = layout.keys, layout.logit_dim
        if logit_dim is None:
            raise DataError(f"{where}: no 'logit' tensor feature declared")
    else:
        first = _first_record(layout, splits)
        where = f"{layout.shards[splits[0]][0]}: record 0"
        keys, logit_dim = frozenset(first), len(first.get("logit", ()))
    plan = record_plan(keys, logit_dim, where)
    sizes, max_label = {}, -1
    for split in splits:
        log.info("converting split %s (%d shards) of %s", split, len(layout.shards[split]),
                 layout.name)
        sizes[split], split_max = _convert_split(split, layout.shards[split], plan,
                                                 layout.num_classes, staging / f"{split}.arrow",
                                                 batch_size)
        max_label = max(max_label, split_max)
    return {
        "name": layout.name,
        "version": layout.folder.name,
        "feature_dim": plan.logit_dim,
        "num_classes": layout.num_classes if layout.num_classes is not None else max_label + 1,
        "splits": sizes,
        "attribute_names": plan.attribute_names,
        "attribute_values": 2 if plan.attribute_names else None,
        "landmark_names": plan.landmark_names,
        "image_ids": "source" if plan.has_image_id else "row index (source has no image_id)",
        "source": {"kind": "tfds", "dataset": layout.name,
                   "shards": {s: len(layout.shards[s]) for s in splits},
                   "features_json": layout.keys is not None},
    }


def convert(src: str | os.PathLike, out_dir: str | os.PathLike,
            splits: Sequence[str] | None = None, sha256: str | None = None,
            batch_size: int = 4096, config: Any = None, max_members: int = MAX_MEMBERS,
            max_bytes: int = MAX_BYTES) -> dict:
    """Converts a TFDS dataset to `out_dir/<split>.arrow` + `out_dir/manifest.json`.

    Args:
      src: a `.tar.gz`/`.tar` archive, or a folder holding (somewhere below it) the shards.
      out_dir: receives the split files and the manifest; nothing is written there on error.
      splits: the splits to convert (all found when None); a listed split that is absent fails.
      sha256: the archive's checksum for the manifest (from the download step); computed from the
        archive when None.
      batch_size: rows per streamed batch (memory bound).
      config: recorded in the provenance file.
      max_members, max_bytes: limits of the archive's extraction (`emcom.data.extract`).
    Returns:
      The manifest.
    """
    src, out_dir = Path(src), Path(out_dir)
    if not src.exists():
        raise DataError(f"{src}: no such archive or folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out_dir)  # the staging folder of a conversion killed before its rename
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.staging-"))
    try:
        if src.is_dir():
            root = src
        else:
            (staging / "extracted").mkdir()
            root = extract_into(src, staging / "extracted", max_members, max_bytes)
            if sha256 is None:
                sha256 = sha256_file(src)
        (staging / "out").mkdir()
        manifest = _convert_folder(root, staging / "out", splits, batch_size)
        manifest["source"].update({"path": str(src), "sha256": sha256})
        manifest["versions"] = package_versions()
        out_dir.mkdir(parents=True, exist_ok=True)
        for split in manifest["splits"]:
            os.replace(staging / "out" / f"{split}.arrow", out_dir / f"{split}.arrow")
        write_json(out_dir / "manifest.json", manifest)
        write_provenance(out_dir / "manifest.json", config, source=str(src))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("wrote %s: %s", out_dir, manifest["splits"])
    return manifest
