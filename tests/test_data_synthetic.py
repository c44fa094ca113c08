"""The embedded synthetic dataset: determinism, the paper's CelebA split rule, recoverable
attributes; the CelebA-like factor model (skewed, correlated, identity- and image-level
attributes) and its distribution shift through the same encoder."""

import hashlib
import json
import subprocess
import sys
from statistics import NormalDist

import numpy as np
import pytest

from data_helpers import files_under
from emcom.data import DataError, load_split, read_manifest
from emcom.data.celeba_like import Model
from emcom.data.synthetic import assign_split, check_params, write

SMALL = dict(num_identities=60, images_per_identity=12, official_test_identities=10, feature_dim=16)
FACTOR = dict(attribute_model="factor")
# sha256 of SMALL's features, labels, image ids and attributes of every split (in SPLITS order),
# as written by the generator before the factor model existed: the default path must keep its
# values. (A numpy upgrade that changes the random streams changes it legitimately.)
SMALL_SHA256 = "a0bde8f6f926bf685c304ea21e33fa6718d2abc83a3a32a1101b5f3e18925aed"
INDEPENDENT_KNOBS = {"num_identities", "images_per_identity", "num_attributes", "attribute_values",
                     "feature_dim", "identity_latent_dim", "image_latent_dim", "hidden_dim",
                     "noise_scale", "attribute_resample", "official_test_identities", "seed"}


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
    (dict(attribute_model="celeba"), "attribute_model must be 'independent' or 'factor'"),
    (dict(encoder_seed=1), "encoder_seed applies to attribute_model 'factor' only"),
    (dict(nuisance_scale=2.0), "nuisance_scale applies to attribute_model 'factor' only"),
    (dict(FACTOR, num_attributes=40), "num_attributes applies to attribute_model 'independent'"),
    (dict(FACTOR, attribute_values=3), "attribute_values applies to attribute_model 'independent'"),
    (dict(FACTOR, encoder_seed=-1), "encoder_seed must be a non-negative integer"),
    (dict(FACTOR, identity_attributes=0, image_attributes=0), "identity_attributes \\+ image_"),
    (dict(FACTOR, attribute_factors=0), "attribute_factors must be a positive integer"),
    (dict(FACTOR, factor_loading=1.5), "factor_loading must be in \\[0, 1\\]"),
    (dict(FACTOR, identity_tendency=-0.1), "identity_tendency must be in \\[0, 1\\]"),
    (dict(FACTOR, prevalence_min=0.0), "prevalence_min must be in \\(0, 1\\)"),
    (dict(FACTOR, prevalence_max=1.0), "prevalence_max must be in \\(0, 1\\)"),
    (dict(FACTOR, prevalence_min=0.5, prevalence_max=0.4), "prevalence_min must be <= prev"),
    (dict(FACTOR, attribute_prior_shift=float("nan")), "attribute_prior_shift must be a finite"),
    (dict(FACTOR, nuisance_shift="up"), "nuisance_shift must be a finite number"),
    (dict(FACTOR, nuisance_scale=-1.0), "nuisance_scale must be >= 0"),
    (dict(FACTOR, image_latent_dim=0), "image_latent_dim must be >= 1 when image_attributes"),
])
def test_bad_knobs(tmp_path, knobs, pattern):
    with pytest.raises(DataError, match=pattern):
        write(tmp_path / "out", **knobs)
    assert files_under(tmp_path) == []
    with pytest.raises(DataError, match=pattern):  # what the Snakefile checks when it is read
        check_params(knobs)


# ------------------------------------------------------------------------------ default path


def test_default_path_keeps_the_values_of_the_generator_before_the_factor_model(tmp_path):
    manifest = write(tmp_path, **SMALL)
    digest = hashlib.sha256()
    for s in ("train", "valid", "test", "test_official"):
        split = load_split(tmp_path, s)
        for a in (split.features, split.labels, split.image_ids, split.attributes):
            digest.update(np.ascontiguousarray(a).tobytes())
    assert digest.hexdigest() == SMALL_SHA256
    # The manifest records the knobs it always did (no factor-model knob), so it is unchanged too.
    assert set(manifest["source"]["params"]) == INDEPENDENT_KNOBS
    assert set(check_params({})) == INDEPENDENT_KNOBS
    assert "num_attributes" not in check_params(FACTOR)
    assert check_params(FACTOR)["identity_attributes"] == 28


# ------------------------------------------------------------------------------ factor model


def _all_rows(data_dir):
    """(attributes, labels, image_ids, features) of every split, in image_id order."""
    splits = [load_split(data_dir, s) for s in ("train", "valid", "test", "test_official")]
    ids = np.concatenate([s.image_ids for s in splits])
    order = np.argsort(ids)
    cat = lambda name: np.concatenate([getattr(s, name) for s in splits])[order]  # noqa: E731
    return cat("attributes"), cat("labels"), ids[order], cat("features")


def _phi(attributes):
    """Off-diagonal pairwise correlations (upper triangle) of binary columns."""
    c = np.corrcoef(attributes.T.astype(float))
    return c[np.triu_indices_from(c, 1)]


def test_factor_model_is_deterministic_and_celeba_sized(tmp_path):
    write(tmp_path / "a", **FACTOR)
    write(tmp_path / "b", **FACTOR)
    write(tmp_path / "c", **FACTOR, seed=1)
    read = lambda run, name: (tmp_path / run / name).read_bytes()  # noqa: E731
    for name in ("train.arrow", "valid.arrow", "test.arrow", "test_official.arrow"):
        assert read("a", name) == read("b", name)
    assert read("a", "train.arrow") != read("c", "train.arrow")
    manifest = read_manifest(tmp_path / "a")
    assert manifest["attribute_names"] == [f"attr_{i:02d}" for i in range(40)]
    assert manifest["attribute_values"] == 2 and manifest["source"]["params"]["encoder_seed"] == 0
    train = load_split(tmp_path / "a", "train")
    assert train.features.shape == (4590, 64) and set(np.unique(train.attributes)) == {0, 1}
    assert np.all(train.features >= 0) and 0.1 < np.mean(train.features == 0) < 0.9


def test_factor_marginals_are_skewed_as_configured(tmp_path):
    knobs = dict(FACTOR, num_identities=3000, images_per_identity=6, official_test_identities=300)
    write(tmp_path, **knobs)
    attributes = _all_rows(tmp_path)[0]
    configured = Model(check_params(knobs)).prevalence
    assert configured.min() == pytest.approx(0.02) and configured.max() == pytest.approx(0.8)
    measured = attributes.mean(0)
    # 3000 identities: the binomial std of an identity-level prevalence is at most 0.009
    assert np.abs(measured - configured).max() < 0.04, np.c_[configured, measured]
    assert measured.min() < 0.04 and measured.max() > 0.75
    majority = np.maximum(measured, 1 - measured)
    assert 0.75 < majority.mean() < 0.9  # CelebA: about 0.8


def test_factor_attributes_are_correlated_as_configured(tmp_path):
    big = dict(FACTOR, num_identities=3000, images_per_identity=6, official_test_identities=300)
    write(tmp_path / "corr", **big)
    write(tmp_path / "none", **big, factor_loading=0.0)
    phi = _phi(_all_rows(tmp_path / "corr")[0])
    score = Model(check_params(big)).score_correlation()
    score = score[np.triu_indices_from(score, 1)]
    assert np.corrcoef(score, phi)[0, 1] > 0.7    # the pairs correlate as the loadings say
    strong = np.abs(score) > 0.4
    assert strong.sum() > 20 and np.all(np.sign(phi[strong]) == np.sign(score[strong]))
    assert np.abs(phi).max() > 0.4 and np.mean(np.abs(phi) > 0.2) > 0.05
    # Without loadings the identity-level attributes are independent (sampling noise only).
    identity_level = np.triu_indices(28, 1)
    unloaded = np.corrcoef(_all_rows(tmp_path / "none")[0][:, :28].T.astype(float))[identity_level]
    loaded = np.corrcoef(_all_rows(tmp_path / "corr")[0][:, :28].T.astype(float))[identity_level]
    assert np.abs(unloaded).max() < 0.1 and np.abs(loaded).mean() > 3 * np.abs(unloaded).mean()


def test_identity_level_attributes_are_constant_per_identity_image_level_ones_vary(tmp_path):
    write(tmp_path, **FACTOR)
    attributes, labels, _, _ = _all_rows(tmp_path)
    per_identity_min = np.stack([attributes[labels == k].min(0) for k in range(300)])
    per_identity_max = np.stack([attributes[labels == k].max(0) for k in range(300)])
    varies = per_identity_max != per_identity_min                       # (K, A)
    assert not varies[:, :28].any()                                     # identity-level
    assert np.all(varies[:, 28:].mean(0) > 0.03)                        # every image-level one
    assert varies[:, 28:].mean() > 0.2


def _balanced_probe(data_dir, splits):
    """Per attribute: a class-balanced least-squares linear probe fit on train, and on each split
    its balanced accuracy (mean of the two class recalls; chance 0.5 whatever the prevalence),
    its accuracy and the majority-class rate."""
    train = load_split(data_dir, "train")
    x = np.c_[train.features, np.ones(len(train))]
    weights = []
    for a in range(train.attributes.shape[1]):
        y = train.attributes[:, a] == 1
        weight = np.where(y, 0.5 / y.sum(), 0.5 / (~y).sum())           # (N,) classes balanced
        gram = (x * weight[:, None]).T @ x + 1e-6 * np.eye(x.shape[1])  # normal equations
        weights.append(np.linalg.solve(gram, (x * weight[:, None]).T @ np.where(y, 1.0, -1.0)))
    result = {}
    for split in splits:
        s = load_split(data_dir, split)
        predicted = np.c_[s.features, np.ones(len(s))] @ np.stack(weights, 1) > 0   # (N, A)
        truth = s.attributes == 1
        balanced = 0.5 * ((predicted & truth).sum(0) / truth.sum(0)
                          + (~predicted & ~truth).sum(0) / (~truth).sum(0))
        majority = np.maximum(truth.mean(0), 1 - truth.mean(0))
        result[split] = balanced, (predicted == truth).mean(0), majority
    return result


def test_factor_attributes_linearly_recoverable_above_majority_rate(tmp_path):
    # Enough held-out identities that every rare identity-level attribute has positives in
    # test_official (the default's 30 held-out identities leave some of the 2% ones with none).
    write(tmp_path, **FACTOR, num_identities=3000, images_per_identity=6,
          official_test_identities=300)
    for split, (balanced, accuracy, majority) in _balanced_probe(
            tmp_path, ("test", "test_official")).items():
        assert balanced.min() > 0.75, (split, balanced)       # chance 0.5; measured >= 0.85
        assert balanced.mean() > 0.85, (split, balanced)
        assert accuracy.mean() > majority.mean() + 0.04, (split, accuracy, majority)


def _rows_by_attributes(source, target):
    """Of the images (same image_ids) whose attributes agree in both: do their features agree?"""
    a_src, _, ids_src, f_src = _all_rows(source)
    a_tgt, _, ids_tgt, f_tgt = _all_rows(target)
    assert np.array_equal(ids_src, ids_tgt)
    same = np.all(a_src == a_tgt, axis=1)
    return same, np.all(f_src == f_tgt, axis=1)


def test_attribute_prior_shift_keeps_the_encoder_and_moves_the_marginals(tmp_path):
    write(tmp_path / "source", **FACTOR)
    # Same seed: the same people and nuisance draws, so only the shifted attributes differ.
    write(tmp_path / "small", **FACTOR, attribute_prior_shift=0.05)
    write(tmp_path / "other_encoder", **FACTOR, attribute_prior_shift=0.05, encoder_seed=1)
    # Same encoder: the images whose attributes the shift left alone keep their exact features.
    same, equal_features = _rows_by_attributes(tmp_path / "source", tmp_path / "small")
    assert 500 < same.sum() < len(same) and np.array_equal(equal_features, same)
    _, equal_other = _rows_by_attributes(tmp_path / "source", tmp_path / "other_encoder")
    assert not equal_other.any()                                       # ... which another has not
    # The marginals move as configured: p -> Phi(Phi^-1(p) + shift) (300 identities).
    shift = 0.5
    write(tmp_path / "target", **FACTOR, attribute_prior_shift=shift)
    a_src, a_tgt = _all_rows(tmp_path / "source")[0], _all_rows(tmp_path / "target")[0]
    assert np.all(a_tgt >= a_src)                                      # thresholds only went down
    p = Model(check_params(FACTOR)).prevalence
    normal = NormalDist()
    expected = np.array([normal.cdf(normal.inv_cdf(q) + shift) for q in p])
    assert abs(a_tgt.mean() - expected.mean()) < 0.02 and a_tgt.mean() > a_src.mean() + 0.1
    assert np.abs(a_tgt.mean(0) - expected).max() < 0.12


def test_new_identities_and_nuisance_shift_share_the_world_and_the_encoder(tmp_path):
    source, target = check_params(FACTOR), check_params(dict(FACTOR, seed=1, nuisance_scale=2.0,
                                                             nuisance_shift=0.5))
    m_src, m_tgt = Model(source), Model(target)
    for name in ("prevalence", "loadings", "nuisance_loadings"):   # the same world, and encoder
        assert np.array_equal(getattr(m_src, name), getattr(m_tgt, name))
    write(tmp_path / "source", **FACTOR)
    write(tmp_path / "nuisance", **FACTOR, nuisance_scale=2.0)      # same people, other nuisance
    a_src, a_nui = _all_rows(tmp_path / "source")[0], _all_rows(tmp_path / "nuisance")[0]
    assert np.array_equal(a_src[:, :28], a_nui[:, :28])            # identity-level: untouched
    # Image-level scores get a larger variance: rare attributes become more common.
    rare = m_src.prevalence[28:] < 0.1
    assert np.all(a_nui[:, 28:].mean(0)[rare] > a_src[:, 28:].mean(0)[rare])
    assert not np.array_equal(load_split(tmp_path / "source", "train").features,
                              load_split(tmp_path / "nuisance", "train").features)


def test_factor_model_from_the_cli(tmp_path):
    result = subprocess.run([sys.executable, "-m", "emcom.data", "-q", "synthetic", str(tmp_path),
                             "--attribute-model", "factor", "--num-identities", "20",
                             "--images-per-identity", "6", "--official-test-identities", "2",
                             "--attribute-prior-shift", "0.3", "--encoder-seed", "3"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert load_split(tmp_path, "train").attributes.shape == (90, 40)
    assert read_manifest(tmp_path)["source"]["params"]["attribute_prior_shift"] == 0.3
