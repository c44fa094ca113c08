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


@dataclasses.dataclass(frozen=True)
class FigureDef:
    name: str
    stem: str                           # file stem of its PNG, PDF and caption
    draw: Callable[[pd.DataFrame, ReportSpec, str], tuple[Figure, str]]  # (df, spec, name)
    stages: tuple[str, ...]
    keys: frozenset[str]
    kinds: frozenset[str] = frozenset({MEAN})  # row kinds its `rows` may use


_ROWS, _CANDS = frozenset({"rows"}), frozenset({"rows", "main_candidates"})
_POPULATION = frozenset({MEAN, VOTE, BEST})
TABLES: dict[str, TableDef] = {t.name: t for t in (
    TableDef("fig2", training_tables.fig2_table, ("eval",), _ROWS),
    TableDef("fig3", training_tables.fig3_table, ("eval", "language"), _CANDS),
    TableDef("table1", training_tables.table1, ("eval", "etl"), _CANDS | {"tasks"}),
    TableDef("table2", population_tables.table2, ("eval",), _CANDS, _POPULATION),
    TableDef("table5", cost_table.table5, ("train",), _ROWS),
    TableDef("table6", population_tables.table6, ("eval",), _CANDS, _POPULATION),
    TableDef("table7", training_tables.table7, ("etl",), _ROWS),
    TableDef("table8", population_tables.table8, ("eval",), _CANDS | {"split", "datasets"},
             _POPULATION),
    TableDef("transfer", population_tables.transfer_table, ("eval",), _CANDS,
             rows_required=False),
)}
FIGURES: dict[str, FigureDef] = {f.name: f for f in (
    FigureDef("fig1", "fig1_training", figures.training_curves, ("train",),
              frozenset({"panels"})),
    FigureDef("fig2", "fig2_test_accuracy", figures.test_accuracy_curves, ("train",), _ROWS),
    FigureDef("fig4", "fig4_etl", figures.etl_curves, ("etl", "eval"), _ROWS | {"tasks"},
              frozenset({MEAN, BEST})),
    FigureDef("fig13", "fig13_by_eval_candidates", figures.candidates_curves, ("train",), _ROWS),
)}


INSTANCE_KEYS = frozenset({"kind", "title"})  # what an instance adds to its kind's keys


def figure_kind(name: str, entry: Mapping[str, Any] | None = None) -> FigureDef:
    """The FigureDef that draws figure `name`: its own, or its entry's `kind` (an instance such as
    Fig. 9, drawn like Fig. 1 with other panels)."""
    return FIGURES[name] if name in FIGURES else FIGURES[(entry or {})["kind"]]


def figure_stem(name: str) -> str:
    """File stem of figure `name`: a kind's registered stem, an instance's own name."""
    return FIGURES[name].stem if name in FIGURES else name


def figure_names(spec_figures: Mapping[str, Any] | None) -> list[str]:
    """Every figure a report makes: each kind (its spec entry or defaults), then each instance."""
    return list(FIGURES) + [n for n in (spec_figures or {}) if n not in FIGURES]


# The claims table (emcom.report.claims) reads every stage: KL from training curves, TopSim from
# the language stage, ETL, and generalisation from evaluation.
CLAIMS_STAGES = ("train", "eval", "language", "etl")
CLAIMS_FILES = ("md", "csv", "json")


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
    among FIGURES, an optional `title`, and that kind's keys)."""
    entry = dict(entry or {}) if isinstance(entry, Mapping) or entry is None else entry
    kind = entry.get("kind", name) if isinstance(entry, dict) else name
    if kind not in FIGURES or (name in FIGURES and kind != name):
        raise SpecError(f"{where}: unknown figure; expected one of {sorted(FIGURES)}, or another "
                        f"name with `kind:` one of them (got kind {kind!r})")
    extra = {k: entry.pop(k) for k in INSTANCE_KEYS if isinstance(entry, dict) and k in entry}
    if "title" in extra and not isinstance(extra["title"], str):
        raise SpecError(f"{where}.title must be a string, got {extra['title']!r}")
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
