"""What a TFDS dataset folder holds, read without TensorFlow: its shards, the features declared in
`features.json`, and the per-record key plan that conversion (`emcom.data.tfds`) holds every
record to.

No `dataset_info.json` needed: splits and shards come from the file names
`<name>-<split>.tfrecord-<i>-of-<n>`; `features.json`, when present, is read in the new
`featuresDict` and the old `type`/`content` layouts. `record_plan` turns a key set (from
`features.json` or, without one, the first record) into that plan.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

from emcom.data.errors import DataError
from emcom.names import SPLITS

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
class RecordPlan:
    """The per-record contract derived from features.json or the first record."""

    keys: frozenset[str]
    logit_dim: int
    attribute_names: list[str] | None
    landmark_names: list[str] | None
    has_image_id: bool


def record_plan(keys: frozenset[str], logit_dim: int, where: str) -> RecordPlan:
    unknown = sorted(k for k in keys if k not in ("logit",) + _SCALAR_KEYS
                     and not k.startswith(("attributes/", "landmarks/")))
    if unknown:
        raise DataError(f"{where}: unknown key(s) {unknown}; known keys are logit, label, "
                        f"image_id, attributes/<name>, landmarks/<name>")
    for required in ("logit", "label"):
        if required not in keys:
            raise DataError(f"{where}: required key {required!r} missing")
    return RecordPlan(keys, logit_dim, _group(keys, "attributes/", CELEBA_ATTRIBUTES),
                 _group(keys, "landmarks/", CELEBA_LANDMARKS), "image_id" in keys)
