"""The embedded synthetic dataset: determinism, the paper's CelebA split rule, recoverable attributes."""

import json
import subprocess
import sys

import numpy as np
import pytest

from data_helpers import files_under
from emcom.data import DataError, load_split, read_manifest
from emcom.data.synthetic import assign_split, write

SMALL = dict(num_identities=60, images_per_identity=12, official_test_identities=10, feature_dim=16)


def test_same_knobs_give_byte_identical_files_and_seed_matters(tmp_path):
    write(tmp_path / "a", **SMALL)
    write(tmp_path / "b", **SMALL)
    write(tmp_path / "c", **SMALL, seed=1)
    names = ["test.arrow", "test_official.arrow", "train.arrow", "valid.arrow"]
    assert sorted(p.name for p in (tmp_path / "a").glob("*.arrow")) == names
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "train.arrow").read_bytes() != (tmp_path / "c" / "train.arrow").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no staging left


def test_splits_follow_the_celeba_rule_and_hold_out_identities(tmp_path):
    manifest = write(tmp_path, **SMALL)
    splits = {s: load_split(tmp_path, s) for s in manifest["splits"]}
    ids = np.concatenate([s.image_ids for s in splits.values()])
    assert sorted(ids.tolist()) == list(range(1, 60 * 12 + 1))  # every image exactly once
    # Replay the rule over file order (image_id order).
    label_of = {int(i): int(l) for s in splits.values() for i, l in zip(s.image_ids, s.labels)}
    seen = {}
    for image_id in range(1, 60 * 12 + 1):
        label = label_of[image_id]
        count = seen.get(label, 0)
        seen[label] = count + 1
        if label >= 50:
            want = "test_official"
        elif count > 0 and count % 5 == 0:
            want = "valid" if label % 2 == 0 else "test"
        else:
            want = "train"
        assert image_id in set(splits[want].image_ids.tolist())
    assert set(splits["test_official"].labels.tolist()).isdisjoint(splits["train"].labels.tolist())
    assert set(splits["valid"].labels.tolist()) <= set(range(0, 50, 2))
    assert manifest["splits"] == {"train": 50 * 10, "valid": 25 * 2, "test": 25 * 2,
                                  "test_official": 120}
    assert read_manifest(tmp_path)["num_classes"] == 60
    assert splits["train"].attribute_names == [f"attr_{i:02d}" for i in range(8)]
    assert np.all(splits["train"].features >= 0) and 0.1 < np.mean(splits["train"].features == 0) < 0.9


def test_assign_split_counts_per_identity():
    labels = np.array([0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2])
    names = ["train", "valid", "test", "test_official"]
    got = [names[i] for i in assign_split(labels, num_identities=3, official_test_identities=1)]
    assert got[6] == "valid" and got[11] == "test" and got[12] == "test_official"
    assert got.count("valid") == 1 and got.count("test") == 1


def _probe_accuracies(data_dir, split, values):
    """Least-squares one-vs-rest linear probe per attribute, fit on train, scored on `split`."""
    train, s = load_split(data_dir, "train"), load_split(data_dir, split)
    x, xs = np.c_[train.features, np.ones(len(train))], np.c_[s.features, np.ones(len(s))]
    accuracies = []
    for a in range(train.attributes.shape[1]):
        w = np.linalg.lstsq(x, np.eye(values)[train.attributes[:, a]], rcond=None)[0]
        accuracies.append(np.mean((xs @ w).argmax(1) == s.attributes[:, a]))
    return np.array(accuracies)


@pytest.mark.parametrize("values,minimum", [(2, 0.7), (3, 0.5)])  # chance: 1/2, 1/3
def test_linear_probe_recovers_attributes_well_above_chance(tmp_path, values, minimum):
    write(tmp_path, attribute_values=values)  # the default dataset otherwise
    for split in ("test", "test_official"):  # also on identities never seen in training
        accuracies = _probe_accuracies(tmp_path, split, values)
        assert accuracies.min() > minimum, (split, accuracies)


def test_works_at_byol_dimension_and_cli(tmp_path):
    result = subprocess.run([sys.executable, "-m", "emcom.data", "-q", "synthetic", str(tmp_path),
                             "--num-identities", "12", "--images-per-identity", "6",
                             "--official-test-identities", "2", "--feature-dim", "2048"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["test_official"] == 12
    assert load_split(tmp_path, "train").features.shape == (50, 2048)


@pytest.mark.parametrize("knobs,pattern", [
    (dict(num_identities=0), "num_identities must be a positive integer"),
    (dict(attribute_values=1), "attribute_values must be in 2..255"),
    (dict(official_test_identities=300), "official_test_identities must leave"),
    (dict(noise_scale=-1.0), "noise_scale must be >= 0"),
])
def test_bad_knobs(tmp_path, knobs, pattern):
    with pytest.raises(DataError, match=pattern):
        write(tmp_path / "out", **knobs)
    assert files_under(tmp_path) == []
