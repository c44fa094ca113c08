"""Every table and figure the report makes, declared once: how it is built, which stages' tidy
tables it reads and which spec keys it accepts. The rules (rules/common.smk, rules/report.smk)
derive their targets and inputs from here; `resolve_spec` checks a `report:` block against it.
A figure kind may be drawn several times: `report.figures.<name>: {kind: fig1, ...}`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pandas as pd
from matplotlib.figure import Figure

from emcom.report import cost_table, figures, population_tables, training_tables
from emcom.report.claims_spec import resolve_claims
from emcom.report.select import check_frame
from emcom.report.spec import (
    BEST, MEAN, SHARED_KEYS, VOTE, ReportSpec, SpecError, check_entry, check_shared)
from emcom.report.table import Table, write


@dataclasses.dataclass(frozen=True)
class TableDef:
    name: str
    build: Callable[[pd.DataFrame, ReportSpec], Table]
    stages: tuple[str, ...]             # the tidy `stage`s it reads
    keys: frozenset[str]                # keys its spec entry accepts
    kinds: frozenset[str] = frozenset({MEAN})  # row kinds its `rows` may use
    rows_required: bool = True
    title: str = ""                     # "Table 1: what it shows" (the HTML report's label)
    caption: str = ""                   # the title, what the paper showed and what to look for
    job_costs: bool = False             # reads the training jobs' Snakemake benchmark files

    @property
    def measures_machine(self) -> bool:
        """Whether its cells (beyond the paper's columns) are this machine's time and memory, which
        no two runs repeat: the tables that read the jobs' benchmark files."""
        return self.job_costs


@dataclasses.dataclass(frozen=True)
class FigureDef:
    name: str
    stem: str                           # file stem of its PNG, PDF and caption
    draw: Callable[[pd.DataFrame, ReportSpec, str], tuple[Figure, str]]  # (df, spec, name)
    stages: tuple[str, ...]
    keys: frozenset[str]
    kinds: frozenset[str] = frozenset({MEAN})  # row kinds its `rows` may use
    title: str = ""                     # "Fig. 1: what it shows" (the HTML report's label)


_ROWS, _CANDS = frozenset({"rows"}), frozenset({"rows", "main_candidates"})
_POPULATION = frozenset({MEAN, VOTE, BEST})
_CAPTIONS = {  # (title: what it shows, then the paper's numbers and what to look for): paper.md §4
    "fig2": ("Fig. 2's numbers: final test accuracy by training and evaluation |C|",
             "Rows: training |C|; columns: evaluation |C|. The paper: every setting above 99.7% "
             "at evaluation |C| = 16, spread at 1024 (87.36 / 93.25 / 96.09 for training |C| = 64 "
             "/ 256 / 1024, ImageNet). Look for rows that differ only in the hard (right-hand) "
             "columns."),
    "fig3": ("Fig. 3: TopSim per training |C|, against generalisation",
             "TopSim x100, with Spearman's rho against generalisation. The paper: no correlation "
             "(rho -0.09 ImageNet, 0.08 CelebA, p > 0.19). Look for a rho near 0 while "
             "generalisation rises with |C|."),
    "table1": ("Table 1: generalisation and ETL per training |C|",
               "Every ETL task, with Spearman's rho against generalisation. The paper (CelebA): "
               "generalisation 74.50 -> 89.00 and every ETL task rising with |C|, rho > 0.90. "
               "Reconstruction is n/a here: the data hold features, not images."),
    "table2": ("Table 2: populations, imitation and vote",
               "Generalisation (higher is better) and robustness drop (lower is better). The "
               "paper: larger populations alone do not help (CelebA 89.00 / 91.06 / 90.69 for 1 / "
               "10 / 50 pairs); imitation (+ vote) helps, more for robustness (50 pairs: 38.87 -> "
               "32.69)."),
    "table5": ("Table 5: what training costs here",
               "Steps/s, step time, peak memory, time in training updates and device (the stage's "
               "own measurements), the job's wall time and peak resident set (Snakemake's "
               "benchmark file), beside the paper's V100 figures for the same N: 1 pair 25 ms, 10 "
               "pairs 223 ms, 50 pairs 1089 ms per step on ImageNet. Look for how the step time "
               "grows with N."),
    "table6": ("Table 6: listener reset",
               "The paper: reset helps 1 pair (89.00 -> 92.21, robustness 37.90 -> 18.34) and not "
               "populations (10 pairs 91.06 -> 90.55, 50 pairs 90.69 -> 91.52)."),
    "table7": ("Table 7: ETL accuracy per attribute per training |C|",
               "The paper (CelebA): most attributes rise with |C|; the column means are Table 1's "
               "Attributes (86.99 -> 90.08)."),
    "table8": ("Table 8: generalisation on identity-disjoint test data",
               "App. B.7. The paper: the ordering of Table 2 holds out of distribution (1 pair "
               "90.08, 50 pairs + imitation + vote 93.75)."),
    "transfer": ("Zero-shot transfer (Sec. 3.2): source vs target accuracy",
                 "Mean and std over seeds, and the two most different runs. The paper: ImageNet "
                 "-> CelebA 95.96 -> 36.73, std 0.49 -> 12.86, runs from 27.88 to 68.49. Look for "
                 "a collapse and a wide spread."),
}
TABLES: dict[str, TableDef] = {t.name: dataclasses.replace(
    t, title=_CAPTIONS[t.name][0], caption=". ".join(_CAPTIONS[t.name])) for t in (
    TableDef("fig2", training_tables.fig2_table, ("eval",), _ROWS),
    TableDef("fig3", training_tables.fig3_table, ("eval", "language"), _CANDS),
    TableDef("table1", training_tables.table1, ("eval", "etl"), _CANDS | {"tasks"}),
    TableDef("table2", population_tables.table2, ("eval",), _CANDS, _POPULATION),
    TableDef("table5", cost_table.table5, ("train",), _ROWS, job_costs=True),
    TableDef("table6", population_tables.table6, ("eval",), _CANDS, _POPULATION),
    TableDef("table7", training_tables.table7, ("etl",), _ROWS),
    TableDef("table8", population_tables.table8, ("eval",), _CANDS | {"split", "datasets"},
             _POPULATION),
    TableDef("transfer", population_tables.transfer_table, ("eval",), _CANDS,
             rows_required=False),
)}
FIGURES: dict[str, FigureDef] = {f.name: f for f in (
    FigureDef("fig1", "fig1_training", figures.training_curves, ("train",),
              frozenset({"panels"}), title="Fig. 1: training accuracy with and without KL"),
    FigureDef("fig2", "fig2_test_accuracy", figures.test_accuracy_curves, ("train",), _ROWS,
              title="Fig. 2 and Fig. 14: test accuracy during training, per evaluation |C|"),
    FigureDef("fig4", "fig4_etl", figures.etl_curves, ("etl", "eval"), _ROWS | {"tasks"},
              frozenset({MEAN, BEST}), title="Fig. 4: ease of transfer learning (ETL)"),
    FigureDef("fig13", "fig13_by_eval_candidates", figures.candidates_curves, ("train",), _ROWS,
              title="Fig. 13: test accuracy during training, per training |C|"),
)}


INSTANCE_KEYS = frozenset({"kind", "title", "caption"})  # what an instance adds to its kind's


def figure_kind(name: str, entry: Mapping[str, Any] | None = None) -> FigureDef:
    """The FigureDef that draws figure `name`: its own, or its entry's `kind` (an instance such as
    Fig. 9, drawn like Fig. 1 with other panels)."""
    return FIGURES[name] if name in FIGURES else FIGURES[(entry or {})["kind"]]


def figure_stem(name: str) -> str:
    """File stem of figure `name`: a kind's registered stem, an instance's own name."""
    return FIGURES[name].stem if name in FIGURES else name


def figure_title(name: str, entry: Mapping[str, Any] | None = None) -> str:
    """What figure `name` shows: its kind's title, or an instance's own `title`."""
    if name in FIGURES:
        return FIGURES[name].title
    return (entry or {}).get("title") or f"{name}: {figure_kind(name, entry).title}"


def report_labels(title: str) -> dict[str, str]:
    """The HTML report's labels of a table or figure: {"name": "Table 1", "shows": ...}, from a
    title "Table 1: what it shows"."""
    name, _, shows = title.partition(": ")
    return {"name": name, "shows": shows}


def figure_names(spec_figures: Mapping[str, Any] | None) -> list[str]:
    """Every figure a report makes: each kind (its spec entry or defaults), then each instance."""
    return list(FIGURES) + [n for n in (spec_figures or {}) if n not in FIGURES]


# The claims table (emcom.report.claims) reads every stage: KL from training curves, TopSim from
# the language stage, ETL, and generalisation from evaluation.
CLAIMS_STAGES = ("train", "eval", "language", "etl")


def resolve_spec(spec: Mapping[str, Any] | ReportSpec | None,
                 settings: Iterable[str] | None = None) -> ReportSpec:
    """The checked `ReportSpec` of a `report:` block; raises SpecError naming the dotted key.

    Args:
      spec: the `report:` block of the workflow config (bare or under `report:`), a ReportSpec,
        or None for the defaults.
      settings: if given, the setting names the config defines; rows naming any other raise.
    """
    if isinstance(spec, ReportSpec):
        spec = dataclasses.asdict(spec)
    spec = dict(spec or {})
    if "report" in spec and set(spec) == {"report"}:
        spec = dict(spec["report"] or {})
    known_keys = SHARED_KEYS + ("tables", "figures", "claims")
    unknown = sorted(set(spec) - set(known_keys))
    if unknown:
        raise SpecError(f"report: unknown key(s) {unknown}; expected {sorted(known_keys)}")
    check_shared(spec)
    known = None if settings is None else set(settings)
    checked: dict[str, dict] = {}
    for group, registry in (("tables", TABLES), ("figures", FIGURES)):
        entries = spec.get(group) or {}
        if not isinstance(entries, Mapping):
            raise SpecError(f"report.{group} must be a mapping")
        checked[group] = {}
        for name, entry in entries.items():
            where = f"report.{group}.{name}"
            if group == "tables":
                if name not in TABLES:
                    raise SpecError(f"{where}: unknown table; expected one of {sorted(TABLES)}")
                d = TABLES[name]
                checked[group][name] = check_entry(entry, where, d.keys, d.kinds, known,
                                                   d.rows_required)
            else:
                checked[group][name] = _check_figure(name, entry, where, known)
    if spec.get("claims") is not None:
        checked["claims"] = resolve_claims(spec["claims"], settings)
    return ReportSpec(**{**spec, **checked})


def _check_figure(name: str, entry: Any, where: str, known: set[str] | None) -> dict[str, Any]:
    """A figure's entry, checked: a kind's (keys of its FigureDef), or an instance's (a `kind`
    among FIGURES, an optional `title` and `caption` (what the paper's version showed), and that
    kind's keys)."""
    entry = dict(entry or {}) if isinstance(entry, Mapping) or entry is None else entry
    kind = entry.get("kind", name) if isinstance(entry, dict) else name
    if kind not in FIGURES or (name in FIGURES and kind != name):
        raise SpecError(f"{where}: unknown figure; expected one of {sorted(FIGURES)}, or another "
                        f"name with `kind:` one of them (got kind {kind!r})")
    extra = {k: entry.pop(k) for k in INSTANCE_KEYS if isinstance(entry, dict) and k in entry}
    for key in ("title", "caption"):
        if key in extra and not isinstance(extra[key], str):
            raise SpecError(f"{where}.{key} must be a string, got {extra[key]!r}")
    if name not in FIGURES and name in {d.stem for d in FIGURES.values()}:
        raise SpecError(f"{where}: the name is a registered figure's file stem; choose another")
    d = FIGURES[kind]
    return {**check_entry(entry, where, d.keys, d.kinds, known, False), **extra}


def write_tables(df: pd.DataFrame, spec: Mapping[str, Any] | ReportSpec | None,
                 out_dir: str | os.PathLike, names: Iterable[str] | None = None) -> list[Path]:
    """Computes and writes every table of `spec.tables` (or only `names`); returns the paths.

    A table whose inputs are absent is still written, with a "No data" line and the reason in its
    notes, so that a workflow declaring it as an output never fails for lack of an experiment.
    """
    spec = resolve_spec(spec)
    df = check_frame(df)
    paths = []
    for name in list(spec.tables) if names is None else list(names):
        if name not in spec.tables:
            raise SpecError(f"report.tables.{name}: not in the spec (has {sorted(spec.tables)})")
        table = TABLES[name].build(df, spec)
        paths += write(table, out_dir, config={"table": spec.tables[name], **spec.shared()})
    return paths


def write_figures(df: pd.DataFrame, spec: Mapping[str, Any] | ReportSpec | None,
                  out_dir: str | os.PathLike, names: Iterable[str] | None = None) -> list[Path]:
    """Draws and writes the figures (`names`, default `figure_names`); returns the paths.

    A figure kind need not be listed in `spec.figures`: its rows then default to the matching
    table's rows (Fig. 2: `tables.fig2.rows`, Fig. 4: the plain rows of `tables.table2.rows`), or
    to every setting present. An instance (`spec.figures.<name>` with `kind:`) is drawn by its
    kind from its own entry and written as `<name>.*`.
    """
    spec = resolve_spec(spec)
    df = check_frame(df)
    paths = []
    for name in list(names or figure_names(spec.figures)):
        if name not in FIGURES and name not in spec.figures:
            raise SpecError(f"unknown figure {name!r}; expected one of "
                            f"{figure_names(spec.figures)}")
        fig, caption = figure_kind(name, spec.figures.get(name)).draw(df, spec, name)
        paths += figures.save(fig, caption, out_dir, figure_stem(name),
                              config={"figure": spec.figures.get(name), "split": spec.split,
                                      "etl_split": spec.etl_split, "datasets": spec.datasets})
    return paths
