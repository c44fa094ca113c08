"""One decision rule per claim of the paper (`paper.md` §6): tidy tables + a claim's checked
spec entry + alpha -> a record with the run's evidence, the statistic and a verdict
(`emcom.report.claims_spec.VERDICTS`). Each rule's docstring says which statistic and why."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import scipy.stats

from emcom.report.claim_stats import combine, direction, no_effect, p_text, quiet, slope, welch
from emcom.report.claims_spec import CLAIMS, FAILS, HOLDS, MISSING, NAN, REASON, UNSURE
from emcom.report.select import (
    PERCENT, RUN, etl_split, main_candidates, robustness_drops, run_values, seed_cell, select)


def gen_values(df: pd.DataFrame, c: Mapping[str, Any], metric: str = "accuracy") -> pd.Series:
    """Per-run generalisation as in the tables: eval `metric` on `split` at the main |C|."""
    cands = main_candidates(df, c["candidates"])
    return run_values(select(df, stage="eval", metric=metric, split=c["split"], candidates=cands))


def setting_groups(values: pd.Series, c: Mapping[str, Any],
                   *keys: str) -> dict[str, np.ndarray]:
    """{"key (setting)": per-seed values, NaN dropped} for the claim's setting fields `keys`."""
    return {f"{k} ({c[k]})": values[values.index.get_level_values("setting") == c[k]]
            .dropna().to_numpy(float) for k in keys}


def _absent(groups: Mapping[str, np.ndarray]) -> str:
    return ", ".join(label for label, v in groups.items() if not len(v))


def _describe(groups: Mapping[str, Any], scale: float = PERCENT, sd: bool = False) -> str:
    """'label: mean ± s.e.m. (n)' per group, in display units (x100 for accuracies)."""
    def one(v: np.ndarray) -> str:
        spread = f"sd {np.std(v * scale, ddof=1):.2f}, " if sd and len(v) > 1 else ""
        return f"{seed_cell(v, scale).text()} ({spread}n={len(v)})"
    return "; ".join(f"{label}: {one(np.asarray(v, float))}" for label, v in groups.items())


def record(claim: str, verdict: str, reason: str, evidence: str = "", statistic: str = "",
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
    MORE claims mean(a) > mean(b) (`direction`), NO_GAIN that it is not (`no_effect`). The
    parts combine by `combine`; value and p are the first test's."""
    keys = list(dict.fromkeys(k for a, b, _ in tests for k in (a, b)))
    found = setting_groups(values, c, *keys)
    if _absent(found):
        return record(claim, MISSING, f"no {what} rows for {_absent(found)}")
    v, verdicts, stats, first = dict(zip(keys, found.values())), [], [], None
    for a, b, rule in tests:
        (t, p), n = welch(v[a], v[b]), min(len(v[a]), len(v[b]))
        verdicts.append(direction(p, alpha) if rule == MORE
                        else no_effect(p, alpha, n, c["min_seeds"]))
        stats.append(f"{a} > {b}: t = {t:.2f}, {p_text(p)} (claim '{rule}': {verdicts[-1]})")
        first = first or (t, p)
    verdict = combine(*verdicts)
    return record(claim, verdict, _why(verdict, alpha, min(map(len, v.values()))),
                   f"{what} (%): {_describe(found, sd=sd)}",
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
    return _compare("kl", final_train_accuracy(df, c), c, alpha, [("with", "without", MORE)],
                    "train/train_accuracy", sd=True)


def final_train_accuracy(df: pd.DataFrame, c: Mapping[str, Any]) -> pd.Series:
    """Per run: the mean logged batch accuracy over the last `tail` of its steps."""
    rows = select(df, stage="train", metric="train_accuracy", split="train",
                  candidates=c["train_candidates"], latest=False)
    if len(rows):
        rows = rows[rows["step"] >= (1 - c["tail"]) * rows.groupby(RUN)["step"].transform("max")]
    return run_values(rows)


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
    hard = main_candidates(df, c["candidates"])
    rows = select(df, stage="eval", metric="accuracy", split=c["split"])
    rows = rows[rows["setting"].isin(c["settings"].values())]
    missing = [s for s in c["settings"].values() if s not in set(rows["setting"])]
    if missing or not hard:
        return record("harder_task", MISSING, f"no eval/accuracy/{c['split']} rows for "
                       f"{', '.join(missing) or 'any setting'}")
    hard = next(iter(hard.values()))
    acc = run_values(rows, RUN + ["candidates"]).unstack("candidates").reset_index()
    easy = c["easy"] or min(acc.columns[3:])
    if easy == hard or not {easy, hard} <= set(acc.columns):
        return record("harder_task", MISSING, f"no easy evaluation |C| (asked {c['easy']}, "
                       f"evaluated {list(acc.columns[3:])}) below the hard {hard}")
    acc = acc.dropna(subset=[hard, easy])
    x = np.log2(acc["setting"].map({s: k for k, s in c["settings"].items()}).to_numpy(float))
    fits = [slope(x, PERCENT * acc[hard].to_numpy(), alpha),
            slope(x, PERCENT * (acc[hard] - acc[easy]).to_numpy(), alpha)]
    verdict, p = combine(*(direction(f[3], alpha) for f in fits)), max(f[3] for f in fits)
    stat = "; ".join(f"{what}: {s:.2f} [{100 * (1 - 2 * alpha):.0f}% CI {lo:.2f}, {hi:.2f}], "
                     f"{p_text(q)}" for what, (s, lo, hi, q) in zip(
                         (f"OLS slope of accuracy at eval |C| = {hard} (points per doubling of "
                          "training |C|)", f"of the gap to eval |C| = {easy}"), fits))
    evidence = "; ".join(f"|C| = {k} ({s}): {seed_cell(g[hard]).text()} at eval |C| = {hard}"
                         f", {seed_cell(g[easy]).text()} at {easy} (n={len(g)})"
                         for k, s in c["settings"].items() for g in [acc[acc["setting"] == s]])
    return record("harder_task", verdict, _why(verdict, alpha), "test accuracy (%): "
                   + evidence, stat, fits[0][0], p)


def _correlation(df: pd.DataFrame, c: Mapping[str, Any], stage: str, split: str | None,
                 alternative: str, scale: float) -> tuple[float, float, int, str, str]:
    """Spearman (rho, p) between per-run `metric` and generalisation over the runs of the
    settings (as the tables), the fewest seeds of a setting, evidence, "not measured" reason."""
    metric = run_values(select(df, stage=stage, metric=c["metric"], split=split))
    both = pd.concat([metric.rename("m"), gen_values(df, c).rename("gen")], axis=1,
                     join="inner").dropna().reset_index()
    per = {s: both[both["setting"] == s] for s in c["settings"] or ()}
    empty = [s for s, g in per.items() if not len(g)]
    if empty or not per:
        return NAN, NAN, 0, "", (f"no {stage}/{c['metric']} rows with generalisation for "
                                 f"{empty}" if per else "no settings (nor harder_task's)")
    both = pd.concat(per.values())
    rho = p = NAN
    if len(both) >= 3 and both["m"].nunique() > 1 and both["gen"].nunique() > 1:
        rho, p = quiet(scipy.stats.spearmanr, both["m"], both["gen"], alternative=alternative)
    evidence = "; ".join(f"{s}: {c['metric']} {seed_cell(g['m'], scale).text()}, gen. "
                         f"{seed_cell(g['gen']).text()} (n={len(g)})" for s, g in per.items())
    return float(rho), float(p), min(len(g) for g in per.values()), evidence, ""


def decide_topsim(df: pd.DataFrame, c: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """Spearman's rho between per-run TopSim and generalisation over the runs, two-sided (the
    paper's test). A claim of *no* correlation: a significant rho of either sign contradicts
    it; a non-significant one supports it only with `min_seeds` seeds per setting."""
    rho, p, n, evidence, missing = _correlation(df, c, "language", c["split"], "two-sided",
                                                PERCENT)
    if missing:
        return record("topsim", MISSING, missing)
    verdict = FAILS if p < alpha else HOLDS if n >= c["min_seeds"] else UNSURE
    return record("topsim", verdict, _why(verdict, alpha, n), "x100: " + evidence,
                   f"Spearman rho = {rho:.2f}, two-sided, {p_text(p)}", rho, p)


def decide_etl(df: pd.DataFrame, c: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """Spearman's rho between per-run final ETL value and generalisation, one-sided: > 0 (< 0
    for a loss). The paper's correlation (Table 1), in the direction it claims."""
    loss = "loss" in c["metric"]  # a lower loss is an easier transfer
    rho, p, _, evidence, missing = _correlation(
        df, c, "etl", etl_split(df, c["etl_split"]), "less" if loss else "greater",
        1 if loss else PERCENT)
    if missing:
        return record("etl", MISSING, missing)
    verdict = direction(p, alpha)
    return record("etl", verdict, _why(verdict, alpha), evidence, f"Spearman rho = {rho:.2f}, "
                   f"one-sided ({'<' if loss else '>'} 0), {p_text(p)}", rho, p)


def decide_transfer(df: pd.DataFrame, c: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """Collapse: paired one-sided t-test, source > zero-shot accuracy of the same seeds. Varies
    widely: Pitman-Morgan test that the zero-shot variance exceeds the source's (for paired
    samples var(t) - var(s) = cov(t - s, t + s): a one-sided Pearson test). Both parts must hold
    (p: the larger p). The CV and range are shown, as the paper quotes them."""
    rows = select(df, stage="eval", metric="accuracy", split=c["split"], transfer=True)
    rows = rows[rows["setting"] == c["setting"]]
    targets = [c["eval_dataset"]] if c["eval_dataset"] else sorted(set(rows["eval_dataset"]))
    if len(targets) != 1:
        return record("transfer", MISSING, f"zero-shot targets {targets} of {c['setting']}: "
                       "need exactly one (set report.claims.transfer.eval_dataset)")
    cap = main_candidates(df.assign(dataset=df["eval_dataset"]), c["candidates"])
    cap = cap.get(targets[0])  # capped by the target dataset's own evaluations, as the table
    rows = rows[(rows["eval_dataset"] == targets[0]) & (rows["candidates"] == cap)]
    both = pd.concat([gen_values(df, c).rename("source"), run_values(rows).rename("zero-shot")],
                     axis=1, join="inner").dropna()
    if not len(both):
        return record("transfer", MISSING, f"no eval/accuracy/{c['split']} rows of "
                       f"{c['setting']} on both its dataset and {targets[0]}")
    s, t = both["source"].to_numpy(), both["zero-shot"].to_numpy()
    collapse = (quiet(scipy.stats.ttest_rel, s, t, alternative="greater").pvalue
                if len(s) > 1 else NAN)
    spread = (quiet(scipy.stats.pearsonr, t - s, t + s, alternative="greater").pvalue
              if len(s) > 2 and np.ptp(t - s) > 0 and np.ptp(t + s) > 0 else NAN)
    verdict = combine(direction(collapse, alpha), direction(spread, alpha))
    cv = np.std(t, ddof=1) / np.mean(t) if len(t) > 1 else NAN
    return record("transfer", verdict, _why(verdict, alpha), f"accuracy (%) of {c['setting']}"
                   f", zero-shot on {targets[0]} at |C| = {cap}: {_describe(both, sd=True)}; "
                   f"zero-shot CV {cv:.2f}, range {PERCENT * t.min():.2f}-"
                   f"{PERCENT * t.max():.2f}",
                   f"paired t (source > zero-shot): {p_text(collapse)}; "
                   f"Pitman-Morgan (zero-shot variance > source): {p_text(spread)}",
                   PERCENT * float(np.mean(s - t)), max(collapse, spread))


def decide_population(df: pd.DataFrame, c: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """Generalisation of the larger population vs the single pair: one-sided Welch t-test
    (larger > single), a claim of *no* gain (`no_effect`). "best 1 pair" is one seed chosen
    after the fact: shown in Table 2, not tested."""
    return _compare("population", gen_values(df, c), c, alpha, [("larger", "single", NO_GAIN)],
                    f"eval/accuracy/{c['split']}")


def imitation_groups(df: pd.DataFrame, c: Mapping[str, Any]) -> tuple[dict, dict]:
    """The per-seed generalisation and robustness drops of `with` (its vote ensemble with
    `vote`) and `without`, as `setting_groups`."""
    cands = main_candidates(df, c["candidates"])
    gen = setting_groups(gen_values(df, c, "accuracy_vote" if c["vote"] else "accuracy"), c,
                         "with")
    gen.update(setting_groups(gen_values(df, c), c, "without"))
    rob = setting_groups(robustness_drops(df, c["robustness"], cands, c["split"], c["vote"]), c,
                         "with")
    rob.update(setting_groups(robustness_drops(df, c["robustness"], cands, c["split"], False), c,
                              "without"))
    return gen, rob


def decide_imitation(df: pd.DataFrame, c: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """Imitation vs the same population without it: one-sided Welch t-tests that generalisation
    rises and that the robustness drop falls, and their relative gains (the paper: 2.3% vs
    12.8%). Holds when the robustness gain is significant, generalisation does not fall and its
    relative gain is the smaller; fails when either metric is significantly worse. With `vote`
    the imitation setting's listener-vote ensemble is read, as in Table 2's "+ vote" rows."""
    gen, rob = imitation_groups(df, c)
    if _absent(gen) or _absent(rob):
        return record("imitation", MISSING, f"no generalisation or {c['robustness']} "
                       f"robustness rows for {_absent(gen) or _absent(rob)}")
    (gw, gn), (rw, rn) = gen.values(), rob.values()
    (t_g, p_g), (t_r, p_r) = welch(gw, gn), welch(rn, rw)  # a lower drop: more robust
    gain_g = (gw.mean() - gn.mean()) / gn.mean() if gn.mean() > 0 else NAN
    gain_r = (rn.mean() - rw.mean()) / rn.mean() if rn.mean() > 0 else NAN
    verdict = (FAILS if 1 - p_g < alpha or 1 - p_r < alpha else
               HOLDS if p_r < alpha and gain_g >= 0 and gain_r > gain_g else UNSURE)
    return record("imitation", verdict, _why(verdict, alpha), f"generalisation (%): "
                   f"{_describe(gen)}; robustness drop (%, {c['robustness']}): {_describe(rob)}"
                   f"; relative gains: generalisation {PERCENT * gain_g:+.1f}%, robustness "
                   f"{PERCENT * gain_r:+.1f}%", f"Welch t, one-sided: generalisation with > "
                   f"without t = {t_g:.2f}, {p_text(p_g)}; robustness drop with < without t = "
                   f"{t_r:.2f}, {p_text(p_r)}", t_r, p_r)


def decide_reset(df: pd.DataFrame, c: Mapping[str, Any], alpha: float) -> dict[str, Any]:
    """Generalisation with vs without listener reset: one-sided Welch t-tests (reset > none),
    significant for the single pair, and a claim of *no* gain for the population."""
    return _compare("reset", gen_values(df, c), c, alpha, [("single_reset", "single", MORE),
                                                     ("population_reset", "population", NO_GAIN)],
                    f"eval/accuracy/{c['split']}")


DECIDERS: dict[str, Callable[[pd.DataFrame, Mapping[str, Any], float], dict[str, Any]]] = {
    "kl": decide_kl, "harder_task": decide_harder_task, "topsim": decide_topsim,
    "etl": decide_etl, "transfer": decide_transfer, "population": decide_population,
    "imitation": decide_imitation, "reset": decide_reset}


