"""Every table and figure the report makes, declared once: how it is built, which stages' tidy
tables it reads and which spec keys it accepts. The rules (rules/common.smk, rules/report.smk) derive
their targets and inputs from here; `resolve_spec` checks a `report:` block against it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pandas as pd
from matplotlib.figure import Figure

from emcom.report import figures, population_tables, training_tables
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
    draw: Callable[[pd.DataFrame, ReportSpec], tuple[Figure, str]]
    stages: tuple[str, ...]
    keys: frozenset[str]


_ROWS, _CANDS = frozenset({"rows"}), frozenset({"rows", "main_candidates"})
_POPULATION = frozenset({MEAN, VOTE, BEST})
TABLES: dict[str, TableDef] = {t.name: t for t in (
    TableDef("fig2", training_tables.fig2_table, ("eval",), _ROWS),
    TableDef("fig3", training_tables.fig3_table, ("eval", "language"), _CANDS),
    TableDef("table1", training_tables.table1, ("eval", "etl"), _CANDS | {"tasks"}),
    TableDef("table2", population_tables.table2, ("eval",), _CANDS, _POPULATION),
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
    FigureDef("fig4", "fig4_etl", figures.etl_curves, ("etl",), _ROWS | {"tasks"}),
)}


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
            if name not in registry:
                raise SpecError(f"{where}: unknown {group[:-1]}; expected one of {sorted(registry)}")
            d = registry[name]
            kinds = d.kinds if group == "tables" else {MEAN}
            required = d.rows_required if group == "tables" else False
            checked[group][name] = check_entry(entry, where, d.keys, kinds, known, required)
    if spec.get("claims") is not None:
        checked["claims"] = resolve_claims(spec["claims"], settings)
    return ReportSpec(**{**spec, **checked})


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
    """Draws and writes the figures (`names`, default all of `FIGURES`); returns the paths.

    A figure need not be listed in `spec.figures`: its rows then default to the matching table's
    rows (Fig. 2: `tables.fig2.rows`, Fig. 4: the plain rows of `tables.table2.rows`), or to every
    setting present.
    """
    spec = resolve_spec(spec)
    df = check_frame(df)
    paths = []
    for name in list(names or FIGURES):
        if name not in FIGURES:
            raise SpecError(f"unknown figure {name!r}; expected one of {list(FIGURES)}")
        d = FIGURES[name]
        fig, caption = d.draw(df, spec)
        paths += figures.save(fig, caption, out_dir, d.stem,
                              config={"figure": spec.figures.get(name), "split": spec.split,
                                      "etl_split": spec.etl_split, "datasets": spec.datasets})
    return paths
