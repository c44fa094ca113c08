"""The tables by training |C| (paper §4): Fig. 2's table, Fig. 3's TopSim table, Table 1
(generalisation and ETL), Table 7 (ETL per attribute)."""

from __future__ import annotations

import pandas as pd

from emcom.report.select import (
    PERCENT, RUN, candidates_note, correlation_rows, dataset_labels, etl_split, generalisation,
    main_candidates, missing_settings, restrict, run_values, seed_cell, select, table_rows)
from emcom.report.spec import ReportSpec
from emcom.report.table import Table

RECONSTRUCTION = "ETL Reconstruction ↓"
RECONSTRUCTION_NOTE = ("ETL Reconstruction: n/a (no images in the data): the prepared datasets hold "
                       "BYOL features, not the images the paper's reconstruction task decodes "
                       "(App. B.1)")
DEFAULT_ETL_TASKS = {
    "ETL Discr.": "etl_discrimination",
    "ETL Classif.": "etl_classification",
    "ETL Attributes": "etl_attributes",
}


def fig2_table(df: pd.DataFrame, spec: ReportSpec) -> Table:
    """Test accuracy (%): rows = training |C| settings, columns = evaluation |C| per dataset."""
    rows = table_rows(spec, "fig2")
    labels = dataset_labels(df, spec, rows)
    sel = select(df, stage="eval", metric="accuracy", split=spec.split)
    values = run_values(sel, RUN + ["candidates"])
    columns, index = [], []
    for dataset, label in labels.items():
        for cands in sorted(set(sel.loc[sel["dataset"] == dataset, "candidates"])):
            columns.append(f"{label}: eval |C| = {cands}")
            index.append((dataset, cands))
    out = []
    for row in rows:
        cells = []
        for dataset, cands in index:
            v = values[(values.index.get_level_values("dataset") == dataset)
                       & (values.index.get_level_values("setting") == row.setting)
                       & (values.index.get_level_values("candidates") == cands)]
            cells.append(seed_cell(v))
        out.append((row.label, cells))
    return Table("fig2", f"Fig. 2: {spec.split} accuracy (%) by training |C| (rows) and "
                 "evaluation |C| (columns)", "Training", columns, out,
                 missing_settings(df, rows))


def fig3_table(df: pd.DataFrame, spec: ReportSpec) -> Table:
    """TopSim x100 per training |C| for each dataset x meaning space, + its Spearman correlation
    with generalisation over runs."""
    rows = table_rows(spec, "fig3")
    labels = dataset_labels(df, spec, rows)
    cands = main_candidates(df, spec.target("fig3"))
    settings = {r.setting for r in rows}
    gen = generalisation(df, spec, cands)
    gen = gen[gen.index.get_level_values("setting").isin(settings)]
    spaces = {"topsim_image": "Image", "topsim_attributes": "Attributes"}
    topsim = {m: run_values(select(df, stage="language", metric=m, split=spec.split))
              for m in spaces}
    columns, data = [], []
    for dataset, label in labels.items():
        for metric, space in spaces.items():
            values = restrict(topsim[metric], dataset)
            values = values[values.index.get_level_values("setting").isin(settings)]
            if len(values):
                columns.append(f"{label} ({space})")
                data.append((dataset, values))
    body = [(r.label, [seed_cell(restrict(v, d, r.setting)) for d, v in data]) for r in rows]
    notes = missing_settings(df, rows) + [candidates_note(cands, labels) + " for generalisation"]
    body += correlation_rows([(c, v, restrict(gen, d)) for c, (d, v) in zip(columns, data)],
                              "TopSim vs generalisation", notes)
    return Table("fig3", "Fig. 3 (left): topographic similarity ×100 by training |C|",
                 "Training", columns, body, notes)


def table1(df: pd.DataFrame, spec: ReportSpec) -> Table:
    """Generalisation and final ETL value per task per training |C|, + Spearman correlation of
    each ETL task with generalisation over runs."""
    rows = table_rows(spec, "table1")
    labels = dataset_labels(df, spec, rows)
    cands = main_candidates(df, spec.target("table1"))
    tasks = dict(spec.tables["table1"].get("tasks") or DEFAULT_ETL_TASKS)
    split = etl_split(df, spec.etl_split)
    gen = generalisation(df, spec, cands)
    etl = {m: run_values(select(df, stage="etl", metric=m, split=split)) for m in tasks.values()}
    columns, data = [], []  # data: (dataset, per-run values, scale, correlated with gen.)
    nothing = gen.iloc[:0]
    for dataset, label in labels.items():
        columns.append(f"{label}: Generalization")
        data.append((dataset, restrict(gen, dataset), PERCENT, False))
        for task, metric in tasks.items():
            values = restrict(etl[metric], dataset)
            if len(values):
                columns.append(f"{label}: {task}")
                data.append((dataset, values, 1.0 if "loss" in metric else PERCENT, True))
        # The paper's fifth ETL column (App. B.1) needs images; shown, never silently missing.
        columns.append(f"{label}: {RECONSTRUCTION}")
        data.append((dataset, nothing, 1.0, False))
    body = [(r.label, [seed_cell(restrict(v, d, r.setting), scale) for d, v, scale, _ in data])
            for r in rows]
    notes = missing_settings(df, rows) + [candidates_note(cands, labels)
                                           + "; ETL: final value (accuracy %, or loss)",
                                           RECONSTRUCTION_NOTE]
    settings = {r.setting for r in rows}

    def among(v: pd.Series) -> pd.Series:
        return v[v.index.get_level_values("setting").isin(settings)]

    body += correlation_rows(
        [(c, among(v), among(restrict(gen, d)) if correlated else None)
         for c, (d, v, _, correlated) in zip(columns, data)], "ETL vs generalisation", notes)
    return Table("table1", "Table 1: generalisation and ease of transfer learning (ETL) by "
                 "training |C|", "Training", columns, body, notes)


def table7(df: pd.DataFrame, spec: ReportSpec) -> Table:
    """Final per-attribute ETL accuracy (%): rows = attributes, columns = training |C| per
    dataset."""
    settings = table_rows(spec, "table7")
    labels = dataset_labels(df, spec, settings)
    split = etl_split(df, spec.etl_split)
    metrics = sorted({m for m in df["metric"].unique() if m.startswith("etl_attribute/")})
    values = run_values(select(df, stage="etl", metric=metrics, split=split),
                        RUN + ["metric"])
    datasets = [d for d in labels if len(restrict(values, d))]
    columns = [f"{labels[d]}: {r.label}" for d in datasets for r in settings]
    body = []
    for metric in metrics:
        v = values[values.index.get_level_values("metric") == metric]
        body.append((metric.split("/", 1)[1],
                     [seed_cell(restrict(v, d, r.setting)) for d in datasets for r in settings]))
    return Table("table7", "Table 7: final ETL accuracy (%) per attribute by training |C|",
                 "Attribute", columns, body, missing_settings(df, settings))
