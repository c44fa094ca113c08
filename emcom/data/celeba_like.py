"""The CelebA-like attribute model of `synthetic` (`attribute_model="factor"`).

What an image of identity k shows (the encoder's input), with A = identity_attributes +
image_attributes binary attributes, F = attribute_factors, r = factor_loading:

  world (from `encoder_seed`, shared by every dataset that names the same one):
      prevalences p_j, geometrically spaced in [prevalence_min, prevalence_max], shuffled
      loadings L_j in R^F with |L_j| = r           (attribute correlations: corr = L_j . L_j')
      nuisance loadings N_j in R^image_latent_dim, |N_j| = 1   (image-level attributes only)
  identity k (from `seed`):
      factors f_k ~ N(0, I_F), residuals e_kj ~ N(0, 1), identity latent z_k ~ N(0, I)
      tendency t_kj = L_j . f_k + sqrt(1 - r^2) e_kj          (standard normal per attribute)
  image i of identity k (from `seed`):
      nuisance u_i = nuisance_shift + nuisance_scale * N(0, I_image_latent_dim)
      score s_ij = t_kj                             (identity-level: j < identity_attributes)
             s_ij = sqrt(w) t_kj + sqrt(1 - w) N_j . u_i    (image-level; w = identity_tendency)
      a_ij = 1[s_ij > Phi^-1(1 - p_j) - attribute_prior_shift]
      input = [2 a_i - 1, z_k, u_i]  -> the fixed random encoder of `synthetic` -> features

Unshifted (shift 0, nuisance N(0, I)) every score is standard normal, so attribute j has
prevalence p_j exactly in expectation; `attribute_prior_shift` d moves it to Phi(Phi^-1(p_j) + d).
The shift knobs change what the encoder sees, never the encoder or the world.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import NamedTuple

import numpy as np

from emcom.data.errors import DataError

KNOBS = ("encoder_seed", "identity_attributes", "image_attributes", "attribute_factors",
         "factor_loading", "identity_tendency", "prevalence_min", "prevalence_max",
         "attribute_prior_shift", "nuisance_scale", "nuisance_shift")


def _number(knobs: dict, name: str) -> float:
    value = knobs[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"synthetic: {name} must be a finite number, got {value!r}")
    return value


def check(knobs: dict) -> None:
    """DataError naming the knob for a factor-model knob of a wrong type or out of range."""
    for name in ("encoder_seed", "identity_attributes", "image_attributes"):
        value = knobs[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DataError(f"synthetic: {name} must be a non-negative integer, got {value!r}")
    value = knobs["attribute_factors"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(f"synthetic: attribute_factors must be a positive integer, got {value!r}")
    for name in ("factor_loading", "identity_tendency"):
        if not 0.0 <= _number(knobs, name) <= 1.0:
            raise DataError(f"synthetic: {name} must be in [0, 1], got {knobs[name]!r}")
    for name in ("prevalence_min", "prevalence_max"):
        if not 0.0 < _number(knobs, name) < 1.0:
            raise DataError(f"synthetic: {name} must be in (0, 1), got {knobs[name]!r}")
    if knobs["prevalence_min"] > knobs["prevalence_max"]:
        raise DataError(f"synthetic: prevalence_min must be <= prevalence_max, got "
                        f"{knobs['prevalence_min']!r} > {knobs['prevalence_max']!r}")
    _number(knobs, "attribute_prior_shift")
    _number(knobs, "nuisance_shift")
    if not _number(knobs, "nuisance_scale") >= 0.0:
        raise DataError(f"synthetic: nuisance_scale must be >= 0, got {knobs['nuisance_scale']!r}")


def check_factor(knobs: dict) -> None:
    """The checks that only apply when the factor model is used (its sizes must make sense)."""
    if knobs["identity_attributes"] + knobs["image_attributes"] < 1:
        raise DataError("synthetic: identity_attributes + image_attributes must be >= 1")
    if knobs["image_attributes"] and not knobs["image_latent_dim"]:
        raise DataError("synthetic: image_latent_dim must be >= 1 when image_attributes > 0 "
                        "(image-level attributes depend on the nuisance factors)")


def streams(encoder_seed: int) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """The seeds of the encoder and of the world: children of `encoder_seed`, independent of each
    other and of a data generator `default_rng(seed)` even when seed == encoder_seed."""
    return tuple(np.random.SeedSequence(encoder_seed, spawn_key=(i,)) for i in (1, 2))


class Identities(NamedTuple):
    tendency: np.ndarray  # (K, A) standard-normal attribute scores of each identity
    latent: np.ndarray    # (K, identity_latent_dim)


class Model:
    """The world of the factor model, fixed by `encoder_seed` and the sizes (see the module doc)."""

    def __init__(self, knobs: dict):
        self.knobs = knobs
        self.num_identity = knobs["identity_attributes"]
        self.num_attributes = A = knobs["identity_attributes"] + knobs["image_attributes"]
        self.input_dim = A + knobs["identity_latent_dim"] + knobs["image_latent_dim"]
        rng = np.random.default_rng(streams(knobs["encoder_seed"])[1])
        grid = np.geomspace(knobs["prevalence_min"], knobs["prevalence_max"], A)
        self.prevalence = grid[rng.permutation(A)]                                  # (A,)
        loadings = rng.normal(size=(A, knobs["attribute_factors"]))
        self.loadings = knobs["factor_loading"] * loadings / np.linalg.norm(loadings, axis=1,
                                                                            keepdims=True)
        nuisance = rng.normal(size=(knobs["image_attributes"], knobs["image_latent_dim"]))
        self.nuisance_loadings = nuisance / np.maximum(
            np.linalg.norm(nuisance, axis=1, keepdims=True), 1e-12)               # (A_im, U)
        normal = NormalDist()
        self.threshold = (np.array([normal.inv_cdf(1.0 - p) for p in self.prevalence])
                          - knobs["attribute_prior_shift"])                         # (A,)

    def score_correlation(self) -> np.ndarray:
        """(A, A) correlation of the attributes' scores s (unshifted nuisance): L_j . L_j',
        scaled by sqrt(w) per image-level attribute, plus (1 - w) N_j . N_j' between two
        image-level ones. The binary attributes' correlations follow its signs, attenuated."""
        w, i = self.knobs["identity_tendency"], self.num_identity
        scale = np.r_[np.ones(i), np.full(self.num_attributes - i, math.sqrt(w))]
        corr = self.loadings @ self.loadings.T * np.outer(scale, scale)
        corr[i:, i:] += (1.0 - w) * self.nuisance_loadings @ self.nuisance_loadings.T
        np.fill_diagonal(corr, 1.0)
        return corr

    def identities(self, rng: np.random.Generator, num_identities: int) -> Identities:
        r = self.knobs["factor_loading"]
        factors = rng.normal(size=(num_identities, self.loadings.shape[1]))        # (K, F)
        residual = rng.normal(size=(num_identities, self.num_attributes))          # (K, A)
        tendency = factors @ self.loadings.T + math.sqrt(1.0 - r * r) * residual
        return Identities(tendency, rng.normal(size=(num_identities,
                                                     self.knobs["identity_latent_dim"])))

    def images(self, rng: np.random.Generator, identities: Identities,
               labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Attributes (B, A) uint8 and encoder inputs (B, input_dim) of images of `labels`."""
        k = self.knobs
        nuisance = k["nuisance_shift"] + k["nuisance_scale"] * rng.normal(
            size=(len(labels), k["image_latent_dim"]))                              # (B, U)
        score = identities.tendency[labels]                                         # (B, A)
        w = k["identity_tendency"]
        score[:, self.num_identity:] = (math.sqrt(w) * score[:, self.num_identity:]
                                        + math.sqrt(1.0 - w) * nuisance @ self.nuisance_loadings.T)
        attributes = (score > self.threshold).astype(np.uint8)
        x = np.concatenate([2.0 * attributes - 1.0, identities.latent[labels], nuisance], axis=1)
        return attributes, x
