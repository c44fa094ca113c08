"""Tests of emcom.report.claims: one decision rule per paper claim, on hand-made tidy tables.

Each rule gets a table where the claim holds, one where the data contradict it, and one with too
few seeds (or missing rows); expected statistics are recomputed with scipy from the same arrays.
"""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import yaml

from emcom import tidy
from emcom.report import SpecError
from emcom.report import claims as C

DS, OTHER = "syn", "other"
SETTINGS = ["a", "b", "c", "nokl", "pop", "pop_imit", "pair_reset", "pop_reset"]
ALPHA = 0.05


def per_seed(setting: str, values, *, stage: str = "eval", metric: str = "accuracy",
             split: str = "test", candidates: int = 64, eval_dataset: str = DS, step: int = 100,
             dataset: str = DS, **fields) -> list[dict]:
    """One row per seed (seed i gets values[i]) of one setting."""
    return [tidy.row(dataset=dataset, setting=setting, seed=i, stage=stage,
                     eval_dataset=eval_dataset, split=split, candidates=candidates,
                     metric=metric, value=float(v), step=step, **fields)
            for i, v in enumerate(values)]


def table(*groups: list[dict]) -> pd.DataFrame:
    return tidy.frame([r for g in groups for r in g])


def decide(claim: str, df: pd.DataFrame, entry: dict, **common) -> dict:
    spec = C.resolve_claims({claim: entry, **common}, settings=SETTINGS)
    return C.DECIDERS[claim](df, spec[claim], ALPHA)


def welch_p(a, b) -> float:
    return scipy.stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue


# ---------------------------------------------------------------------------------------- KL

KL = {"with": "a", "without": "nokl"}


def kl_table(with_kl, without_kl) -> pd.DataFrame:
    """Train accuracy logged at steps 0..900: 0 before step 900 (the early curve must be ignored
    with tail = 0.1), then the given final values."""
    rows = []
    for setting, final in (("a", with_kl), ("nokl", without_kl)):
        for step in range(0, 1000, 100):
            values = final if step == 900 else np.zeros(len(final))
            rows += per_seed(setting, values, stage="train", metric="train_accuracy",
                             split="train", candidates=64, step=step)
    return tidy.frame(rows)


def test_kl_holds_with_the_welch_statistic_of_the_final_accuracies():
    with_kl, without_kl = [0.95, 0.97, 0.96, 0.94], [0.40, 0.75, 0.30, 0.55]
    rec = decide("kl", kl_table(with_kl, without_kl), KL)
    assert rec["verdict"] == C.HOLDS
    expected = scipy.stats.ttest_ind(with_kl, without_kl, equal_var=False, alternative="greater")
    assert rec["value"] == pytest.approx(expected.statistic)
    assert rec["p"] == pytest.approx(expected.pvalue)
    assert "95.50 ± " in rec["evidence"] and "n=4" in rec["evidence"]


def test_kl_fails_when_kl_trains_worse_and_too_few_seeds_is_inconclusive():
    assert decide("kl", kl_table([0.3, 0.4, 0.35], [0.9, 0.95, 0.92]), KL)["verdict"] == C.FAILS
    rec = decide("kl", kl_table([0.99], [0.1]), KL)
    assert rec["verdict"] == C.UNSURE and math.isnan(rec["p"])


def test_kl_not_measured_names_the_setting_without_rows():
    df = kl_table([0.9, 0.9], [0.5, 0.4])
    rec = decide("kl", df[df["setting"] != "nokl"], KL)
    assert rec["verdict"] == C.MISSING and "nokl" in rec["reason"]
    # train_candidates filters on the training |C|: no row has |C| = 1024.
    rec = decide("kl", df, {**KL, "train_candidates": 1024})
    assert rec["verdict"] == C.MISSING


# ----------------------------------------------------------------------------- harder task

HARDER = {"settings": {4: "a", 16: "b", 64: "c"}}


def harder_table(hard: dict, easy: dict) -> pd.DataFrame:
    rows = []
    for setting in ("a", "b", "c"):
        rows += per_seed(setting, hard[setting], candidates=64)
        if easy is not None:
            rows += per_seed(setting, easy[setting], candidates=4)
    return tidy.frame(rows)


HARD_UP = {"a": [0.70, 0.72, 0.71], "b": [0.80, 0.83, 0.81], "c": [0.90, 0.91, 0.93]}
EASY_FLAT = {"a": [0.99, 0.98, 0.99], "b": [0.99, 0.99, 0.98], "c": [0.99, 0.98, 0.99]}


def test_harder_task_holds_and_the_slope_is_points_per_doubling():
    rec = decide("harder_task", harder_table(HARD_UP, EASY_FLAT), HARDER)
    assert rec["verdict"] == C.HOLDS
    x = np.log2([4] * 3 + [16] * 3 + [64] * 3)
    y = 100 * np.concatenate([HARD_UP[s] for s in "abc"])
    gap = y - 100 * np.concatenate([EASY_FLAT[s] for s in "abc"])
    fit = scipy.stats.linregress(x, y, alternative="greater")
    assert rec["value"] == pytest.approx(fit.slope)
    assert rec["p"] == pytest.approx(max(fit.pvalue, scipy.stats.linregress(
        x, gap, alternative="greater").pvalue))
    assert "eval |C| = 64" in rec["statistic"] and "eval |C| = 4" in rec["statistic"]


def test_harder_task_fails_when_harder_training_generalises_worse():
    down = {"a": HARD_UP["c"], "b": HARD_UP["b"], "c": HARD_UP["a"]}
    assert decide("harder_task", harder_table(down, EASY_FLAT), HARDER)["verdict"] == C.FAILS


def test_harder_task_is_inconclusive_when_easy_evaluation_separates_as_much():
    jitter = iter([0.01, -0.01, 0, 0.005, -0.004, 0, 0.01, 0, -0.01])
    easy = {s: [v + 0.05 + next(jitter) for v in HARD_UP[s]] for s in "abc"}
    assert decide("harder_task", harder_table(HARD_UP, easy), HARDER)["verdict"] == C.UNSURE


def test_harder_task_needs_an_easy_evaluation_and_enough_runs():
    rec = decide("harder_task", harder_table(HARD_UP, None), HARDER)
    assert rec["verdict"] == C.MISSING and "easy" in rec["reason"]
    two = {"settings": {4: "a", 64: "c"}}
    one_seed = {s: v[:1] for s, v in HARD_UP.items()}
    rec = decide("harder_task", harder_table(one_seed, {s: v[:1] for s, v in EASY_FLAT.items()}),
                 two)
    assert rec["verdict"] == C.UNSURE  # 2 runs: no slope test


# --------------------------------------------------------------------------- TopSim and ETL

GEN = {"a": [0.70, 0.72, 0.71, 0.73, 0.69], "b": [0.80, 0.83, 0.81, 0.82, 0.84],
       "c": [0.90, 0.91, 0.93, 0.92, 0.94]}
UNRELATED = {"a": [0.30, 0.10, 0.25, 0.15, 0.20], "b": [0.12, 0.28, 0.22, 0.18, 0.31],
             "c": [0.26, 0.14, 0.11, 0.29, 0.21]}


def versus_table(stage: str, metric: str, values: dict, n: int = 5) -> pd.DataFrame:
    rows = []
    for s in "abc":
        rows += per_seed(s, GEN[s][:n])
        rows += per_seed(s, values[s][:n], stage=stage, metric=metric, candidates=-1)
    return tidy.frame(rows)


def test_topsim_holds_without_correlation_and_fails_with_one():
    df = versus_table("language", "topsim_image", UNRELATED)
    rec = decide("topsim", df, {}, harder_task=HARDER)  # settings default to harder_task's
    x = [v for s in "abc" for v in UNRELATED[s]]
    y = [v for s in "abc" for v in GEN[s]]
    rho, p = scipy.stats.spearmanr(x, y)
    assert p >= ALPHA and rec["verdict"] == C.HOLDS
    assert rec["value"] == pytest.approx(rho) and rec["p"] == pytest.approx(p)
    tracks = {s: [g / 3 for g in GEN[s]] for s in "abc"}
    rec = decide("topsim", versus_table("language", "topsim_image", tracks), {},
                 harder_task=HARDER)
    assert rec["verdict"] == C.FAILS


def test_topsim_with_few_seeds_is_inconclusive_and_without_settings_not_measured():
    df = versus_table("language", "topsim_image", UNRELATED, n=2)
    assert decide("topsim", df, {"settings": ["a", "b", "c"]})["verdict"] == C.UNSURE
    assert decide("topsim", df, {"settings": ["a", "b", "c"]}, min_seeds=2)["verdict"] == C.HOLDS
    assert decide("topsim", df, {})["verdict"] == C.MISSING


def test_etl_holds_when_it_rises_with_generalisation_and_fails_when_it_falls():
    rising = {s: [g - 0.1 for g in GEN[s]] for s in "abc"}
    rec = decide("etl", versus_table("etl", "etl_discrimination", rising), {}, harder_task=HARDER)
    x = [v for s in "abc" for v in rising[s]]
    y = [v for s in "abc" for v in GEN[s]]
    assert rec["verdict"] == C.HOLDS
    assert rec["p"] == pytest.approx(scipy.stats.spearmanr(x, y, alternative="greater").pvalue)
    falling = {s: [1 - g for g in GEN[s]] for s in "abc"}
    df = versus_table("etl", "etl_discrimination", falling)
    assert decide("etl", df, {}, harder_task=HARDER)["verdict"] == C.FAILS
    # For a loss, falling with generalisation is the claimed direction.
    df = versus_table("etl", "etl_loss/discrimination", falling)
    rec = decide("etl", df, {"metric": "etl_loss/discrimination"}, harder_task=HARDER)
    assert rec["verdict"] == C.HOLDS


def test_etl_with_too_few_runs_is_inconclusive_and_without_rows_not_measured():
    rising = {s: [g - 0.1 for g in GEN[s]] for s in "abc"}
    df = versus_table("etl", "etl_discrimination", rising, n=1)
    rec = decide("etl", df[df["setting"] != "c"], {"settings": ["a", "b"]})
    assert rec["verdict"] == C.UNSURE  # 2 runs: no correlation
    rec = decide("etl", df, {"settings": ["a", "b"], "metric": "etl_classification"})
    assert rec["verdict"] == C.MISSING and "etl_classification" in rec["reason"]


# -------------------------------------------------------------------------------- transfer


def transfer_table(source, zero_shot) -> pd.DataFrame:
    return table(per_seed("a", source), per_seed("a", zero_shot, eval_dataset=OTHER))


def test_transfer_holds_when_it_collapses_and_spreads():
    source = [0.93, 0.96, 0.95, 0.97, 0.94]
    zero_shot = [0.28, 0.36, 0.31, 0.39, 0.33]
    rec = decide("transfer", transfer_table(source, zero_shot), {"setting": "a"})
    s, t = np.array(source), np.array(zero_shot)
    collapse = scipy.stats.ttest_rel(s, t, alternative="greater").pvalue
    spread = scipy.stats.pearsonr(t - s, t + s, alternative="greater").pvalue
    assert collapse < spread < ALPHA  # p is the larger one: both parts must hold
    assert rec["verdict"] == C.HOLDS and rec["p"] == pytest.approx(spread)
    assert rec["value"] == pytest.approx(100 * np.mean(s - t))
    assert "range 28.00-39.00" in rec["evidence"] and "CV" in rec["evidence"]
    # The same collapse without the spread (zero-shot as tight as the source) is inconclusive.
    rec = decide("transfer", transfer_table(source, [x - 0.6 for x in source]), {"setting": "a"})
    assert rec["verdict"] == C.UNSURE


def test_transfer_fails_when_it_does_not_collapse_and_few_seeds_are_inconclusive():
    rec = decide("transfer", transfer_table([0.50, 0.52, 0.51, 0.49], [0.90, 0.93, 0.80, 0.99]),
                 {"setting": "a"})
    assert rec["verdict"] == C.FAILS
    rec = decide("transfer", transfer_table([0.95, 0.96], [0.2, 0.7]), {"setting": "a"})
    assert rec["verdict"] == C.UNSURE  # 2 seeds: no variance test
    rec = decide("transfer", table(per_seed("a", [0.9, 0.9])), {"setting": "a"})
    assert rec["verdict"] == C.MISSING


# ------------------------------------------------------------------------------ population

POP = {"single": "a", "larger": "pop"}
SAME = [0.90, 0.92, 0.91, 0.89, 0.93]


def test_population_holds_without_gain_and_fails_with_one():
    larger = [0.91, 0.90, 0.92, 0.90, 0.91]
    rec = decide("population", table(per_seed("a", SAME), per_seed("pop", larger)), POP)
    assert rec["verdict"] == C.HOLDS and rec["p"] == pytest.approx(welch_p(larger, SAME))
    better = [0.97, 0.98, 0.96, 0.99, 0.97]
    rec = decide("population", table(per_seed("a", SAME), per_seed("pop", better)), POP)
    assert rec["verdict"] == C.FAILS


def test_population_with_few_seeds_is_inconclusive():
    df = table(per_seed("a", SAME[:2]), per_seed("pop", [0.91, 0.90]))
    rec = decide("population", df, POP)
    assert rec["verdict"] == C.UNSURE and "fewest seeds per group 2" in rec["reason"]
    # A significantly *worse* larger population supports the claim even with few seeds.
    df = table(per_seed("a", [0.90, 0.91, 0.90]), per_seed("pop", [0.50, 0.52, 0.51]))
    assert decide("population", df, POP)["verdict"] == C.HOLDS


# ------------------------------------------------------------------------------- imitation

IMIT = {"without": "pop", "with": "pop_imit"}


def imitation_table(gen_with, gen_without, drop_with, drop_without) -> pd.DataFrame:
    return table(per_seed("pop_imit", gen_with), per_seed("pop", gen_without),
                 per_seed("pop_imit", drop_with, metric="robustness_drop"),
                 per_seed("pop", drop_without, metric="robustness_drop"))


def test_imitation_holds_when_robustness_gains_more_than_generalisation():
    df = imitation_table([0.92, 0.93, 0.92], [0.91, 0.90, 0.91],
                         [0.30, 0.31, 0.29], [0.40, 0.41, 0.39])
    rec = decide("imitation", df, IMIT)
    assert rec["verdict"] == C.HOLDS
    assert rec["p"] == pytest.approx(welch_p([0.40, 0.41, 0.39], [0.30, 0.31, 0.29]))


def test_imitation_fails_when_it_generalises_worse_and_is_unsure_when_gen_gains_more():
    df = imitation_table([0.50, 0.52, 0.51], [0.91, 0.90, 0.91],
                         [0.30, 0.31, 0.29], [0.40, 0.41, 0.39])
    assert decide("imitation", df, IMIT)["verdict"] == C.FAILS
    # Robustness gains 2.5% relative, generalisation 50%: the "more for robustness" part fails.
    df = imitation_table([0.60, 0.61, 0.59], [0.40, 0.41, 0.39],
                         [0.390, 0.391, 0.389], [0.400, 0.401, 0.399])
    assert decide("imitation", df, IMIT)["verdict"] == C.UNSURE


def test_imitation_reads_the_vote_and_few_seeds_are_inconclusive():
    vote = [0.93, 0.94, 0.93]
    df = pd.concat([imitation_table([0.1] * 3, [0.91, 0.90, 0.91], [0.3] * 3, [0.40, 0.41, 0.39]),
                    table(per_seed("pop_imit", vote, metric="accuracy_vote", speaker=0),
                          per_seed("pop_imit", [0.63, 0.64, 0.63], metric="accuracy_vote_noisy",
                                   speaker=0))])
    assert decide("imitation", df, IMIT)["verdict"] == C.FAILS  # plain accuracy 0.1
    rec = decide("imitation", df, {**IMIT, "vote": True})
    assert rec["verdict"] == C.HOLDS and "93.33" in rec["evidence"]
    one = imitation_table([0.92], [0.91], [0.30], [0.40])
    assert decide("imitation", one, IMIT)["verdict"] == C.UNSURE
    assert decide("imitation", df, {"without": "a", "with": "pop_imit"})["verdict"] == C.MISSING


# ----------------------------------------------------------------------------------- reset

RESET = {"single": "a", "single_reset": "pair_reset", "population": "pop",
         "population_reset": "pop_reset"}


def reset_table(pair_reset, pop_reset) -> pd.DataFrame:
    return table(per_seed("a", SAME), per_seed("pair_reset", pair_reset), per_seed("pop", SAME),
                 per_seed("pop_reset", pop_reset))


def test_reset_holds_when_it_helps_only_the_pair():
    helped = [0.96, 0.97, 0.95, 0.96, 0.98]
    rec = decide("reset", reset_table(helped, [0.91, 0.90, 0.92, 0.90, 0.91]), RESET)
    assert rec["verdict"] == C.HOLDS and rec["p"] == pytest.approx(welch_p(helped, SAME))
    rec = decide("reset", reset_table(helped, helped), RESET)
    assert rec["verdict"] == C.FAILS  # it helps the population too


def test_reset_with_few_seeds_is_inconclusive():
    df = table(per_seed("a", [0.90, 0.91]), per_seed("pair_reset", [0.92, 0.90]),
               per_seed("pop", [0.90, 0.91]), per_seed("pop_reset", [0.90, 0.91]))
    assert decide("reset", df, RESET)["verdict"] == C.UNSURE
    assert decide("reset", df[df["setting"] != "pop_reset"], RESET)["verdict"] == C.MISSING


# ------------------------------------------------------------------------------ spec errors


@pytest.mark.parametrize("spec, key", [
    ({"bogus": {}}, "report.claims: unknown key(s) ['bogus']"),
    ({"kl": {"with": "a", "without": "nokl", "typo": 1}}, "report.claims.kl: expected a mapping"),
    ({"kl": {"with": "a"}}, "report.claims.kl.without is required"),
    ({"population": {"single": "a", "larger": "nope"}}, "report.claims.population.larger: "
                                                        "unknown setting"),
    ({"harder_task": {"settings": {"x": "a", 16: "b"}}}, "report.claims.harder_task.settings.x"),
    ({"harder_task": {"settings": {16: "a"}}}, "report.claims.harder_task.settings: expected"),
    ({"topsim": {"settings": ["a"]}}, "report.claims.topsim.settings: expected"),
    ({"alpha": 2.0}, "report.claims.alpha: expected"),
    ({"min_seeds": 1}, "report.claims.min_seeds"),
    ({"kl": {"with": "a", "without": "nokl", "tail": 0}}, "report.claims.kl.tail"),
    ({"imitation": {"with": "a", "without": "pop", "vote": "yes"}}, "report.claims.imitation.vote"),
    ({"reset": {**RESET, "split": "dev"}}, "report.claims.reset.split"),
    ({"kl": ["a"]}, "report.claims.kl: expected a mapping"),
])
def test_spec_errors_name_the_dotted_key(spec, key):
    with pytest.raises(SpecError) as err:
        C.resolve_claims(spec, settings=SETTINGS)
    assert key in str(err.value)


def test_spec_defaults_and_wrappers():
    spec = C.resolve_claims({"report": {"tables": {}, "claims": {
        "harder_task": {"settings": {"64": "c", "4": "a"}}, "etl": None, "split": "valid"}}})
    assert spec["alpha"] == 0.05 and spec["candidates"] == 1024 and spec["min_seeds"] == 5
    assert spec["harder_task"]["settings"] == {4: "a", 64: "c"}  # int keys, sorted
    assert spec["etl"]["settings"] == ["a", "c"] and spec["etl"]["split"] == "valid"
    assert spec["etl"]["metric"] == "etl_discrimination"
    assert "kl" not in spec and C.resolve_claims(spec) == spec  # idempotent


# ------------------------------------------------------------------------- decide_all, write


def test_decide_all_has_one_stable_row_per_dataset_and_claim():
    df = pd.concat([kl_table([0.95, 0.97, 0.96], [0.4, 0.7, 0.3]),
                    table(per_seed("a", [0.9], dataset=OTHER, eval_dataset=OTHER))])
    out = C.decide_all(df, {"kl": KL}, settings=SETTINGS)
    assert list(out.columns) == C.COLUMNS
    assert list(out["claim"]) == list(C.CLAIMS) * 2 and sorted(set(out["dataset"])) == [OTHER, DS]
    syn = out[out["dataset"] == DS].set_index("claim")
    assert syn.loc["kl", "verdict"] == C.HOLDS
    assert syn.loc["reset", "verdict"] == C.MISSING
    assert "report.claims.reset" in syn.loc["reset", "reason"]
    assert out[out["dataset"] == OTHER].set_index("claim").loc["kl", "verdict"] == C.MISSING
    assert set(out["verdict"]) <= set(C.VERDICTS)
    # A stricter alpha turns the same data inconclusive.
    strict = C.decide_all(df, {"kl": KL, "datasets": [DS]}, alpha=1e-6)
    assert list(strict["verdict"])[0] == C.UNSURE and len(strict) == len(C.CLAIMS)
    with pytest.raises(SpecError):
        C.decide_all(df, {}, alpha=1.5)


def test_write_claims_writes_md_csv_json_and_provenance(tmp_path):
    df = kl_table([0.95, 0.97, 0.96], [0.4, 0.7, 0.3])
    paths = C.write_claims(df, {"kl": KL}, tmp_path / "claims", settings=SETTINGS)
    assert [p.name for p in paths] == ["claims.md", "claims.csv", "claims.json", "claims.html"]
    records = json.loads(paths[2].read_text())
    assert len(records) == len(C.CLAIMS) and records[0]["verdict"] == C.HOLDS
    assert records[1]["p"] is None  # NaN is written as null
    csv = pd.read_csv(paths[1])
    assert list(csv.columns) == C.COLUMNS and csv.loc[0, "claim"] == "kl"
    md = paths[0].read_text()
    assert "| syn | kl: " in md and "**holds**" in md and "98.9%" in md
    page = paths[3].read_text()  # every claim's row and section, its verdict as in the CSV
    assert page.count("<tr><td>syn</td>") == len(C.CLAIMS) == page.count("<h4 id='syn-")
    assert f"<b style='color:{C.VERDICT_COLOURS[C.HOLDS]}'>holds</b></td>" in page
    assert "98.9%" in page
    prov = json.loads((tmp_path / "claims" / "claims.csv.provenance.json").read_text())
    assert prov["config"]["claims"]["kl"]["with"] == "a" and prov["config"]["alpha"] == 0.05
    assert not [p for p in (tmp_path / "claims").iterdir() if p.name.startswith(".")]


def test_the_documented_spec_resolves_against_the_default_config():
    root = pathlib.Path(__file__).resolve().parent.parent
    doc = (root / "docs" / "report.md").read_text(encoding="utf-8")
    block = doc.split("### The claims spec", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    experiments = yaml.safe_load((root / "config" / "config.yaml").read_text())["experiments"]
    spec = C.resolve_claims(yaml.safe_load(block), settings=experiments)
    assert set(C.CLAIMS) <= set(spec) and spec["topsim"]["settings"] == ["1pair_c4", "1pair_c16",
                                                                         "1pair"]


def test_readme_block_is_rewritten_from_the_claims_table(tmp_path):
    claims = pd.DataFrame([
        {"dataset": "d", "claim": "kl", "statement": "KL helps", "verdict": C.HOLDS,
         "reason": "r", "statistic": "Welch t = 3.1, p = 0.01", "value": 3.1, "p": 0.01,
         "evidence": "93.9 ± 1.0 vs 26.9 ± 3.8", "paper": "x"},
        {"dataset": "d", "claim": "reset", "statement": "reset helps 1 pair", "verdict": C.MISSING,
         "reason": "report.claims.reset is not in the spec", "statistic": "", "value": math.nan,
         "p": math.nan, "evidence": "", "paper": "y"}], columns=C.COLUMNS)
    readme = f"# x\n\n{C.BEGIN}\nold text\n{C.END}\n\nrest\n"
    new = C.update_readme(readme, claims)
    assert new == (f"# x\n\n{C.BEGIN}\n- **holds**: KL helps. 93.9 ± 1.0 vs 26.9 ± 3.8 [Welch t = "
                   f"3.1, p = 0.01]\n- **not measured**: reset helps 1 pair. report.claims.reset "
                   f"is not in the spec\n{C.END}\n\nrest\n")
    assert C.update_readme(new, claims) == new
    with pytest.raises(ValueError, match="claims:begin"):
        C.update_readme("# no block\n", claims)
    from emcom.report.__main__ import main
    path, csv = tmp_path / "README.md", tmp_path / "claims.csv"
    claims.to_csv(csv, index=False)
    path.write_text(readme)
    with pytest.raises(SystemExit, match="differs"):
        main(["readme", str(csv), "--readme", str(path), "--check"])
    main(["readme", str(csv), "--readme", str(path)])
    assert path.read_text() == new
    main(["readme", str(csv), "--readme", str(path), "--check"])


def test_a_resolved_spec_is_not_resolved_again_but_settings_are_still_checked():
    spec = C.resolve_claims({"kl": KL}, settings=SETTINGS)
    assert C.resolve_claims(spec) is spec
    assert C.resolve_claims(dict(spec)) == spec
    with pytest.raises(SpecError, match="unknown setting"):
        C.resolve_claims(spec, settings=["a"])
