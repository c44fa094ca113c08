"""emcom.report.diagnose on hand-made tidy tables: the seeds a comparison would need, recomputed
by hand from the same arrays, and the late slope of a training curve whose slope is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from emcom import tidy
from emcom.report import diagnose as D
from emcom.report.__main__ import main

DS = "syn"


def rows(setting, values, *, stage="eval", metric="accuracy", split="test", step=100):
    return [tidy.row(dataset=DS, setting=setting, seed=i, stage=stage, eval_dataset=DS, split=split,
                     candidates=64, metric=metric, value=float(v), step=step)
            for i, v in enumerate(values)]


def test_seeds_for_power_is_the_normal_approximation():
    a, b = np.array([0.9, 0.8, 0.85, 0.95]), np.array([0.8, 0.7, 0.9, 0.75])
    z = scipy.stats.norm.ppf(0.95) + scipy.stats.norm.ppf(0.8)
    by_hand = z ** 2 * (a.var(ddof=1) + b.var(ddof=1)) / (a.mean() - b.mean()) ** 2
    assert D.seeds_for_power(a, b, 0.05) == max(2, math.ceil(by_hand))
    assert D.seeds_for_power(a + 1, b, 0.05) == 2  # a huge effect: a t-test's least
    assert D.seeds_for_power(b, a, 0.05) == math.inf  # the wrong direction: never
    assert math.isnan(D.seeds_for_power(a[:1], b, 0.05))


def test_comparisons_read_the_settings_the_claims_name():
    pop, single = [0.90, 0.91, 0.89], [0.80, 0.95, 0.85]
    df = tidy.frame(rows("pop", pop) + rows("one", single))
    comp = D.comparisons(df, {"population": {"single": "one", "larger": "pop"}})
    assert len(comp) == 1
    r = comp.iloc[0]
    assert (r["a"], r["b"], r["n_a"], r["n_b"]) == ("larger (pop)", "single (one)", 3, 3)
    assert r["mean_a"] == pytest.approx(100 * np.mean(pop))
    assert r["sd_b"] == pytest.approx(100 * np.std(single, ddof=1))
    assert r["seeds_for_power"] == D.seeds_for_power(np.array(pop), np.array(single), 0.05)


def test_late_rise_is_the_slope_over_the_last_quarter():
    # seed s: accuracy 0.5 + s/100 + 0.02 per 1,000 steps after step 6,000, flat before
    df = tidy.frame([r for s in range(3) for step in range(1000, 9000, 1000) for r in [tidy.row(
        dataset=DS, setting="x", seed=s, stage="train", eval_dataset=DS, split="valid",
        candidates=64, metric="accuracy", value=0.5 + s / 100 + 0.02 * max(0, step - 6000) / 1000,
        step=step)]])
    rise = D.late_rise(df, ["x"], 64).iloc[0]
    assert rise["slope"] == pytest.approx(2.0)  # points per 1,000 steps over steps 6000-8000
    assert rise["n"] == 3 and rise["steps"] == "6000-8000"
    assert rise["end"] == pytest.approx(100 * (0.51 + 0.02))  # mean of 6000..8000, mean seed


def test_cli_prints_the_tables(tmp_path, capsys):
    df = tidy.frame(rows("pop", [0.9, 0.91]) + rows("one", [0.8, 0.85]))
    path = tmp_path / "t.parquet"
    df.to_parquet(path)
    spec = tmp_path / "spec.yaml"
    spec.write_text("report:\n  claims:\n    population: {single: one, larger: pop}\n")
    main(["diagnose", str(path), "--spec", str(spec)])
    out = capsys.readouterr().out
    assert "| population | larger (pop) > single (one) | generalisation |" in out
    assert "| setting | end accuracy (%)" in out


def test_runs_for_power_scales_the_runs_by_the_squared_z_ratio():
    z = scipy.stats.norm.ppf(0.95) + scipy.stats.norm.ppf(0.8)
    p = 0.1
    assert D.runs_for_power(p, 12, 0.05) == math.ceil(12 * (z / scipy.stats.norm.ppf(0.9)) ** 2)
    assert D.runs_for_power(0.7, 12, 0.05) == math.inf
    # a p already below alpha at 80% power's z needs fewer runs than it has
    assert D.runs_for_power(1e-4, 12, 0.05) < 12


def test_trends_count_the_runs_of_the_claims_settings():
    df = tidy.frame(rows("c4", [0.5, 0.6, 0.55]) + rows("c16", [0.7, 0.6, 0.8])
                    + rows("c64", [0.9, 0.8, 0.7]) + rows("other", [0.1, 0.2]))
    for r in rows("c4", [0.9, 0.92, 0.95]) + rows("c16", [0.95] * 3) + rows("c64", [0.97] * 3):
        df.loc[len(df)] = {**r, "candidates": 4}
    t = D.trends(df, {"harder_task": {"settings": {4: "c4", 16: "c16", 64: "c64"}}})
    assert list(t["claim"]) == ["harder_task"] and t.iloc[0]["runs"] == 9
    assert t.iloc[0]["runs_for_power"] == D.runs_for_power(t.iloc[0]["p"], 9, 0.05)
