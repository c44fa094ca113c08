"""Does each headline claim of the paper (`paper.md` §6) hold on this run's tidy tables?

A *claims spec* (`report.claims`, `docs/report.md` "Claims") names the settings each claim
compares; one pure function per claim turns the concatenated tidy tables into a record: the paper's
numbers, this run's (mean ± s.e.m. over seeds, n), the statistic with its value and p, and a
verdict among `VERDICTS`: "holds" (significant at alpha in the claimed direction; for a claim of
*no* effect: none with >= `min_seeds` seeds per group), "does not hold" (contradicted
significantly), "inconclusive" (not significant, too few seeds, or direction ambiguous), "not
measured" (the spec or the tables lack what it needs; the reason names it). Runs are those of
`emcom.report.tables`: a run is one (dataset, setting, seed), its value the mean of its finest
rows at its latest step; generalisation is eval accuracy on `split` at the largest evaluated |C|
not above `candidates`.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import scipy.stats

from emcom import provenance
from emcom.report import tables as T
from emcom.report.tables import PERCENT, RUN, SpecError, run_values, select
from emcom.tidy import SPLITS

log = logging.getLogger(__name__)

VERDICTS = HOLDS, FAILS, UNSURE, MISSING = ("holds", "does not hold", "inconclusive",
                                              "not measured")
REASON = {HOLDS: "consistent with the claim", FAILS: "contradicted significantly",
          UNSURE: "not significant, or too few seeds to tell"}
COLUMNS = ["dataset", "claim", "statement", "verdict", "reason", "statistic", "value", "p",
           "evidence", "paper"]
NAN, REQUIRED = math.nan, "<required>"
# Options: name -> (default, kind); a claim's entry may override the OVERRIDABLE ones.
COMMON: dict[str, tuple[Any, str]] = {
    "alpha": (0.05, "alpha"), "candidates": (1024, "count"), "split": ("test", "split"),
    "robustness": ("absolute", "robustness"), "min_seeds": (5, "min_seeds"),
    "datasets": (None, "names")}
OVERRIDABLE = ("candidates", "split", "robustness", "min_seeds")
S = (REQUIRED, "setting")
# Claim id -> (statement, the paper's evidence (paper.md §6), fields {name: (default, kind)}).
CLAIMS: dict[str, tuple[str, str, dict[str, tuple[Any, str]]]] = {
    "kl": ("KL regularisation stabilises training with many candidates",
           "final train acc. without KL 98.9% (|C| = 20) -> 76.0% (|C| = 1024), high seed "
           "variance; with KL 99.8% / 98.3% (Fig. 1); no KL, alpha = 1e-4: ~40% (Fig. 9)",
           {"with": S, "without": S, "train_candidates": (None, "count"),
            "tail": (0.1, "fraction")}),
    "harder_task": ("larger training |C| generalises better, separated only by hard evaluation",
                    "eval |C| = 16: all > 99.7%; eval |C| = 1024: 87.36 / 93.25 / 96.09 for "
                    "training |C| = 64 / 256 / 1024 (ImageNet, Fig. 2); CelebA 74.50 -> 80.19 "
                    "-> 85.03 -> 89.00 for |C| = 16 -> 1024 (Table 1)",
                    {"settings": (REQUIRED, "by_candidates"), "easy": (None, "count")}),
    "topsim": ("TopSim does not track generalisation",
               "Spearman(TopSim, generalisation) = -0.09 (ImageNet), 0.08 (CelebA), p > 0.19; "
               "attribute TopSim p = 0.13 (Fig. 3)",
               {"settings": (None, "settings"), "metric": ("topsim_image", "name")}),
    "etl": ("ease of transfer learning (ETL) tracks generalisation",
            "every ETL task rises with training |C|; Spearman with generalisation > 0.90, "
            "p ~ 0 (Table 1, CelebA)", {"settings": (None, "settings"),
                                        "metric": ("etl_discrimination", "name"),
                                        "etl_split": (None, "split")}),
    "transfer": ("zero-shot transfer to another dataset collapses and varies widely across seeds",
                 "ImageNet -> CelebA: mean 95.96 -> 36.73, std 0.49 -> 12.86, extremes 27.88 "
                 "vs 68.49 (Sec. 3.2)", {"setting": S, "eval_dataset": (None, "name")}),
    "population": ("larger populations alone do not generalise better",
                   "gen. CelebA 1 / 10 / 50 pairs 89.00 / 91.06 / 90.69 (best 1 pair 90.73); "
                   "ImageNet 96.09 / 95.78 / 95.29 (best 1 pair 97.55) (Table 2)",
                   {"single": S, "larger": S}),
    "imitation": ("imitation helps, more for robustness than for generalisation",
                  "CelebA 50 pairs -> + imitation: gen. 90.69 -> 92.82 (+2.3%), rob. 38.87 -> "
                  "32.69 (paper: 12.8% relative); + vote 93.13 / 32.40 (Table 2)",
                  {"without": S, "with": S, "vote": (False, "flag")}),
    "reset": ("listener reset helps a single pair only, not populations",
              "CelebA gen. 1 pair 89.00 -> 92.21 with reset (rob. 37.90 -> 18.34); 10 pairs "
              "91.06 -> 90.55, 50 pairs 90.69 -> 91.52 (Table 6)",
              {"single": S, "single_reset": S, "population": S, "population_reset": S}),
}


def _count(x: Any, least: int = 1) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= least


def _names(x: Any, least: int = 0) -> bool:
    return isinstance(x, list) and len(x) >= least and all(isinstance(s, str) for s in x)


KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {  # kind -> (check, what it expects)
    "alpha": (lambda x: isinstance(x, float) and 0 < x < 1, "a number in (0, 1)"),
    "count": (_count, "a positive integer"),
    "fraction": (lambda x: isinstance(x, (int, float)) and not isinstance(x, bool)
                 and 0 < x <= 1, "a number in (0, 1]"),
    "flag": (lambda x: isinstance(x, bool), "true or false"),
    "split": (lambda x: x in SPLITS, f"one of {list(SPLITS)}"),
    "robustness": (lambda x: x in ("absolute", "relative"), "absolute or relative"),
    "min_seeds": (lambda x: _count(x, 2), "an integer >= 2"),
    "name": (lambda x: isinstance(x, str) and bool(x), "a name"),
    "names": (_names, "a list of names"),
    "setting": (lambda x: isinstance(x, str), "a setting name"),
    "settings": (lambda x: _names(x, 2), "a list of at least 2 setting names"),
    "by_candidates": (lambda x: isinstance(x, dict) and len(x) >= 2 and _names(list(x.values())),
                      "a mapping {training |C|: setting} with at least 2 entries"),
}


def _field(kind: str, value: Any, where: str, known: set[str] | None) -> Any:
    """One checked, normalised field value; raises SpecError naming `where`."""
    if kind == "by_candidates" and isinstance(value, Mapping):
        bad = [k for k in value if not str(k).isdigit() or int(k) == 0]
        if bad:
            raise SpecError(f"{where}.{bad[0]}: expected a positive training |C| as key")
        # YAML reads `16:` as an int and `"16":` as a string; both mean |C| = 16.
        value = {int(k): v for k, v in sorted(value.items(), key=lambda kv: int(kv[0]))}
    ok, what = KINDS[kind]
    if not ok(value):
        raise SpecError(f"{where}: expected {what}, got {value!r}")
    names = {"setting": [value], "settings": value,
             "by_candidates": list(value.values()) if kind == "by_candidates" else []}.get(kind)
    unknown = [n for n in names or () if known is not None and n not in known]
    if unknown:
        raise SpecError(f"{where}: unknown setting(s) {unknown}; the config defines "
                        f"{sorted(known or ())}")
    return value


def resolve_claims(spec: Mapping[str, Any] | None, settings: Any = None) -> dict[str, Any]:
    """The claims spec with defaults, checked; raises SpecError naming the dotted key.

    `spec`: the `report.claims` block (or a report block holding `claims`, or `{report: ...}`);
    a claim left out is "not measured". `settings`: the setting names the config defines (if
    given, others raise). Returns {option: value, claim id: {field or option: value}}.
    """
    spec = dict(spec or {})
    if set(spec) == {"report"}:
        spec = dict(spec["report"] or {})
    spec = dict(spec["claims"] or {}) if "claims" in spec else spec
    unknown = sorted(set(spec) - set(COMMON) - set(CLAIMS), key=str)
    if unknown:
        raise SpecError(f"report.claims: unknown key(s) {unknown}; expected claims "
                        f"{list(CLAIMS)} or options {list(COMMON)}")
    known = None if settings is None else set(settings)
    out = {k: None if d is None and spec.get(k) is None else
           _field(kind, spec.get(k, d), f"report.claims.{k}", known)
           for k, (d, kind) in COMMON.items()}
    for claim, (_, _, fields) in CLAIMS.items():
        if claim not in spec:
            continue
        where, entry = f"report.claims.{claim}", spec[claim] or {}
        allowed = {**fields, **{k: COMMON[k] for k in OVERRIDABLE}}
        if not isinstance(entry, Mapping) or set(entry) - set(allowed):
            raise SpecError(f"{where}: expected a mapping with keys among {sorted(allowed)}, "
                            f"got {entry!r}")
        missing = [k for k, (d, _) in fields.items() if d == REQUIRED and k not in entry]
        if missing:
            raise SpecError(f"{where}.{missing[0]} is required")
        out[claim] = {**{k: out[k] for k in OVERRIDABLE}, **{k: d for k, (d, _) in fields.items()}}
        for key, value in entry.items():
            if value is not None or allowed[key][0] is not None:
                out[claim][key] = _field(allowed[key][1], value, f"{where}.{key}", known)
    # TopSim and ETL are correlated with generalisation over the training-|C| settings by default.
    for claim in ("topsim", "etl"):
        if claim in out and out[claim]["settings"] is None and "harder_task" in out:
            out[claim]["settings"] = list(out["harder_task"]["settings"].values())
    return out


# ------------------------------------------------------------------------------------- helpers


def _quiet(test: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`test(*args)` without scipy's warnings on constant or tiny samples (they give NaN)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return test(*args, **kwargs)


def _gen(df: pd.DataFrame, c: Mapping[str, Any], metric: str = "accuracy") -> pd.Series:
    """Per-run generalisation as in the tables: eval `metric` on `split` at the main |C|."""
    cands = T.main_candidates(df, c["candidates"])
    return run_values(select(df, stage="eval", metric=metric, split=c["split"], candidates=cands))


def _groups(values: pd.Series, c: Mapping[str, Any], *keys: str) -> dict[str, np.ndarray]:
    """{"key (setting)": per-seed values, NaN dropped} for the claim's setting fields `keys`."""
    return {f"{k} ({c[k]})": values[values.index.get_level_values("setting") == c[k]]
            .dropna().to_numpy(float) for k in keys}


def _absent(groups: Mapping[str, np.ndarray]) -> str:
    return ", ".join(label for label, v in groups.items() if not len(v))


def _describe(groups: Mapping[str, Any], scale: float = PERCENT, sd: bool = False) -> str:
    """'label: mean ± s.e.m. (n)' per group, in display units (x100 for accuracies)."""
    def one(v: np.ndarray) -> str:
        spread = f"sd {np.std(v * scale, ddof=1):.2f}, " if sd and len(v) > 1 else ""
        return f"{T.seed_cell(v, scale).text()} ({spread}n={len(v)})"
    return "; ".join(f"{label}: {one(np.asarray(v, float))}" for label, v in groups.items())


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(t, one-sided p that mean(a) > mean(b)) of Welch's t-test (no equal-variance assumption:
    the compared settings are expected to differ in spread too); NaN with < 2 seeds in a group.
    The reverse direction's p is 1 - p."""
    if min(len(a), len(b)) < 2:
        return NAN, NAN
    r = _quiet(scipy.stats.ttest_ind, a, b, equal_var=False, alternative="greater")
    return float(r.statistic), float(r.pvalue)


def _direction(p: float, alpha: float) -> str:
    """Verdict of a claimed direction from its one-sided p (NaN: too few runs to test)."""
    return HOLDS if p < alpha else FAILS if 1 - p < alpha else UNSURE


def _no_effect(p: float, alpha: float, n: int, min_seeds: int) -> str:
    """Verdict of a claim of *no* effect, p the one-sided p of the effect: a significant effect
    contradicts it; its absence supports it only with `min_seeds` seeds per group, since with
    fewer even a real effect is rarely significant. A significant opposite effect supports it."""
    return FAILS if p < alpha else HOLDS if 1 - p < alpha or n >= min_seeds else UNSURE


def _both(*verdicts: str) -> str:
    """A claim of several parts: contradicted by any part, holds only if every part holds."""
    return FAILS if FAILS in verdicts else HOLDS if set(verdicts) == {HOLDS} else UNSURE


def _p(p: float) -> str:
    return f"p = {p:.3g}" if np.isfinite(p) else "p undefined (too few seeds)"


def _record(claim: str, verdict: str, reason: str, evidence: str = "", statistic: str = "",
            value: float = NAN, p: float = NAN) -> dict[str, Any]:
    return {"claim": claim, "statement": CLAIMS[claim][0], "verdict": verdict, "reason": reason,
            "statistic": statistic, "value": float(value), "p": float(p), "evidence": evidence,
            "paper": CLAIMS[claim][1]}


def _why(verdict: str, alpha: float, n: int | None = None) -> str:
    seeds = f", fewest seeds per group {n}" if n is not None else ""
    return f"{REASON[verdict]} (alpha = {alpha}{seeds})"


MORE, NO_GAIN = "more", "no gain"


def _compare(claim: str, values: pd.Series, c: Mapping[str, Any], alpha: float,
             tests: list[tuple[str, str, str]], what: str, sd: bool = False) -> dict[str, Any]:
    """Welch tests of each (a, b, rule) on the per-seed values of settings c[a] and c[b]: rule
    MORE claims mean(a) > mean(b) (`_direction`), NO_GAIN that it is not (`_no_effect`). The
    parts combine by `_both`; value and p are the first test's."""
    keys = list(dict.fromkeys(k for a, b, _ in tests for k in (a, b)))
    groups = _groups(values, c, *keys)
    if _absent(groups):
        return _record(claim, MISSING, f"no {what} rows for {_absent(groups)}")
    v, verdicts, stats, first = dict(zip(keys, groups.values())), [], [], None
    for a, b, rule in tests:
        (t, p), n = _welch(v[a], v[b]), min(len(v[a]), len(v[b]))
        verdicts.append(_direction(p, alpha) if rule == MORE
                        else _no_effect(p, alpha, n, c["min_seeds"]))
        stats.append(f"{a} > {b}: t = {t:.2f}, {_p(p)} (claim '{rule}': {verdicts[-1]})")
        first = first or (t, p)
    verdict = _both(*verdicts)
    return _record(claim, verdict, _why(verdict, alpha, min(map(len, v.values()))),
                   f"{what} (%): {_describe(groups, sd=sd)}",
                   "Welch t, one-sided: " + "; ".join(stats), *first)


# ------------------------------------------------------------------------------ decision rules
# Each takes the tidy rows of one training dataset, the claim's resolved entry and alpha.


def decide_kl(df: pd.DataFrame, c: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """Final training accuracy with vs without KL: one-sided Welch t-test (with > without).

    The paper's evidence is the mean final train accuracy (98.3% vs 76.0%), its no-KL seeds far
    more spread. A run's value is its mean batch accuracy over the last `tail` of its logged
    steps (one batch is noisy). The seed sd is shown, not tested: with few seeds a variance test
    has little power. `train_candidates` keeps only rows of that training |C|.
    """
    rows = select(df, stage="train", metric="train_accuracy", split="train",
                  candidates=c["train_candidates"], latest=False)
    if len(rows):
        rows = rows[rows["step"] >= (1 - c["tail"]) * rows.groupby(RUN)["step"].transform("max")]
    return _compare("kl", run_values(rows), c, alpha, [("with", "without", MORE)],
                    "train/train_accuracy", sd=True)


def _slope(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[float, float, float, float]:
    """OLS (slope, CI low, CI high, one-sided p that slope > 0); the (1 - 2 alpha) CI excludes 0
    exactly when p < alpha or 1 - p < alpha. NaN with < 3 runs."""
    if len(x) < 3 or len(set(x)) < 2:
        return NAN, NAN, NAN, NAN
    fit = _quiet(scipy.stats.linregress, x, y, alternative="greater")
    half = scipy.stats.t.ppf(1 - alpha, len(x) - 2) * fit.stderr
    return fit.slope, fit.slope - half, fit.slope + half, fit.pvalue


def decide_harder_task(df: pd.DataFrame, c: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """Two OLS slopes over the runs against log2(training |C|), each tested one-sided (> 0).

    "Harder tasks generalise better" is a trend over several settings: the slope of per-run
    accuracy at the hard (main) evaluation |C| uses every seed of every setting. "Separated only
    by hard evaluation" is the slope of each run's gap (accuracy at the hard |C| minus at the
    `easy` one, default the smallest evaluated): positive when the hard evaluation spreads the
    settings more; within-run, so seed noise cancels. Holds when both slopes are significantly
    positive (p: the larger p, an intersection-union test); fails when either is significantly
    negative.
    """
    hard = T.main_candidates(df, c["candidates"])
    rows = select(df, stage="eval", metric="accuracy", split=c["split"])
    rows = rows[rows["setting"].isin(c["settings"].values())]
    missing = [s for s in c["settings"].values() if s not in set(rows["setting"])]
    if missing or not hard:
        return _record("harder_task", MISSING, f"no eval/accuracy/{c['split']} rows for "
                       f"{', '.join(missing) or 'any setting'}")
    hard = next(iter(hard.values()))
    acc = run_values(rows, RUN + ["candidates"]).unstack("candidates").reset_index()
    easy = c["easy"] or min(acc.columns[3:])
    if easy == hard or not {easy, hard} <= set(acc.columns):
        return _record("harder_task", MISSING, f"no easy evaluation |C| (asked {c['easy']}, "
                       f"evaluated {list(acc.columns[3:])}) below the hard {hard}")
    acc = acc.dropna(subset=[hard, easy])
    x = np.log2(acc["setting"].map({s: k for k, s in c["settings"].items()}).to_numpy(float))
    fits = [_slope(x, PERCENT * acc[hard].to_numpy(), alpha),
            _slope(x, PERCENT * (acc[hard] - acc[easy]).to_numpy(), alpha)]
    verdict, p = _both(*(_direction(f[3], alpha) for f in fits)), max(f[3] for f in fits)
    stat = "; ".join(f"{what}: {s:.2f} [{100 * (1 - 2 * alpha):.0f}% CI {lo:.2f}, {hi:.2f}], "
                     f"{_p(q)}" for what, (s, lo, hi, q) in zip(
                         (f"OLS slope of accuracy at eval |C| = {hard} (points per doubling of "
                          "training |C|)", f"of the gap to eval |C| = {easy}"), fits))
    evidence = "; ".join(f"|C| = {k} ({s}): {T.seed_cell(g[hard]).text()} at eval |C| = {hard}"
                         f", {T.seed_cell(g[easy]).text()} at {easy} (n={len(g)})"
                         for k, s in c["settings"].items() for g in [acc[acc["setting"] == s]])
    return _record("harder_task", verdict, _why(verdict, alpha), "test accuracy (%): "
                   + evidence, stat, fits[0][0], p)


def _correlation(df: pd.DataFrame, c: Mapping[str, Any], stage: str, split: str | None,
                 alternative: str, scale: float) -> tuple[float, float, int, str, str]:
    """Spearman (rho, p) between per-run `metric` and generalisation over the runs of the
    settings (as the tables), the fewest seeds of a setting, evidence, "not measured" reason."""
    metric = run_values(select(df, stage=stage, metric=c["metric"], split=split))
    both = pd.concat([metric.rename("m"), _gen(df, c).rename("gen")], axis=1,
                     join="inner").dropna().reset_index()
    per = {s: both[both["setting"] == s] for s in c["settings"] or ()}
    empty = [s for s, g in per.items() if not len(g)]
    if empty or not per:
        return NAN, NAN, 0, "", (f"no {stage}/{c['metric']} rows with generalisation for "
                                 f"{empty}" if per else "no settings (nor harder_task's)")
    both = pd.concat(per.values())
    rho = p = NAN
    if len(both) >= 3 and both["m"].nunique() > 1 and both["gen"].nunique() > 1:
        rho, p = _quiet(scipy.stats.spearmanr, both["m"], both["gen"], alternative=alternative)
    evidence = "; ".join(f"{s}: {c['metric']} {T.seed_cell(g['m'], scale).text()}, gen. "
                         f"{T.seed_cell(g['gen']).text()} (n={len(g)})" for s, g in per.items())
    return float(rho), float(p), min(len(g) for g in per.values()), evidence, ""


def decide_topsim(df: pd.DataFrame, c: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """Spearman's rho between per-run TopSim and generalisation over the runs, two-sided (the
    paper's test). A claim of *no* correlation: a significant rho of either sign contradicts
    it; a non-significant one supports it only with `min_seeds` seeds per setting."""
    rho, p, n, evidence, missing = _correlation(df, c, "language", c["split"], "two-sided",
                                                PERCENT)
    if missing:
        return _record("topsim", MISSING, missing)
    verdict = FAILS if p < alpha else HOLDS if n >= c["min_seeds"] else UNSURE
    return _record("topsim", verdict, _why(verdict, alpha, n), "x100: " + evidence,
                   f"Spearman rho = {rho:.2f}, two-sided, {_p(p)}", rho, p)


def decide_etl(df: pd.DataFrame, c: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """Spearman's rho between per-run final ETL value and generalisation, one-sided: > 0 (< 0
    for a loss). The paper's correlation (Table 1), in the direction it claims."""
    loss = "loss" in c["metric"]  # a lower loss is an easier transfer
    rho, p, _, evidence, missing = _correlation(
        df, c, "etl", T.etl_split(df, c), "less" if loss else "greater", 1 if loss else PERCENT)
    if missing:
        return _record("etl", MISSING, missing)
    verdict = _direction(p, alpha)
    return _record("etl", verdict, _why(verdict, alpha), evidence, f"Spearman rho = {rho:.2f}, "
                   f"one-sided ({'<' if loss else '>'} 0), {_p(p)}", rho, p)


def decide_transfer(df: pd.DataFrame, c: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """Collapse: paired one-sided t-test, source > zero-shot accuracy of the same seeds. Varies
    widely: Pitman-Morgan test that the zero-shot variance exceeds the source's (for paired
    samples var(t) - var(s) = cov(t - s, t + s): a one-sided Pearson test). Both parts must hold
    (p: the larger p). The CV and range are shown, as the paper quotes them."""
    rows = select(df, stage="eval", metric="accuracy", split=c["split"], transfer=True)
    rows = rows[rows["setting"] == c["setting"]]
    targets = [c["eval_dataset"]] if c["eval_dataset"] else sorted(set(rows["eval_dataset"]))
    if len(targets) != 1:
        return _record("transfer", MISSING, f"zero-shot targets {targets} of {c['setting']}: "
                       "need exactly one (set report.claims.transfer.eval_dataset)")
    cap = T.main_candidates(df.assign(dataset=df["eval_dataset"]), c["candidates"])
    cap = cap.get(targets[0])  # capped by the target dataset's own evaluations, as the table
    rows = rows[(rows["eval_dataset"] == targets[0]) & (rows["candidates"] == cap)]
    both = pd.concat([_gen(df, c).rename("source"), run_values(rows).rename("zero-shot")],
                     axis=1, join="inner").dropna()
    if not len(both):
        return _record("transfer", MISSING, f"no eval/accuracy/{c['split']} rows of "
                       f"{c['setting']} on both its dataset and {targets[0]}")
    s, t = both["source"].to_numpy(), both["zero-shot"].to_numpy()
    collapse = (_quiet(scipy.stats.ttest_rel, s, t, alternative="greater").pvalue
                if len(s) > 1 else NAN)
    spread = (_quiet(scipy.stats.pearsonr, t - s, t + s, alternative="greater").pvalue
              if len(s) > 2 and np.ptp(t - s) > 0 and np.ptp(t + s) > 0 else NAN)
    verdict = _both(_direction(collapse, alpha), _direction(spread, alpha))
    cv = np.std(t, ddof=1) / np.mean(t) if len(t) > 1 else NAN
    return _record("transfer", verdict, _why(verdict, alpha), f"accuracy (%) of {c['setting']}"
                   f", zero-shot on {targets[0]} at |C| = {cap}: {_describe(both, sd=True)}; "
                   f"zero-shot CV {cv:.2f}, range {PERCENT * t.min():.2f}-"
                   f"{PERCENT * t.max():.2f}", f"paired t (source > zero-shot): {_p(collapse)}; "
                   f"Pitman-Morgan (zero-shot variance > source): {_p(spread)}",
                   PERCENT * float(np.mean(s - t)), max(collapse, spread))


def decide_population(df: pd.DataFrame, c: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """Generalisation of the larger population vs the single pair: one-sided Welch t-test
    (larger > single), a claim of *no* gain (`_no_effect`). "best 1 pair" is one seed chosen
    after the fact: shown in Table 2, not tested."""
    return _compare("population", _gen(df, c), c, alpha, [("larger", "single", NO_GAIN)],
                    f"eval/accuracy/{c['split']}")


def decide_imitation(df: pd.DataFrame, c: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """Imitation vs the same population without it: one-sided Welch t-tests that generalisation
    rises and that the robustness drop falls, and their relative gains (the paper: 2.3% vs
    12.8%). Holds when the robustness gain is significant, generalisation does not fall and its
    relative gain is the smaller; fails when either metric is significantly worse. With `vote`
    the imitation setting's listener-vote ensemble is read, as in Table 2's "+ vote" rows."""
    cands = T.main_candidates(df, c["candidates"])
    gen = _groups(_gen(df, c, "accuracy_vote" if c["vote"] else "accuracy"), c, "with")
    gen.update(_groups(_gen(df, c), c, "without"))
    rob = _groups(T._robustness(df, c, cands, c["split"], c["vote"]), c, "with")
    rob.update(_groups(T._robustness(df, c, cands, c["split"], False), c, "without"))
    if _absent(gen) or _absent(rob):
        return _record("imitation", MISSING, f"no generalisation or {c['robustness']} "
                       f"robustness rows for {_absent(gen) or _absent(rob)}")
    (gw, gn), (rw, rn) = gen.values(), rob.values()
    (t_g, p_g), (t_r, p_r) = _welch(gw, gn), _welch(rn, rw)  # a lower drop: more robust
    gain_g = (gw.mean() - gn.mean()) / gn.mean() if gn.mean() > 0 else NAN
    gain_r = (rn.mean() - rw.mean()) / rn.mean() if rn.mean() > 0 else NAN
    verdict = (FAILS if 1 - p_g < alpha or 1 - p_r < alpha else
               HOLDS if p_r < alpha and gain_g >= 0 and gain_r > gain_g else UNSURE)
    return _record("imitation", verdict, _why(verdict, alpha), f"generalisation (%): "
                   f"{_describe(gen)}; robustness drop (%, {c['robustness']}): {_describe(rob)}"
                   f"; relative gains: generalisation {PERCENT * gain_g:+.1f}%, robustness "
                   f"{PERCENT * gain_r:+.1f}%", f"Welch t, one-sided: generalisation with > "
                   f"without t = {t_g:.2f}, {_p(p_g)}; robustness drop with < without t = "
                   f"{t_r:.2f}, {_p(p_r)}", t_r, p_r)


def decide_reset(df: pd.DataFrame, c: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """Generalisation with vs without listener reset: one-sided Welch t-tests (reset > none),
    significant for the single pair, and a claim of *no* gain for the population."""
    return _compare("reset", _gen(df, c), c, alpha, [("single_reset", "single", MORE),
                                                     ("population_reset", "population", NO_GAIN)],
                    f"eval/accuracy/{c['split']}")


DECIDERS: dict[str, Callable[[pd.DataFrame, Mapping[str, Any], float], dict[str, Any]]] = {
    "kl": decide_kl, "harder_task": decide_harder_task, "topsim": decide_topsim,
    "etl": decide_etl, "transfer": decide_transfer, "population": decide_population,
    "imitation": decide_imitation, "reset": decide_reset}


# ------------------------------------------------------------------------------------- outputs


def decide_all(df: pd.DataFrame, spec: Mapping[str, Any] | None, alpha: float | None = None,
               settings: Any = None) -> pd.DataFrame:
    """One row per (training dataset, claim) with columns `COLUMNS`, in the paper's order.

    `alpha` defaults to the spec's; the spec's `datasets` to every dataset with train or eval
    rows. A claim missing from the spec is "not measured".
    """
    spec = resolve_claims(spec, settings)
    alpha = spec["alpha"] if alpha is None else float(alpha)
    if not KINDS["alpha"][0](alpha):
        raise SpecError(f"alpha must be in (0, 1), got {alpha!r}")
    df = T.check_frame(df)
    datasets = spec["datasets"] or sorted(set(df.loc[df["stage"].isin(["train", "eval"]),
                                                     "dataset"])) or [""]
    records = [{"dataset": dataset, **(
        DECIDERS[claim](df[df["dataset"] == dataset], spec[claim], alpha) if claim in spec
        else _record(claim, MISSING, f"report.claims.{claim} is not in the spec"))}
        for dataset in datasets for claim in CLAIMS]
    return pd.DataFrame(records, columns=COLUMNS)


def to_markdown(claims: pd.DataFrame, alpha: float) -> str:
    """A summary table (dataset, claim, verdict, p), then one section per record."""
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|")  # a bare "|" (as in "|C|") would split the cell
    lines = ["## The paper's claims (§6) on this run", "", f"alpha = {alpha}; verdicts: holds, "
             "does not hold, inconclusive, not measured (docs/report.md, Claims).", "",
             "| Dataset | Claim | Verdict | p |", "|---|---|---|---:|"]
    lines += [f"| {r.dataset} | {r.claim}: {cell(r.statement)} | {r.verdict} | "
              f"{'n/a' if math.isnan(r.p) else f'{r.p:.3g}'} |" for r in claims.itertuples()]
    for r in claims.itertuples():
        lines += ["", f"### {r.dataset}: {r.claim}: {r.statement}", "",
                  f"- **{r.verdict}**: {r.reason}", f"- Paper: {r.paper}",
                  f"- This run: {r.evidence or 'n/a'}", f"- Statistic: {r.statistic or 'n/a'}"]
    return "\n".join(lines) + "\n"


def write_claims(df: pd.DataFrame, spec: Mapping[str, Any] | None, out_dir: str | os.PathLike,
                 alpha: float | None = None, settings: Any = None) -> list[Path]:
    """Writes claims.md, claims.csv and claims.json (records, NaN as null) atomically, and
    claims.csv.provenance.json (the resolved spec, alpha); returns [md, csv, json]."""
    spec = resolve_claims(spec, settings)
    alpha = spec["alpha"] if alpha is None else float(alpha)
    claims = decide_all(df, spec, alpha)
    md, csv, js = (Path(out_dir) / f"claims.{ext}" for ext in ("md", "csv", "json"))
    with provenance.atomic_path(md, suffix=".md") as tmp:
        tmp.write_text(to_markdown(claims, alpha), encoding="utf-8")
    with provenance.atomic_path(csv, suffix=".csv") as tmp:
        claims.to_csv(tmp, index=False)
    provenance.write_json(js, [{k: None if isinstance(v, float) and math.isnan(v) else v
                                for k, v in rec.items()} for rec in claims.to_dict("records")])
    counts = {verdict: int(n) for verdict, n in claims["verdict"].value_counts().items()}
    provenance.write_provenance(csv, {"claims": spec, "alpha": alpha}, verdicts=counts)
    log.info("wrote %d claim verdicts to %s", len(claims), out_dir)
    return [md, csv, js]
