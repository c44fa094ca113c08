"""Why a claim is inconclusive, measured rather than guessed (docs/claims.md): would more seeds
tell (the seeds per group at which each Welch comparison of the claims would reach the usual
power), and would more steps (how fast each setting's accuracy still rises at the end).

    python -m emcom.report diagnose results/**/*.parquet --spec config/claims.yaml
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import scipy.stats

from emcom.report.claim_rules import (
    final_train_accuracy, gen_values, imitation_groups, setting_groups)
from emcom.report.claim_stats import quiet
from emcom.report.claims import decide_all
from emcom.report.claims_spec import resolve_claims
from emcom.report.select import PERCENT, RUN, check_frame, main_candidates, seed_cell, select

# claim -> the comparisons its rule makes: (a, b, what), the claim being mean(a) > mean(b).
COMPARISONS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "kl": (("with", "without", "final train accuracy"),),
    "population": (("larger", "single", "generalisation"),),
    "imitation": (("with", "without", "generalisation"),
                  ("without", "with", "robustness drop")),
    "reset": (("single_reset", "single", "generalisation"),
              ("population_reset", "population", "generalisation")),
}


def seeds_for_power(a: np.ndarray, b: np.ndarray, alpha: float, power: float = 0.8) -> float:
    """Seeds per group at which a one-sided test of mean(a) > mean(b) has `power` if the observed
    means and standard deviations were the true ones (normal approximation:
    n = (z_{1-alpha} + z_power)^2 (s_a^2 + s_b^2) / d^2, at least 2: a t-test's least). inf when
    the observed difference d is not positive (no number of seeds makes it significant in the
    claimed direction); NaN with fewer than 2 seeds in a group."""
    if min(len(a), len(b)) < 2:
        return math.nan
    d = float(np.mean(a) - np.mean(b))
    if d <= 0:
        return math.inf
    z = scipy.stats.norm.ppf(1 - alpha) + scipy.stats.norm.ppf(power)
    return max(2, math.ceil(z ** 2 * (np.var(a, ddof=1) + np.var(b, ddof=1)) / d ** 2))


def runs_for_power(p: float, n: int, alpha: float, power: float = 0.8) -> float:
    """Runs at which a one-sided test whose statistic grows as sqrt(runs) (a slope's t, a
    correlation's) reaches `power`, if its observed one-sided `p` over `n` runs were the truth:
    n ((z_{1-alpha} + z_power) / z_p)^2 with z_p = Phi^-1(1 - p); inf when p >= 0.5 (the
    observed trend is flat or the other way)."""
    if not np.isfinite(p) or n < 1:
        return math.nan
    if p >= 0.5:
        return math.inf
    z = scipy.stats.norm.ppf(1 - alpha) + scipy.stats.norm.ppf(power)
    return math.ceil(n * (z / scipy.stats.norm.ppf(1 - p)) ** 2)


TRENDS = ("harder_task", "etl")  # claims decided by a trend over runs (a slope, a correlation)


def trends(df: pd.DataFrame, spec: Mapping[str, Any], power: float = 0.8) -> pd.DataFrame:
    """One row per claim of `TRENDS` in `spec` and dataset: its verdict's p, the runs it rests on
    (generalisation values of its settings) and `runs_for_power`."""
    spec = resolve_claims(spec)
    records = decide_all(df, spec)
    out = []
    for r in records[records["claim"].isin([t for t in TRENDS if t in spec])].itertuples():
        c = spec[r.claim]
        names = c["settings"].values() if isinstance(c["settings"], Mapping) else c["settings"]
        gen = gen_values(check_frame(df[df["dataset"] == r.dataset]), c)
        n = int(gen.index.get_level_values("setting").isin(list(names)).sum())
        out.append({"dataset": r.dataset, "claim": r.claim, "verdict": r.verdict, "p": r.p,
                    "runs": n, "runs_for_power": runs_for_power(r.p, n, spec["alpha"], power)})
    return pd.DataFrame(out, columns=["dataset", "claim", "verdict", "p", "runs",
                                      "runs_for_power"])


def comparisons(df: pd.DataFrame, spec: Mapping[str, Any], alpha: float | None = None,
                power: float = 0.8) -> pd.DataFrame:
    """One row per comparison of `COMPARISONS` whose claim is in `spec` (`report.claims`) and
    dataset in the tables: the two settings' means and sds (x100), n, and `seeds_for_power`."""
    spec = resolve_claims(spec)
    alpha = spec["alpha"] if alpha is None else alpha
    df = check_frame(df)
    out = []
    for dataset in spec["datasets"] or sorted(set(df.loc[df["stage"].isin(["train", "eval"]),
                                                         "dataset"])):
        rows = df[df["dataset"] == dataset]
        for claim, tests in COMPARISONS.items():
            if claim not in spec:
                continue
            c = spec[claim]
            if claim == "imitation":
                gen, rob = imitation_groups(rows, c)
                found = {"generalisation": list(gen.values()),
                         "robustness drop": list(rob.values())[::-1]}
            for a, b, what in tests:
                if claim == "imitation":
                    va, vb = found[what]
                else:
                    values = final_train_accuracy(rows, c) if claim == "kl" else gen_values(rows, c)
                    va, vb = setting_groups(values, c, a, b).values()
                out.append({
                    "dataset": dataset, "claim": claim, "metric": what,
                    "a": f"{a} ({c[a]})", "b": f"{b} ({c[b]})",
                    "mean_a": PERCENT * np.mean(va) if len(va) else math.nan,
                    "mean_b": PERCENT * np.mean(vb) if len(vb) else math.nan,
                    "sd_a": PERCENT * np.std(va, ddof=1) if len(va) > 1 else math.nan,
                    "sd_b": PERCENT * np.std(vb, ddof=1) if len(vb) > 1 else math.nan,
                    "n_a": len(va), "n_b": len(vb), "seeds_for_power": seeds_for_power(
                        np.asarray(va), np.asarray(vb), alpha, power)})
    return pd.DataFrame(out)


def late_rise(df: pd.DataFrame, settings: Iterable[str], candidates: int, split: str = "valid",
              fraction: float = 0.25) -> pd.DataFrame:
    """Per (dataset, setting): the trainer's periodic `split` accuracy at the end (x100, mean over
    the last `fraction` of the evaluated steps) and its OLS slope over those steps, in points per
    1,000 steps; mean and s.e.m. over seeds. A slope whose interval lies above 0 says the setting
    was still learning when it stopped."""
    df = check_frame(df)
    rows = select(df, stage="train", metric="accuracy", split=split, latest=False)
    # the |C| the trainer evaluated, chosen by the tables' rule for the evaluation stage's
    cands = main_candidates(rows.assign(stage="eval"), candidates)
    rows = rows[rows["candidates"] == rows["dataset"].map(cands)]
    order = {s: i for i, s in enumerate(settings)}
    rows = rows[rows["setting"].isin(list(order))]
    per_run = []
    for run, r in rows.groupby(RUN):
        curve = r.groupby("step")["value"].mean()
        late = curve[curve.index >= (1 - fraction) * curve.index.max()]
        fit = quiet(scipy.stats.linregress, late.index, late.to_numpy()) if len(late) > 2 else None
        per_run.append({**dict(zip(RUN, run)), "end": PERCENT * late.mean(),
                        "slope": PERCENT * 1000 * fit.slope if fit else math.nan,
                        "steps": f"{late.index.min()}-{late.index.max()}"})
    runs = pd.DataFrame(per_run, columns=RUN + ["end", "slope", "steps"])
    runs = runs.iloc[np.argsort(runs["setting"].map(order).to_numpy(), kind="stable")]

    def sem(x: pd.Series) -> float:  # the tables' standard error over seeds
        return seed_cell(x, 1.0).se
    return runs.groupby(["dataset", "setting"], sort=False).agg(
        end=("end", "mean"), end_sem=("end", sem), slope=("slope", "mean"),
        slope_sem=("slope", sem), n=("seed", "count"), steps=("steps", "first")).reset_index()


def spec_settings(spec: Mapping[str, Any]) -> list[str]:
    """Every setting a claims spec names, in its order."""
    spec, names = resolve_claims(spec), []
    for entry in spec.values():
        for value in (entry.values() if isinstance(entry, Mapping) else ()):
            values = value.values() if isinstance(value, Mapping) else (
                value if isinstance(value, list) else [value])
            names += [v for v in values if isinstance(v, str)]
    return list(dict.fromkeys(names))


def to_markdown(comp: pd.DataFrame, trend: pd.DataFrame, rise: pd.DataFrame) -> str:
    """The three tables of docs/claims.md, "Why": comparisons, trends, late rises."""
    def num(x: float, digits: int = 2) -> str:
        return "never" if x == math.inf else "n/a" if not np.isfinite(x) else f"{x:.{digits}f}"
    lines = ["| claim | comparison (a > b) | metric | a | b | n | seeds per group for 80% power |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.claim} | {r.a} > {r.b} | {r.metric} | {num(r.mean_a)} (sd {num(r.sd_a)}) | "
              f"{num(r.mean_b)} (sd {num(r.sd_b)}) | {r.n_a}, {r.n_b} | "
              f"{num(r.seeds_for_power, 0)} |" for r in comp.itertuples()]
    lines += ["", "| claim | verdict | one-sided p | runs | runs for 80% power |",
              "|---|---|---|---|---|"]
    lines += [f"| {r.claim} | {r.verdict} | {r.p:.3g} | {r.runs} | {num(r.runs_for_power, 0)} |"
              for r in trend.itertuples()]
    lines += ["", "| setting | end accuracy (%) | slope (points / 1,000 steps) | steps | n |",
              "|---|---|---|---|---|"]
    lines += [f"| {r.setting} | {num(r.end)} ± {num(r.end_sem)} | {num(r.slope)} ± "
              f"{num(r.slope_sem)} | {r.steps} | {r.n} |" for r in rise.itertuples()]
    return "\n".join(lines) + "\n"
