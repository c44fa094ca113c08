"""The claims spec (`report.claims`, docs/report.md "Claims"): which settings test which of the
paper's claims (`paper.md` §6), with the paper's evidence for each. `resolve_claims` checks it."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

from emcom.names import SPLITS
from emcom.report.spec import SpecError


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


class ClaimsSpec(dict):
    """A resolved claims spec: {option: value, claim id: {field or option: value}}."""


def resolve_claims(spec: Mapping[str, Any] | None, settings: Any = None) -> ClaimsSpec:
    """The claims spec with defaults, checked; raises SpecError naming the dotted key.

    `spec`: the `report.claims` block (or a report block holding `claims`, or `{report: ...}`);
    a claim left out is "not measured". `settings`: the setting names the config defines (if
    given, others raise). A `ClaimsSpec` is already resolved: returned as is unless `settings`
    is given.
    """
    if isinstance(spec, ClaimsSpec) and settings is None:
        return spec
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
    return ClaimsSpec(out)


