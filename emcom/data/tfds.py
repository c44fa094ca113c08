"""TFDS datasets (a `.tar.gz` archive or an extracted folder of TFRecord shards) to Arrow splits.

No TensorFlow and no `dataset_info.json` needed: splits and shards come from the file names
`<name>-<split>.tfrecord-<i>-of-<n>`, features from the records themselves, cross-checked against
`features.json` when present (new `featuresDict` and old `type`/`content` layouts). Rows keep the
source order: shards by index, records in file order. Conversion streams: memory is bounded by one
batch of `batch_size` rows whatever the split size. Outputs are staged next to `out_dir` and moved
in only when every split converted; on any error `out_dir` gets nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
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
from emcom.data.tfrecord import read_records
from emcom.names import SPLITS
from emcom.provenance import package_versions, remove_leftovers, write_json, write_provenance

log = logging.getLogger(__name__)

# CelebA's documented orders (list_attr_celeba.txt; landmarks as in list_landmarks_align_celeba.txt);
# TFDS's features.json lists names alphabetically, which differs for the landmarks.
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup",
    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns",
    "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
CELEBA_LANDMARKS = (
    "lefteye_x", "lefteye_y", "righteye_x", "righteye_y", "nose_x", "nose_y",
    "leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y",
)
_SHARD = re.compile(r"^(?P<name>.+)-(?P<split>[^-]+)\.tfrecord-(?P<index>\d+)-of-(?P<count>\d+)$")
_SCALAR_KEYS = ("label", "image_id")


@dataclasses.dataclass(frozen=True)
class Layout:
    """What a dataset folder holds: {split: shard paths in index order} and its features."""

    folder: Path
    name: str
    shards: dict[str, list[Path]]
    keys: frozenset[str] | None       # flattened feature keys declared in features.json
    logit_dim: int | None             # from features.json
    num_classes: int | None           # from features.json


def _int(value: Any, where: str) -> int:
    """TFDS JSON writes integers as strings; accept both."""
    try:
        return int(value)
    except (TypeError, ValueError) as e:
        raise DataError(f"{where}: expected an integer, got {value!r}") from e


def _flatten_features(node: dict, prefix: str, path: Path, out: dict[str, dict]) -> None:
    """Flattens a features.json tree into {"a/b": leaf node}, for the new and the old layout."""
    if "featuresDict" in node:
        children = node["featuresDict"].get("features", {})
    elif str(node.get("type", "")).endswith("FeaturesDict"):
        content = node.get("content", {})
        children = content.get("features", content)
    else:
        if not prefix:
            raise DataError(f"{path}: top level is not a FeaturesDict")
        out[prefix] = node
        return
    if not isinstance(children, dict):
        raise DataError(f"{path}: FeaturesDict {prefix or '<root>'!r} has no feature mapping")
    for key, child in children.items():
        _flatten_features(child, f"{prefix}/{key}" if prefix else key, path, out)


def _read_features(path: Path) -> tuple[frozenset[str], int | None, int | None]:
    """(flattened keys, logit dim, number of classes) declared in a features.json."""
    try:
        leaves: dict[str, dict] = {}
        _flatten_features(json.loads(path.read_text()), "", path, leaves)
    except (json.JSONDecodeError, AttributeError) as e:
        raise DataError(f"{path}: unreadable features.json: {e}") from e
    logit_dim = num_classes = None
    if "logit" in leaves:
        node = leaves["logit"]
        if "tensor" in node:  # new layout
            dims = node["tensor"].get("shape", {}).get("dimensions", [])
        else:                 # old layout: {"type": ...Tensor, "content": {"shape": [...]}}
            dims = node.get("content", {}).get("shape", [])
        if len(dims) != 1:
            raise DataError(f"{path}: feature 'logit' has shape {dims}, expected one dimension")
        logit_dim = _int(dims[0], f"{path}: logit shape")
    if "label" in leaves:
        node = leaves["label"]
        if "classLabel" in node:
            num_classes = _int(node["classLabel"].get("numClasses"), f"{path}: label numClasses")
        elif "num_classes" in node.get("content", {}):
            num_classes = _int(node["content"]["num_classes"], f"{path}: label num_classes")
    return frozenset(leaves), logit_dim, num_classes


def find_layout(root: str | os.PathLike) -> Layout:
    """Finds the one folder under `root` holding TFRecord shards and groups them by split."""
    root = Path(root)
    folders = sorted({p.parent for p in root.rglob("*.tfrecord-*") if p.is_file()})
    if not folders:
        raise DataError(f"{root}: no TFRecord shards (<name>-<split>.tfrecord-<i>-of-<n>) found")
    if len(folders) > 1:
        raise DataError(f"{root}: shards in several folders ({', '.join(map(str, folders))}); "
                        f"point to one dataset version folder")
    folder = folders[0]
    found: dict[str, dict[int, Path]] = {}
    counts: dict[str, int] = {}
    names = set()
    for path in sorted(folder.iterdir()):
        match = _SHARD.match(path.name)
        if not match:
            if ".tfrecord" in path.name:
                raise DataError(f"{path}: shard file name not of the form "
                                f"<name>-<split>.tfrecord-<i>-of-<n>")
            continue
        split, index, count = match["split"], int(match["index"]), int(match["count"])
        names.add(match["name"])
        if counts.setdefault(split, count) != count:
            raise DataError(f"{path}: split {split!r} has shards of {count} and of {counts[split]}")
        if index >= count:
            raise DataError(f"{path}: shard index {index} not below its count {count}")
        found.setdefault(split, {})[index] = path
    if len(names) != 1:
        raise DataError(f"{folder}: shards of several datasets: {sorted(names)}")
    name = names.pop()
    shards = {}
    for split in sorted(found, key=lambda s: (SPLITS + (s,)).index(s)):
        missing = sorted(set(range(counts[split])) - set(found[split]))
        if missing:
            example = f"{name}-{split}.tfrecord-{missing[0]:05d}-of-{counts[split]:05d}"
            raise DataError(f"{folder}: split {split!r}: {len(missing)} of {counts[split]} shards "
                            f"missing, e.g. {example}")
        shards[split] = [found[split][i] for i in range(counts[split])]
    keys = logit_dim = num_classes = None
    if (folder / "features.json").is_file():
        keys, logit_dim, num_classes = _read_features(folder / "features.json")
    return Layout(folder, name, shards, keys, logit_dim, num_classes)


def _group(keys: frozenset[str], prefix: str, documented: Sequence[str]) -> list[str] | None:
    names = [k[len(prefix):] for k in keys if k.startswith(prefix)]
    if not names:
        return None
    return list(documented) if set(names) == set(documented) else sorted(names)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """The per-record contract derived from features.json or the first record."""

    keys: frozenset[str]
    logit_dim: int
    attribute_names: list[str] | None
    landmark_names: list[str] | None
    has_image_id: bool


def _plan(keys: frozenset[str], logit_dim: int, where: str) -> _Plan:
    unknown = sorted(k for k in keys if k not in ("logit",) + _SCALAR_KEYS
                     and not k.startswith(("attributes/", "landmarks/")))
    if unknown:
        raise DataError(f"{where}: unknown key(s) {unknown}; known keys are logit, label, "
                        f"image_id, attributes/<name>, landmarks/<name>")
    for required in ("logit", "label"):
        if required not in keys:
            raise DataError(f"{where}: required key {required!r} missing")
    return _Plan(keys, logit_dim, _group(keys, "attributes/", CELEBA_ATTRIBUTES),
                 _group(keys, "landmarks/", CELEBA_LANDMARKS), "image_id" in keys)


class _Batch:
    """Preallocated rows of one batch, plus where each row came from for error messages."""

    def __init__(self, size: int, plan: _Plan):
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


def _convert_split(split: str, shards: list[Path], plan: _Plan, num_classes: int | None,
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
    plan = _plan(keys, logit_dim, where)
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
