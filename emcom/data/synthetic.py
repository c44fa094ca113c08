"""`synthetic`: the embedded default dataset, CelebA in small, generated offline in seconds.

Two attribute models (`attribute_model`); every other part is shared.

`independent` (the default; all draws from one `numpy.random.Generator(PCG64(seed))`, in a fixed
order):

  identity k = 0..K-1 (the label):
      attributes a_k in {0..V-1}^A, uniform        (categorical; binary when V = 2)
      identity latent z_k ~ N(0, I_{identity_latent_dim})
  images, in a fixed random "file order" that interleaves identities like CelebA's files:
      image attributes = a_k, each entry resampled uniformly with prob. `attribute_resample`
                         (attributes that vary per image, like CelebA's Smiling)
      image latent u ~ N(0, I_{image_latent_dim})   (pose, lighting, ...)
      features = relu(W2 relu(W1 [onehot(attributes), z_k, u] + b1) + b2 + noise_scale * eps)

`factor` (CelebA-like, emcom/data/celeba_like.py): binary attributes with skewed prevalences and
correlations from a latent factor model, identity-level and image-level ones, image-level
nuisance factors, and the same kind of encoder on [2 a - 1, z_k, u]. Its encoder and attribute
structure come from `encoder_seed`, the identities and images from `seed`, so a shifted target
(another `seed`, `attribute_prior_shift`, `nuisance_scale`, `nuisance_shift`) is seen through the
same encoder.

W1, b1, W2, b2 are a fixed random 2-layer MLP (He-scaled), so the features are a nonlinear map of
attributes + identity + per-image variation, non-negative with many exact zeros like BYOL
features. The attributes stay linearly recoverable (tests/test_data_synthetic.py probes them).

Splits follow the paper's CelebA rule (Listing 1): per identity, in file order, with a counter c,
c > 0 and c % 5 == 0 goes to `valid` if the label is even, else `test`; the rest to `train`. The
last `official_test_identities` identities are held out entirely into `test_official` (never seen
in training: out-of-distribution generalization, like CelebA's official split). `image_id` =
1-based position in file order. Attribute names are `attr_00`, `attr_01`, ... in column order
(factor model: the identity-level ones first). Same knobs -> byte-identical Arrow files (given
the same numpy build).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from emcom.data import celeba_like
from emcom.data.arrow import SplitWriter
from emcom.data.errors import DataError
from emcom.names import SPLITS
from emcom.provenance import package_versions, remove_leftovers, write_json, write_provenance

log = logging.getLogger(__name__)

_BLOCK = 4096  # images generated per block: bounds memory; fixed so results do not depend on it


# Knobs of one attribute model only (the others are shared); the manifest records the shared ones
# and those of the model used, so the independent model's manifest is what it was before `factor`.
_INDEPENDENT_ONLY = ("num_attributes", "attribute_values", "attribute_resample")


def _defaults() -> dict:
    return {name: p.default for name, p in inspect.signature(write).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "name"}


def check_params(params: dict | None) -> dict:
    """The knobs of `write` that apply to the chosen `attribute_model`, from a (partial) `params`
    mapping, checked; DataError names the knob for an unknown name, a wrong type, a value out of
    range, a knob of the other model or a split that would be empty."""
    defaults = _defaults()
    if not isinstance(params, dict):
        raise DataError(f"synthetic: params must be a mapping of knobs, got {params!r}")
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise DataError(f"synthetic: unknown knob(s) {unknown} (known: {sorted(defaults)})")
    knobs = {**defaults, **params}
    _check(knobs)
    return _applicable(knobs)


def _applicable(knobs: dict) -> dict:
    unused = (("attribute_model",) + celeba_like.KNOBS if knobs["attribute_model"] == "independent"
              else _INDEPENDENT_ONLY)
    return {k: v for k, v in knobs.items() if k not in unused}


def _check(knobs: dict) -> None:
    for name in ("noise_scale", "attribute_resample"):
        if isinstance(knobs[name], bool) or not isinstance(knobs[name], (int, float)):
            raise DataError(f"synthetic: {name} must be a number, got {knobs[name]!r}")
    positive = ("num_identities", "images_per_identity", "num_attributes", "feature_dim",
                "hidden_dim")
    for name in positive:
        if isinstance(knobs[name], bool) or not isinstance(knobs[name], int) or knobs[name] < 1:
            raise DataError(f"synthetic: {name} must be a positive integer, got {knobs[name]!r}")
    for name in ("identity_latent_dim", "image_latent_dim", "official_test_identities", "seed"):
        if not isinstance(knobs[name], int) or knobs[name] < 0:
            raise DataError(f"synthetic: {name} must be a non-negative integer, got {knobs[name]!r}")
    if not isinstance(knobs["attribute_values"], int) or not 2 <= knobs["attribute_values"] <= 255:
        raise DataError(f"synthetic: attribute_values must be in 2..255, got {knobs['attribute_values']!r}")
    if knobs["official_test_identities"] >= knobs["num_identities"]:
        raise DataError("synthetic: official_test_identities must leave identities for training "
                        f"({knobs['official_test_identities']} >= {knobs['num_identities']})")
    if not 0.0 <= knobs["attribute_resample"] <= 1.0:
        raise DataError(f"synthetic: attribute_resample must be in [0, 1], got {knobs['attribute_resample']!r}")
    if not knobs["noise_scale"] >= 0.0:
        raise DataError(f"synthetic: noise_scale must be >= 0, got {knobs['noise_scale']!r}")
    # Every stage reads train, valid and test: refuse knobs that leave one empty (assign_split).
    if knobs["images_per_identity"] < 6:
        raise DataError(f"synthetic: images_per_identity must be >= 6, or the valid and test "
                        f"splits are empty, got {knobs['images_per_identity']}")
    if knobs["num_identities"] - knobs["official_test_identities"] < 2:
        raise DataError("synthetic: num_identities - official_test_identities must be >= 2 (an "
                        "even and an odd identity), or the valid or test split is empty")
    celeba_like.check(knobs)
    if knobs["attribute_model"] not in ("independent", "factor"):
        raise DataError("synthetic: attribute_model must be 'independent' or 'factor', got "
                        f"{knobs['attribute_model']!r}")
    defaults = _defaults()
    other, model = ((celeba_like.KNOBS, "factor") if knobs["attribute_model"] == "independent"
                    else (_INDEPENDENT_ONLY, "independent"))
    for name in other:
        if knobs[name] != defaults[name]:
            raise DataError(f"synthetic: {name} applies to attribute_model {model!r} only, got "
                            f"{knobs[name]!r} with attribute_model {knobs['attribute_model']!r}")
    if knobs["attribute_model"] == "factor":
        celeba_like.check_factor(knobs)


def assign_split(labels: np.ndarray, num_identities: int, official_test_identities: int) -> np.ndarray:
    """Split index into SPLITS for each image in file order (labels (N,) int64) -> (N,) int8.

    The paper's CelebA rule per identity counter, and held-out identities to test_official.
    """
    counts = np.zeros(num_identities, np.int64)
    split = np.empty(len(labels), np.int8)
    held_out_from = num_identities - official_test_identities
    for i, label in enumerate(labels):
        c = counts[label]
        counts[label] += 1
        if label >= held_out_from:
            split[i] = SPLITS.index("test_official")
        elif c > 0 and c % 5 == 0:
            split[i] = SPLITS.index("valid") if label % 2 == 0 else SPLITS.index("test")
        else:
            split[i] = SPLITS.index("train")
    return split


def _random_encoder(rng: np.random.Generator, in_dim: int, hidden_dim: int, feature_dim: int):
    """(W1, b1, W2, b2) of the fixed random He-scaled 2-layer MLP, drawn in this order."""
    return (rng.normal(scale=np.sqrt(2.0 / in_dim), size=(in_dim, hidden_dim)),
            rng.normal(scale=0.1, size=hidden_dim),
            rng.normal(scale=np.sqrt(2.0 / hidden_dim), size=(hidden_dim, feature_dim)),
            rng.normal(scale=0.1, size=feature_dim))


def write(out_dir: str | os.PathLike, *, num_identities: int = 300, images_per_identity: int = 20,
          num_attributes: int = 8, attribute_values: int = 2, feature_dim: int = 64,
          identity_latent_dim: int = 16, image_latent_dim: int = 8, hidden_dim: int = 256,
          noise_scale: float = 0.1, attribute_resample: float = 0.1,
          official_test_identities: int = 30, seed: int = 0,
          attribute_model: str = "independent", encoder_seed: int = 0,
          identity_attributes: int = 28, image_attributes: int = 12, attribute_factors: int = 4,
          factor_loading: float = 0.9, identity_tendency: float = 0.5,
          prevalence_min: float = 0.02, prevalence_max: float = 0.8,
          attribute_prior_shift: float = 0.0, nuisance_scale: float = 1.0,
          nuisance_shift: float = 0.0, name: str = "synthetic") -> dict:
    """Writes the synthetic dataset to `out_dir/<split>.arrow` + `manifest.json`; returns the manifest.

    Args (the knobs; defaults give ~6000 images of D = 64, about 1.6 MB, in about a second):
      num_identities: K, identities = labels 0..K-1, including the held-out ones.
      images_per_identity: images per identity (>= 6 puts images in valid/test).
      num_attributes: A categorical attributes per image (independent model).
      attribute_values: V, the arity of every attribute (2 = binary, like CelebA; independent).
      feature_dim: D, the feature size (BYOL: 2048).
      identity_latent_dim: size of the per-identity latent (identity information beyond attributes).
      image_latent_dim: size of the per-image latent (variation between images of one identity;
        the factor model's nuisance factors).
      hidden_dim: width of the random MLP's hidden layer.
      noise_scale: std of the Gaussian noise added before the output ReLU.
      attribute_resample: probability that an image's attribute is redrawn (independent model).
      official_test_identities: identities (the last ones) held out into `test_official`.
      seed: the images' randomness (independent model: also the encoder's).
      attribute_model: "independent" (uniform independent attributes) or "factor" (CelebA-like).
      The factor model only (emcom/data/celeba_like.py has the equations):
      encoder_seed: the encoder and the attribute structure (prevalences, loadings); datasets
        with the same one (and the same sizes) share the encoder.
      identity_attributes, image_attributes: binary attributes constant per identity / drawn per
        image (A = their sum, identity-level columns first).
      attribute_factors: F, identity factors behind the attributes' correlations.
      factor_loading: r in [0, 1], the share sqrt of an attribute's variance from the factors.
      identity_tendency: w in [0, 1], the variance share of an image-level attribute's score
        from its identity (the rest from the nuisance).
      prevalence_min, prevalence_max: the prevalences, geometrically spaced between them.
      attribute_prior_shift: added to every attribute's probit prevalence (0: none).
      nuisance_scale, nuisance_shift: std and mean of every nuisance factor (1, 0: none).
      name: dataset name recorded in the manifest.
    """
    knobs = {k: v for k, v in locals().items() if k in inspect.signature(write).parameters
             and k not in ("out_dir", "name")}
    _check(knobs)
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    K = num_identities
    if attribute_model == "independent":  # draws in the order of the first version: same bytes
        A, V = num_attributes, attribute_values
        attributes_of = rng.integers(0, V, size=(K, A))                        # (K, A)
        identity_latent = rng.normal(size=(K, identity_latent_dim))            # (K, Lid)
        encoder = _random_encoder(rng, A * V + identity_latent_dim + image_latent_dim,
                                  hidden_dim, feature_dim)

        def images(block):
            n = len(block)
            attributes = attributes_of[block]                                   # (B, A)
            redraw = rng.random(size=(n, A)) < attribute_resample
            attributes = np.where(redraw, rng.integers(0, V, size=(n, A)), attributes)
            onehot = np.eye(V)[attributes].reshape(n, A * V)                    # (B, A*V)
            return attributes, np.concatenate([onehot, identity_latent[block],
                                               rng.normal(size=(n, image_latent_dim))], axis=1)
    else:
        model = celeba_like.Model(knobs)
        A, V = model.num_attributes, 2
        encoder = _random_encoder(np.random.default_rng(celeba_like.streams(encoder_seed)[0]),
                                  model.input_dim, hidden_dim, feature_dim)
        identities = model.identities(rng, K)

        def images(block):
            return model.images(rng, identities, block)
    w1, b1, w2, b2 = encoder
    labels = np.repeat(np.arange(K), images_per_identity)[rng.permutation(K * images_per_identity)]
    split_of = assign_split(labels, K, official_test_identities)
    names = [f"attr_{i:02d}" for i in range(A)]

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out_dir)  # the staging folder of a run killed before its rename
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.staging-"))
    try:
        with contextlib.ExitStack() as stack:  # on error every writer discards its spools
            writers = {s: stack.enter_context(SplitWriter(staging / f"{s}.arrow", feature_dim, names))
                       for s in SPLITS}
            for start in range(0, len(labels), _BLOCK):
                block = labels[start:start + _BLOCK]                        # (B,)
                n = len(block)
                attributes, x = images(block)                               # (B, A), (B, in)
                h = np.maximum(x @ w1 + b1, 0.0)                            # (B, H)
                pre = h @ w2 + b2 + noise_scale * rng.normal(size=(n, feature_dim))
                features = np.maximum(pre, 0.0).astype(np.float32)         # (B, D)
                image_ids = np.arange(start + 1, start + n + 1)
                for index, split in enumerate(SPLITS):
                    rows = split_of[start:start + n] == index
                    writers[split].append(features[rows], block[rows], image_ids[rows],
                                          attributes[rows].astype(np.uint8))
                log.info("synthetic: %d / %d images", start + n, len(labels))
        # Moved into place only once every split is complete.
        out_dir.mkdir(exist_ok=True)
        for split in SPLITS:
            os.replace(staging / f"{split}.arrow", out_dir / f"{split}.arrow")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest = {
        "name": name,
        "feature_dim": feature_dim,
        "num_classes": K,
        "splits": {s: writers[s].num_rows for s in SPLITS},
        "attribute_names": names,
        "attribute_values": V,
        "landmark_names": None,
        "image_ids": "source",
        "source": {"kind": "synthetic", "params": _applicable(knobs), "sha256": None},
        "versions": package_versions(),
    }
    write_json(out_dir / "manifest.json", manifest)
    write_provenance(out_dir / "manifest.json", _applicable(knobs))
    log.info("wrote %s: %s", out_dir, manifest["splits"])
    return manifest
