"""Tests of emcom.report: the paper's tables and figures from synthetic tidy tables.

The synthetic tables are generated from per-run ground-truth arrays kept in `Truth`; expected
numbers are recomputed from those arrays with numpy/scipy, never from the DataFrame the code reads.
"""

from __future__ import annotations

import dataclasses
import html
import math
import pathlib
import re

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import yaml

import emcom.report
from emcom.report import SpecError, resolve_spec, write_figures, write_tables
from emcom.report import TABLE_FORMATS, TABLES, select, spec as S
from emcom.report.__main__ import main as cli
from emcom.report.cost_table import benchmark_rows
from emcom.report.figures import curves
from emcom.tidy import COLUMNS

DS, OTHER = "syn", "other"
SEEDS = [0, 1, 2, 3]
P = 2                   # speakers = listeners evaluated per population setting
EVAL_C = [16, 64]       # evaluation |C| present (the paper's 1024 is capped to 64)
ETL_STEPS = [0, 50, 100]
TRAIN_STEPS = [0, 10, 20, 30]
ATTRS = ["Smiling", "Male"]
SETTINGS = {"c16": 1, "c64": 1, "pairs1": 1, "pairs10": P, "pairs10_imit": P, "reset1": 1}

SPEC = {
    "main_candidates": 1024,
    "tables": {
        "fig2": {"rows": {"|C| = 16": "c16", "|C| = 64": "c64"}},
        "fig3": {"rows": {"|C| = 16": "c16", "|C| = 64": "c64"}},
        "table1": {"rows": {"|C| = 16": "c16", "|C| = 64": "c64"}},
        "table2": {"rows": {"best 1 pair": {"best_of": "pairs1"}, "1 pair": "pairs1",
                            "10 pairs": "pairs10", "10 pairs + imitation": "pairs10_imit",
                            "10 pairs + imitation + vote": {"vote": "pairs10_imit"}}},
        "table6": {"rows": {"1 pair": "pairs1", "1 pair + reset": "reset1"}},
        "table7": {"rows": {"|C| = 16": "c16", "|C| = 64": "c64"}},
        "table8": {"rows": {"best 1 pair": {"best_of": "pairs1"}, "1 pair": "pairs1",
                            "10 pairs + imitation + vote": {"vote": "pairs10_imit"}}},
        "transfer": {"rows": {"1 pair": "pairs1"}},
    },
    "figures": {"fig1": {"panels": {"small |C|": {"|C| = 16": "c16"},
                                    "large |C|": {"|C| = 64": "c64"}}}},
}


@dataclasses.dataclass
class Truth:
    """Ground truth per (setting, seed)."""
    acc: dict = dataclasses.field(default_factory=dict)        # (s, seed, split, C) -> (P, P)
    vote: dict = dataclasses.field(default_factory=dict)       # (s, seed, split, C) -> (P,)
    vote_noisy: dict = dataclasses.field(default_factory=dict)
    drop: dict = dataclasses.field(default_factory=dict)       # (s, seed, C) -> (P, P)
    drop_rel: dict = dataclasses.field(default_factory=dict)
    topsim: dict = dataclasses.field(default_factory=dict)     # (s, seed, space) -> (P,)
    etl: dict = dataclasses.field(default_factory=dict)        # (s, seed, metric) -> (S, L) final
    transfer: dict = dataclasses.field(default_factory=dict)   # (s, seed) -> (P, P) on OTHER


def make_tidy(rng_seed: int = 0) -> tuple[pd.DataFrame, Truth]:
    """Tidy rows of every stage for SETTINGS x SEEDS, plus decoy rows the report must ignore."""
    rng = np.random.default_rng(rng_seed)
    truth, rows = Truth(), []

    def add(setting, seed, stage, metric, value, *, split="test", candidates=-1, speaker=-1,
            listener=-1, step=100, dataset=DS, eval_dataset=DS):
        rows.append(dict(dataset=dataset, setting=setting, seed=seed, stage=stage,
                         eval_dataset=eval_dataset, split=split, candidates=candidates,
                         speaker=speaker, listener=listener, metric=metric, value=float(value),
                         step=step))

    def grid(setting, seed, metric, values, **kw):
        for (i, j), v in np.ndenumerate(values):
            add(setting, seed, "eval", metric, v, speaker=i, listener=j, **kw)
        # The mean is also written, as an aggregate row; a decoy value checks it is not used.
        add(setting, seed, "eval", metric, -5.0, **kw)

    for setting, n in SETTINGS.items():
        for seed in SEEDS:
            for split in ("test", "valid", "test_official"):
                for c in EVAL_C:
                    acc = rng.uniform(0.5, 1.0, (n, n))
                    truth.acc[setting, seed, split, c] = acc
                    grid(setting, seed, "accuracy", acc, split=split, candidates=c)
                    vote = rng.uniform(0.5, 1.0, n)
                    noisy = vote - rng.uniform(0.0, 0.3, n)
                    truth.vote[setting, seed, split, c] = vote
                    truth.vote_noisy[setting, seed, split, c] = noisy
                    for i in range(n):
                        kw = dict(split=split, candidates=c, speaker=i)
                        add(setting, seed, "eval", "accuracy_vote", vote[i], **kw)
                        add(setting, seed, "eval", "accuracy_vote_noisy", noisy[i], **kw)
                    if split == "test":
                        drop = rng.uniform(0.0, 0.4, (n, n))
                        truth.drop[setting, seed, c] = drop
                        truth.drop_rel[setting, seed, c] = drop / acc
                        grid(setting, seed, "robustness_drop", drop, split=split, candidates=c)
                        grid(setting, seed, "robustness_drop_rel", drop / acc, split=split,
                             candidates=c)
                    # An older evaluation at an earlier step must be ignored (latest step only).
                    add(setting, seed, "eval", "accuracy", 0.01, split=split, candidates=c,
                        speaker=0, listener=0, step=50)
            for space in ("topsim_image", "topsim_attributes"):
                ts = rng.uniform(0.1, 0.4, n)
                truth.topsim[setting, seed, space] = ts
                for i in range(n):
                    add(setting, seed, "language", space, ts[i], speaker=i)
            for metric in ["etl_discrimination", "etl_classification", "etl_attributes"] + [
                    f"etl_attribute/{a}" for a in ATTRS]:
                for step in ETL_STEPS:
                    v = rng.uniform(0.2, 0.9, (n, 3))
                    for (i, j), x in np.ndenumerate(v):
                        add(setting, seed, "etl", metric, x, split="train", speaker=i,
                            listener=j, step=step)
                truth.etl[setting, seed, metric] = v  # the last step's values
            for step in TRAIN_STEPS:
                add(setting, seed, "train", "train_accuracy", rng.uniform(0.3, 1.0),
                    split="train", step=step)
                for c in EVAL_C:
                    add(setting, seed, "train", "accuracy", rng.uniform(0.3, 1.0), split="test",
                        candidates=c, step=step)
            tr = rng.uniform(0.1, 0.7, (n, n))
            truth.transfer[setting, seed] = tr
            grid(setting, seed, "accuracy", tr, split="test", candidates=16, eval_dataset=OTHER)
    # The transfer target's own evaluations (|C| 16 only, so transfer uses |C| = 16).
    for seed in SEEDS:
        add("pairs1", seed, "eval", "accuracy", 0.9, candidates=16, speaker=0, listener=0,
            dataset=OTHER, eval_dataset=OTHER)
    return pd.DataFrame(rows, columns=list(COLUMNS)), truth


@pytest.fixture(scope="module")
def data():
    return make_tidy()


def mean_se(per_seed):
    v = np.asarray(per_seed, dtype=float) * 100
    return v.mean(), v.std(ddof=1) / math.sqrt(len(v))


def cells(path):
    """{(row, column): (value, se, n)} from a table's CSV."""
    df = pd.read_csv(path)
    return {(r.row, r.column): (r.value, r.se, r.n) for r in df.itertuples()}


def test_fig2_table_mean_and_standard_error_over_seeds(data, tmp_path):
    df, truth = data
    paths = write_tables(df, SPEC, tmp_path, ["fig2"])
    assert [p.name for p in paths] == ["fig2.csv", "fig2.md", "fig2.tex", "fig2.html"]
    got = cells(tmp_path / "fig2.csv")
    for label, setting in (("|C| = 16", "c16"), ("|C| = 64", "c64")):
        for c in EVAL_C:
            mean, se = mean_se([truth.acc[setting, s, "test", c].mean() for s in SEEDS])
            value, got_se, n = got[label, f"{DS}: eval |C| = {c}"]
            assert value == pytest.approx(mean) and got_se == pytest.approx(se) and n == 4
    md = (tmp_path / "fig2.md").read_text()
    assert f"{mean:.2f} ± {se:.2f}" in md
    assert (tmp_path / "fig2.csv.provenance.json").exists()
    assert r"\pm" in (tmp_path / "fig2.tex").read_text()


def test_table2_best_pair_vote_and_robustness(data, tmp_path):
    df, truth = data
    c = 64  # main |C| 1024 capped to the largest evaluated
    for mode in ("absolute", "relative"):
        write_tables(df, {**SPEC, "robustness": mode}, tmp_path / mode, ["table2"])
        got = cells(tmp_path / mode / "table2.csv")
        gen, rob = f"{DS} Gen. ↑", f"{DS} Rob. ↓"
        drops = truth.drop if mode == "absolute" else truth.drop_rel
        # best 1 pair: the seed with the best *validation* accuracy, its test numbers.
        valid = [truth.acc["pairs1", s, "valid", c].mean() for s in SEEDS]
        best = SEEDS[int(np.argmax(valid))]
        assert got["best 1 pair", gen][0] == pytest.approx(
            100 * truth.acc["pairs1", best, "test", c].mean())
        assert got["best 1 pair", gen][2] == 1
        assert got["best 1 pair", rob][0] == pytest.approx(
            100 * drops["pairs1", best, c].mean())
        for label, setting in (("1 pair", "pairs1"), ("10 pairs", "pairs10")):
            mean, se = mean_se([truth.acc[setting, s, "test", c].mean() for s in SEEDS])
            assert got[label, gen][:2] == pytest.approx((mean, se))
            mean, se = mean_se([drops[setting, s, c].mean() for s in SEEDS])
            assert got[label, rob][:2] == pytest.approx((mean, se))
        vote = [truth.vote["pairs10_imit", s, "test", c] for s in SEEDS]
        noisy = [truth.vote_noisy["pairs10_imit", s, "test", c] for s in SEEDS]
        assert got["10 pairs + imitation + vote", gen][:2] == pytest.approx(
            mean_se([v.mean() for v in vote]))
        per_seed = [((v - w) / (v if mode == "relative" else 1)).mean()
                    for v, w in zip(vote, noisy)]
        assert got["10 pairs + imitation + vote", rob][:2] == pytest.approx(mean_se(per_seed))
    md = (tmp_path / "absolute" / "table2.md").read_text()
    assert f"seed {best} of 'pairs1'" in md and "64 (syn)" in md


def test_best_pair_differs_from_best_test_seed(tmp_path):
    """A seed best on test but not on validation must not be chosen."""
    rows = []
    for seed, (valid, test) in enumerate([(0.9, 0.5), (0.6, 0.99), (0.7, 0.7)]):
        for split, v in (("valid", valid), ("test", test)):
            rows.append(dict(dataset=DS, setting="pairs1", seed=seed, stage="eval",
                             eval_dataset=DS, split=split, candidates=16, speaker=0, listener=0,
                             metric="accuracy", value=v, step=1))
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    spec = {"tables": {"table2": {"rows": {"best 1 pair": {"best_of": "pairs1"}}}}}
    write_tables(df, spec, tmp_path)
    assert cells(tmp_path / "table2.csv")["best 1 pair", f"{DS} Gen. ↑"][0] == pytest.approx(50)


def test_fig3_and_table1_spearman_against_scipy(data, tmp_path):
    df, truth = data
    write_tables(df, SPEC, tmp_path, ["fig3", "table1"])
    runs = [(s, seed) for s in ("c16", "c64") for seed in SEEDS]
    gen = [truth.acc[s, seed, "test", 64].mean() for s, seed in runs]
    got = cells(tmp_path / "fig3.csv")
    for space, label in (("topsim_image", "Image"), ("topsim_attributes", "Attributes")):
        column = f"{DS} ({label})"
        ts = [truth.topsim[s, seed, space].mean() for s, seed in runs]
        rho, p = scipy.stats.spearmanr(ts, gen)
        assert got["Spearman ρ (TopSim vs generalisation)", column][0] == pytest.approx(rho)
        assert got["p-value", column][0] == pytest.approx(p)
        assert got["|C| = 64", column][:2] == pytest.approx(
            mean_se([truth.topsim["c64", seed, space].mean() for seed in SEEDS]))
    got = cells(tmp_path / "table1.csv")
    for metric, label in (("etl_discrimination", "ETL Discr."),
                          ("etl_classification", "ETL Classif.")):
        column = f"{DS}: {label}"
        final = [truth.etl[s, seed, metric].mean() for s, seed in runs]
        rho, p = scipy.stats.spearmanr(final, gen)
        assert got["Spearman ρ (ETL vs generalisation)", column][0] == pytest.approx(rho)
        assert got["p-value", column][0] == pytest.approx(p)
        assert got["|C| = 16", column][:2] == pytest.approx(
            mean_se([truth.etl["c16", seed, metric].mean() for seed in SEEDS]))
    assert math.isnan(got["Spearman ρ (ETL vs generalisation)", f"{DS}: Generalization"][0])
    # The paper's reconstruction column is there, n/a, with the reason in a footnote.
    reconstruction = f"{DS}: ETL Reconstruction ↓"
    assert all(math.isnan(got[row, reconstruction][0]) for row in ("|C| = 16", "|C| = 64"))
    md = (tmp_path / "table1.md").read_text()
    assert "ETL Reconstruction ↓ |" in md and "n/a (no images in the data)" in md


def test_table7_table8_and_transfer(data, tmp_path):
    df, truth = data
    write_tables(df, SPEC, tmp_path, ["table7", "table8", "transfer"])
    got = cells(tmp_path / "table7.csv")
    assert sorted({r for r, _ in got}) == sorted(ATTRS)
    assert got["Male", f"{DS}: |C| = 64"][:2] == pytest.approx(
        mean_se([truth.etl["c64", s, "etl_attribute/Male"].mean() for s in SEEDS]))
    got = cells(tmp_path / "table8.csv")
    assert {r for r, _ in got} == {f"{DS} (test_official)"}  # only the dataset with the split
    assert got[f"{DS} (test_official)", "1 pair"][:2] == pytest.approx(
        mean_se([truth.acc["pairs1", s, "test_official", 64].mean() for s in SEEDS]))
    valid = [truth.acc["pairs1", s, "valid", 64].mean() for s in SEEDS]
    best = SEEDS[int(np.argmax(valid))]
    assert got[f"{DS} (test_official)", "best 1 pair"][0] == pytest.approx(
        100 * truth.acc["pairs1", best, "test_official", 64].mean())
    got = cells(tmp_path / "transfer.csv")
    row = f"1 pair: {DS} → {OTHER} (|C| = 16)"
    v = 100 * np.array([truth.transfer["pairs1", s].mean() for s in SEEDS])
    src = 100 * np.array([truth.acc["pairs1", s, "test", 64].mean() for s in SEEDS])
    low, high = int(np.argmin(v)), int(np.argmax(v))
    assert low != high
    expected = [src.mean(), src.std(ddof=1), v.mean(), v.std(ddof=1), v.min(), v.max(), 4,
                SEEDS[low], SEEDS[high], abs(src[high] - src[low])]
    names = ["source mean", "source std", "transfer mean", "transfer std", "transfer min",
             "transfer max", "runs", "seed of min", "seed of max", "source gap of min/max"]
    assert [got[row, n][0] for n in names] == pytest.approx(expected)


def test_table8_names_a_listed_dataset_without_the_split_instead_of_filling_in(data, tmp_path):
    df, _ = data
    spec = {**SPEC, "tables": {"table8": {**SPEC["tables"]["table8"],
                                          "datasets": [OTHER, DS]}}}
    write_tables(df, spec, tmp_path, ["table8"])
    got = cells(tmp_path / "table8.csv")
    assert {r for r, _ in got} == {f"{DS} (test_official)"}
    text = (tmp_path / "table8.md").read_text()
    assert f"split test_official of {OTHER}, {DS}" in text
    assert f"{OTHER}: no evaluation on a test_official split" in text


def test_missing_inputs_are_written_as_no_data(data, tmp_path):
    df, _ = data
    only_eval = df[(df["stage"] == "eval") & (df["eval_dataset"] == DS)
                   & (df["split"] != "test_official")]
    spec = {**SPEC, "tables": {**SPEC["tables"],
                               "table6": {"rows": {"1 pair": "pairs1", "typo": "nope"}}}}
    paths = write_tables(only_eval, spec, tmp_path)
    assert len(paths) == len(TABLE_FORMATS) * len(SPEC["tables"]) and all(p.exists() for p in paths)
    for name in ("table7", "table8", "transfer"):
        assert "_No data" in (tmp_path / f"{name}.md").read_text()
        assert pd.read_csv(tmp_path / f"{name}.csv").empty
    # Fig. 3 without language rows: no TopSim column; Table 1 keeps generalisation only.
    assert "No data" in (tmp_path / "fig3.md").read_text()
    assert set(pd.read_csv(tmp_path / "table1.csv")["column"]) == {
        f"{DS}: Generalization", f"{DS}: ETL Reconstruction ↓"}
    table6 = (tmp_path / "table6.md").read_text()
    assert "| typo | n/a | n/a |" in table6 and "no rows for setting(s) ['nope']" in table6
    figs = write_figures(only_eval, spec, tmp_path / "figs")
    assert len(figs) == 3 * len(emcom.report.FIGURES) and all(p.stat().st_size > 0 for p in figs)
    empty = df.iloc[:0]
    paths = write_tables(empty, SPEC, tmp_path / "empty") + write_figures(empty, SPEC,
                                                                          tmp_path / "empty")
    assert all(p.exists() for p in paths) and len(paths) == (
        len(TABLE_FORMATS) * len(SPEC["tables"]) + 3 * len(emcom.report.FIGURES))
    assert "_No data" in (tmp_path / "empty" / "table2.md").read_text()


def test_unnamed_eval_dataset_means_the_training_dataset(data, tmp_path):
    df, truth = data
    unnamed = df.assign(eval_dataset=df["eval_dataset"].where(df["eval_dataset"] != DS, ""))
    write_tables(unnamed, SPEC, tmp_path, ["table2", "transfer"])
    got = cells(tmp_path / "table2.csv")
    assert got["1 pair", f"{DS} Gen. ↑"][:2] == pytest.approx(
        mean_se([truth.acc["pairs1", s, "test", 64].mean() for s in SEEDS]))
    assert len(pd.read_csv(tmp_path / "transfer.csv")) == 10  # still one transfer row (10 columns)


def test_spec_errors_name_the_key():
    with pytest.raises(SpecError, match="report: unknown key"):
        resolve_spec({"tabels": {}})
    with pytest.raises(SpecError, match=r"report.tables.fig2.rows.x: row kind 'vote'"):
        resolve_spec({"tables": {"fig2": {"rows": {"x": {"vote": "a"}}}}})
    with pytest.raises(SpecError, match=r"report.tables.table2.rows.a: unknown setting 'zz'"):
        resolve_spec({"tables": {"table2": {"rows": {"a": "zz"}}}}, settings=["pairs1"])
    with pytest.raises(SpecError, match="report.tables.table9"):
        resolve_spec({"tables": {"table9": {"rows": {"a": "b"}}}})
    with pytest.raises(SpecError, match="report.robustness"):
        resolve_spec({"robustness": "percent"})
    with pytest.raises(SpecError, match="report.etl_split"):
        resolve_spec({"etl_split": "training"})
    with pytest.raises(SpecError, match="report.tables.table1.rows is required"):
        resolve_spec({"tables": {"table1": {}}})
    assert resolve_spec({"report": {"main_candidates": 256}}).main_candidates == 256
    # YAML int keys become string labels.
    assert resolve_spec({"tables": {"fig2": {"rows": {16: "c16"}}}}).tables["fig2"] == {
        "rows": {"16": "c16"}}
    with pytest.raises(ValueError, match="lacks column"):
        write_tables(pd.DataFrame({"value": [1.0]}), SPEC, "/nonexistent")


def test_ambiguous_etl_split_raises(data, tmp_path):
    df, _ = data
    twice = pd.concat([df, df[df["stage"] == "etl"].assign(split="test")])
    with pytest.raises(SpecError, match="etl_split"):
        write_tables(twice, SPEC, tmp_path, ["table1"])
    write_tables(twice, {**SPEC, "etl_split": "train"}, tmp_path, ["table1"])


def test_figures_and_cli(data, tmp_path):
    df, _ = data
    tidy = tmp_path / "all.parquet"
    df.to_parquet(tidy, index=False)
    spec_file = tmp_path / "config.yaml"
    spec_file.write_text(yaml.safe_dump({"report": SPEC}, allow_unicode=True))
    paths = cli(["figures", str(tidy), "--spec", str(spec_file), "--out", str(tmp_path / "f")])
    names = sorted(p.name for p in paths)
    assert names == sorted(f"{s}.{e}" for s in ("fig1_training", "fig2_test_accuracy",
                                                 "fig4_etl", "fig13_by_eval_candidates")
                           for e in ("png", "pdf", "rst"))
    for p in paths:
        head = p.read_bytes()[:8]
        assert p.stat().st_size > 1000 or p.suffix == ".rst"
        assert {".png": b"\x89PNG", ".pdf": b"%PDF", ".rst": head[:4]}[p.suffix] == head[:4]
    assert "Thin lines are individual seeds" in (tmp_path / "f" / "fig1_training.rst").read_text()
    paths = cli(["tables", str(tidy), "--spec", str(spec_file), "--out", str(tmp_path / "t"),
                 "--only", "fig2"])
    first = [p.read_bytes() for p in paths]
    cli(["tables", str(tidy), "--spec", str(spec_file), "--out", str(tmp_path / "t"),
         "--only", "fig2"])
    assert [p.read_bytes() for p in paths] == first  # reproducible bytes


def test_curve_values_mean_over_seeds(data):
    """The Fig. 2 curves average the seeds' rows at each step (checked against a groupby-free
    computation)."""
    df, _ = data
    v = curves(df, stage="train", metric="accuracy", split="test", keys=("candidates",))
    rows = df[(df.stage == "train") & (df.metric == "accuracy") & (df.setting == "c16")
              & (df.candidates == 16) & (df.step == 20) & (df.seed == 2)]
    assert v[(DS, "c16", 2, 16, 20)] == pytest.approx(rows["value"].to_numpy().mean())
    assert select.main_candidates(df, 1024) == {DS: 64, OTHER: 16}
    assert select.main_candidates(df, 16) == {DS: 16, OTHER: 16}


def test_documented_spec_example_is_valid():
    """The YAML block of docs/report.md (pasted into config/config.yaml) passes resolve_spec."""
    doc = (pathlib.Path(__file__).parents[1] / "docs" / "report.md").read_text()
    block = re.search(r"## The report spec\n+```yaml\n(.*?)```", doc, re.S).group(1)
    spec = resolve_spec(yaml.safe_load(block))
    assert set(spec.tables) == set(TABLES)
    assert S.parse_rows(spec.tables["table2"]["rows"], "t", {S.MEAN, S.VOTE, S.BEST})[0] == \
        S.Row("best 1 pair", "pairs1", S.BEST)


def test_figure_instances_are_drawn_by_their_kind_from_their_own_entry(data, tmp_path):
    """Figs. 9-12 are instances of Fig. 1 / Fig. 4 (`kind:`): their own panels or rows, their
    own title, written as <name>.*; the thick line is the mean over seeds of the settings' rows."""
    df, _ = data
    spec = {**SPEC, "figures": {**SPEC["figures"], "fig9": {
        "kind": "fig1", "title": "Fig. 9: KL x entropy", "caption": "The paper: chaotic.",
        "panels": {"alpha = 1e-4": {
            "beta = 0": "c16", "beta = 0.5": "c64"}}}, "fig12": {
        "kind": "fig4", "rows": {"1 pair": "pairs1", "1 pair + reset": "reset1"}}}}
    resolved = resolve_spec(spec)
    assert emcom.report.figure_names(resolved.figures) == ["fig1", "fig2", "fig4", "fig13",
                                                           "fig9", "fig12"]
    fig, caption = emcom.report.figure_kind("fig9", resolved.figures["fig9"]).draw(
        df, resolved, "fig9")
    assert caption.startswith("Fig. 9: KL x entropy. Training accuracy")
    assert caption.endswith(" The paper: chaotic.")
    ax = fig.axes[0]  # the dataset `syn`, panel alpha = 1e-4
    assert ax.get_title().endswith("alpha = 1e-4")
    thick = [line for line in ax.lines if line.get_linewidth() == 2]
    assert [line.get_label() for line in thick] == ["beta = 0 (n=4)", "beta = 0.5 (n=4)"]
    rows = df[(df.stage == "train") & (df.metric == "train_accuracy") & (df.setting == "c64")
              & (df.dataset == DS)]
    expected = rows.groupby("step")["value"].mean()
    np.testing.assert_allclose(thick[1].get_ydata(), expected.to_numpy())
    paths = write_figures(df, spec, tmp_path, ["fig9", "fig12"])
    assert sorted(p.name for p in paths) == sorted(
        f"{n}.{e}" for n in ("fig9", "fig12") for e in ("png", "pdf", "rst"))
    assert "1 pair + reset" in "".join(
        t.get_text() for a in emcom.report.figure_kind("fig12", resolved.figures["fig12"]).draw(
            df, resolved, "fig12")[0].axes for t in a.get_legend().get_texts())
    with pytest.raises(SpecError, match=r"report.figures.fig9: unknown figure.*kind 'fig3'"):
        resolve_spec({"figures": {"fig9": {"kind": "fig3"}}})
    with pytest.raises(SpecError, match=r"report.figures.fig9: unknown figure"):
        resolve_spec({"figures": {"fig9": {"panels": {}}}})
    with pytest.raises(SpecError, match=r"fig9.title must be a string"):
        resolve_spec({"figures": {"fig9": {"kind": "fig1", "title": 3}}})
    with pytest.raises(SpecError, match=r"report.figures.fig1: unknown figure"):
        resolve_spec({"figures": {"fig1": {"kind": "fig4"}}})


def test_fig13_has_a_panel_per_training_setting_and_a_line_per_eval_candidates(data):
    df, _ = data
    spec = resolve_spec(SPEC)
    fig, caption = emcom.report.FIGURES["fig13"].draw(df, spec, "fig13")
    assert "one panel per training setting" in caption
    ax = fig.axes[1]  # dataset `syn`, training |C| = 64 (the rows of tables.fig2)
    assert ax.get_title() == "syn: training |C| = 64"
    lines = [line for line in ax.lines if line.get_linewidth() == 2]
    assert [line.get_label() for line in lines] == [f"|C| = {c} (n=4)" for c in EVAL_C]
    rows = df[(df.stage == "train") & (df.metric == "accuracy") & (df.setting == "c64")
              & (df.candidates == 16) & (df.split == "test") & (df.dataset == DS)]
    np.testing.assert_allclose(lines[0].get_ydata(), rows.groupby("step")["value"].mean())


def test_fig4_best_of_row_is_the_best_validation_seed_and_attributes_have_a_panel(data):
    df, truth = data
    spec = resolve_spec({**SPEC, "figures": {"fig4": {"rows": {
        "best 1 pair": {"best_of": "pairs1"}, "1 pair": "pairs1"}}}})
    fig, _ = emcom.report.FIGURES["fig4"].draw(df, spec, "fig4")
    assert [ax.get_title() for ax in fig.axes[:3]] == [
        "syn: Discrimination", "syn: Classification", "syn: Attributes"]
    valid = {s: truth.acc["pairs1", s, "valid", 64].mean() for s in SEEDS}
    best = max(SEEDS, key=lambda s: (valid[s], -s))
    line = next(x for x in fig.axes[0].lines if x.get_label().startswith("best 1 pair"))
    assert line.get_label() == f"best 1 pair (seed {best}) (n=1)"
    rows = df[(df.stage == "etl") & (df.metric == "etl_discrimination") & (df.setting == "pairs1")
              & (df.seed == best) & (df.dataset == DS)]
    np.testing.assert_allclose(line.get_ydata(), rows.groupby("step")["value"].mean())


def test_table5_cost_from_the_train_stage_cost_rows(tmp_path):
    """Speed: mean over seeds of each run's median steps/s; memory: of each run's largest peak;
    time: of each run's last train_seconds; the paper's V100 figures beside the same N."""
    rng = np.random.default_rng(3)
    rows, truth = [], {}
    for setting, n in (("p1", 1), ("p10", 10)):
        for seed in range(3):
            speeds, mems = rng.uniform(5, 10, 4), rng.uniform(100, 200, 4)
            truth[setting, seed] = (np.median(speeds), mems.max(), 40.0 * (seed + 1))
            for k, step in enumerate((10, 20, 30, 40)):
                for metric, value in (("steps_per_second", speeds[k]),
                                      ("peak_memory_mib", mems[k]),
                                      ("train_seconds", 10.0 * (seed + 1) * (k + 1))):
                    rows.append(dict(dataset=DS, setting=setting, seed=seed, stage="train",
                                     eval_dataset=DS, split="train", candidates=-1, speaker=-1,
                                     listener=-1, metric=metric, value=value, step=step))
            for metric, value in (("num_speakers", n), ("device/cpu", 1)):
                rows.append(dict(dataset=DS, setting=setting, seed=seed, stage="train",
                                 eval_dataset=DS, split="train", candidates=-1, speaker=-1,
                                 listener=-1, metric=metric, value=value, step=10))
    # Snakemake's benchmark files of the training jobs; p10's seed 2 has none (trained elsewhere)
    files, header = [], "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\t" \
        "mean_load\tcpu_time\n"
    for setting, seed in [(s, n) for s in ("p1", "p10") for n in range(3)]:
        path = tmp_path / "benchmarks" / setting / f"seed{seed}.tsv"
        files.append([str(path), DS, setting, seed])
        if (setting, seed) != ("p10", 2):
            path.parent.mkdir(parents=True, exist_ok=True)
            wall, rss = 60.0 * (seed + 1) + (300 if setting == "p10" else 0), 500.0 + seed
            path.write_text(header + f"{wall}\t0:01:00\t{rss}\t900\t400\t420\tNA\tNA\t"
                            f"95.0\t{wall * 1.9}\n")
            truth[setting, seed] += (wall, rss)
    df = pd.concat([pd.DataFrame(rows, columns=list(COLUMNS)), benchmark_rows(files)])
    spec = {"tables": {"table5": {"rows": {"1 pair": "p1", "10 pairs": "p10"}}}}
    write_tables(df, spec, tmp_path, ["table5"])
    got = pd.read_csv(tmp_path / "table5.csv")
    for label, setting, n, paper in (("1 pair", "p1", 1, (25, 0.29)),
                                     ("10 pairs", "p10", 10, (223, 0.71))):
        cell = got[got["row"] == f"{label} ({DS})"].set_index("column")["value"]
        benched = [truth[setting, s][3:] for s in range(3) if len(truth[setting, s]) > 3]
        assert cell["job: wall (min)"] == pytest.approx(
            np.mean([w for w, _ in benched]) / 60, abs=0.01)
        assert cell["job: max RSS (MiB)"] == pytest.approx(np.mean([r for _, r in benched]),
                                                           abs=0.01)
        speed = np.mean([truth[setting, s][0] for s in range(3)])
        assert cell["N"] == n
        assert cell["steps/s"] == pytest.approx(speed, abs=0.01)
        assert cell["step (ms)"] == pytest.approx(1000 / speed, abs=0.01)
        assert cell["peak memory (MiB)"] == pytest.approx(
            np.mean([truth[setting, s][1] for s in range(3)]), abs=0.01)
        assert cell["training (min)"] == pytest.approx(80.0 / 60, abs=0.01)  # (40+80+120)/3 s
        assert (cell["paper: step (ms)"], cell["paper: memory (GiB)"]) == paper
    md = (tmp_path / "table5.md").read_text()
    assert "trained on cpu" in md and "CelebA block for N = 10: 293 ms" in md
    assert f"10 pairs ({DS}): 1 of 3 runs have no Snakemake benchmark file" in md
    assert f"1 pair ({DS}): 1 of" not in md


def test_a_job_of_several_seeds_shares_its_time_not_its_memory(tmp_path):
    path = tmp_path / "seed0+1.tsv"
    path.write_text("s\th:m:s\tmax_rss\tcpu_time\n120\t0:02:00\t900\t200\n")
    rows = benchmark_rows([[str(path), DS, "p1", seed, 2] for seed in (0, 1)])
    got = rows.groupby(["seed", "metric"])["value"].first().unstack()
    assert got.loc[0].to_dict() == got.loc[1].to_dict() == {
        "job_cpu_seconds": 100.0, "job_max_rss_mib": 900.0, "job_seconds": 60.0}


def test_a_benchmark_file_without_snakemakes_columns_is_named(tmp_path):
    path = tmp_path / "seed0.tsv"
    path.write_text("seconds\trss\n1\t2\n")
    with pytest.raises(ValueError, match=r"seed0.tsv: not a Snakemake benchmark file.*max_rss"):
        benchmark_rows([[str(path), DS, "p1", 0]])


def test_tables_are_also_written_as_html_for_the_report(data, tmp_path):
    df, _ = data
    paths = write_tables(df, SPEC, tmp_path, ["table2"])
    assert [p.suffix for p in paths] == [".csv", ".md", ".tex", ".html"]
    page = (tmp_path / "table2.html").read_text()
    md = (tmp_path / "table2.md").read_text()
    assert "<h3>Table 2" in page
    assert page.count("<tr>") == sum(1 for line in md.splitlines() if line.startswith("| "))
    # every cell text of the Markdown table is in the HTML one
    cells = [c.strip() for line in md.splitlines() if line.startswith("| ") and "---" not in line
             for c in line.strip("|").split(" | ")]
    assert all(html.escape(c.replace("\\|", "|")) in page for c in cells)
    assert all(emcom.report.TABLES[name].caption for name in emcom.report.TABLES)
