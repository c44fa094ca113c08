"""The statistics of the claims' decision rules and how a p-value becomes a verdict
(`emcom.report.claims_spec.VERDICTS`); docs/report.md, Claims, says why each test."""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
import scipy.stats

from emcom.report.claims_spec import FAILS, HOLDS, NAN, UNSURE


def quiet(test: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`test(*args)` without scipy's warnings on constant or tiny samples (they give NaN)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return test(*args, **kwargs)


def welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(t, one-sided p that mean(a) > mean(b)) of Welch's t-test (no equal-variance assumption:
    the compared settings are expected to differ in spread too); NaN with < 2 seeds in a group.
    The reverse direction's p is 1 - p."""
    if min(len(a), len(b)) < 2:
        return NAN, NAN
    r = quiet(scipy.stats.ttest_ind, a, b, equal_var=False, alternative="greater")
    return float(r.statistic), float(r.pvalue)


def direction(p: float, alpha: float) -> str:
    """Verdict of a claimed direction from its one-sided p (NaN: too few runs to test)."""
    return HOLDS if p < alpha else FAILS if 1 - p < alpha else UNSURE


def no_effect(p: float, alpha: float, n: int, min_seeds: int) -> str:
    """Verdict of a claim of *no* effect, p the one-sided p of the effect: a significant effect
    contradicts it; its absence supports it only with `min_seeds` seeds per group, since with
    fewer even a real effect is rarely significant. A significant opposite effect supports it."""
    return FAILS if p < alpha else HOLDS if 1 - p < alpha or n >= min_seeds else UNSURE


def combine(*verdicts: str) -> str:
    """A claim of several parts: contradicted by any part, holds only if every part holds."""
    return FAILS if FAILS in verdicts else HOLDS if set(verdicts) == {HOLDS} else UNSURE


def slope(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[float, float, float, float]:
    """OLS (slope, CI low, CI high, one-sided p that slope > 0); the (1 - 2 alpha) CI excludes 0
    exactly when p < alpha or 1 - p < alpha. NaN with < 3 runs."""
    if len(x) < 3 or len(set(x)) < 2:
        return NAN, NAN, NAN, NAN
    fit = quiet(scipy.stats.linregress, x, y, alternative="greater")
    half = scipy.stats.t.ppf(1 - alpha, len(x) - 2) * fit.stderr
    return fit.slope, fit.slope - half, fit.slope + half, fit.pvalue


def p_text(p: float) -> str:
    return f"p = {p:.3g}" if np.isfinite(p) else "p undefined (too few seeds)"
