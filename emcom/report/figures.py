"""The paper's figures from the tidy tables: training curves (Fig. 1), test accuracy over training
per training |C| (Fig. 2) and per evaluation |C| (Fig. 13), ease-of-learning curves (Fig. 4).

Each figure is written as `<name>.png`, `<name>.pdf` and `<name>.rst` (its caption, for
Snakemake's `report()`), atomically, with `<name>.png.provenance.json`. Figures are drawn on
`matplotlib.figure.Figure` objects with the Agg canvas, so no pyplot state or display is involved.
A figure without data is still written, as a panel saying so.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from emcom import provenance
from emcom.report.select import (
    RUN, best_seed, dataset_labels, etl_split, finest, main_candidates, restrict, run_values,
    select, validation_accuracy)
from emcom.report.spec import BEST, MEAN, ReportSpec, Row, parse_rows
from emcom.report.table import rst_text

log = logging.getLogger(__name__)

PANEL_SIZE = (4.2, 3.2)  # inches per subplot
COLORS = [f"C{i}" for i in range(10)]


# The tables whose rows a figure without its own `rows` draws: Fig. 2's for the periodic test
# accuracy figures (Figs. 2, 13), Table 2's plain rows for the ETL figures (Figs. 4, 12).
PERIODIC_ROWS, ETL_ROWS = "fig2", "table2"


def curves(df: pd.DataFrame, *, stage: str, metric: str, split: str | None = None,
           keys: tuple[str, ...] = ()) -> pd.Series:
    """Mean value per run and step (index RUN + keys + ["step"]) over the finest rows."""
    rows = select(df, stage=stage, metric=metric, split=split, latest=False)
    index = RUN + list(keys) + ["step"]
    rows = finest(rows, index + ["eval_dataset"])
    return run_values(rows, index)


def _rows(entry: Mapping[str, Any] | None, where: str, fallback: Any,
          df: pd.DataFrame, kinds: frozenset[str] = frozenset({MEAN})) -> list[Row]:
    """The figure's `rows`, else `fallback` rows (a table's), else every setting present."""
    rows = (entry or {}).get("rows") or fallback
    if rows:
        return parse_rows(rows, where, kinds)
    return [Row(s, s) for s in sorted(set(df["setting"]))]


def _datasets(values: pd.Series, spec: ReportSpec, rows: list[Row]) -> dict[str, str]:
    """{dataset: label} of the datasets with curves for `rows` (a row of panels each)."""
    present = values.index.to_frame(index=False)[["dataset", "setting"]] if len(values) else None
    if present is None:
        return {}
    return dataset_labels(present, spec, rows)


def _grid(n_rows: int, n_cols: int) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(PANEL_SIZE[0] * n_cols, PANEL_SIZE[1] * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharey=True)  # comparable panels
    return fig, axes


def _no_data(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no data\n({what})", ha="center", va="center", transform=ax.transAxes)
    # Not set_yticks: the y axis is shared, clearing it would clear every panel's ticks.
    ax.tick_params(labelleft=False, labelbottom=False)


def _seed_matrix(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(steps (T,), values (seeds, T)) of one setting's per-seed curves (NaN where missing)."""
    wide = values.unstack("step")
    return wide.columns.to_numpy(), wide.to_numpy(dtype=np.float64)


def _mean_band(ax: Axes, steps: np.ndarray, v: np.ndarray, color: str, label: str) -> None:
    """Mean over seeds, shaded +- std over seeds (the paper's convention)."""
    mean = np.nanmean(v, axis=0)
    std = np.nanstd(v, axis=0, ddof=1) if v.shape[0] > 1 else np.zeros_like(mean)
    ax.plot(steps, mean, color=color, lw=2, label=f"{label} (n={v.shape[0]})")
    ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2, lw=0)


def _finish(ax: Axes, title: str, xlabel: str, ylabel: str, legend: str | None = None) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, title=legend, title_fontsize=8)


def training_curves(df: pd.DataFrame, spec: ReportSpec,
                    name: str = "fig1") -> tuple[Figure, str]:
    """Fig. 1 (and Figs. 9-11 as its instances): train accuracy over steps, seeds thin, mean
    thick; a panel per spec panel (rows: datasets)."""
    entry = spec.figures.get(name) or {}
    panels = {panel: _rows({"rows": rows}, f"report.figures.{name}.panels.{panel}", None, df)
              for panel, rows in (entry.get("panels") or {"all settings": None}).items()}
    values = curves(df, stage="train", metric="train_accuracy")
    labels = _datasets(values, spec, [r for rows in panels.values() for r in rows])
    fig, axes = _grid(max(len(labels), 1), len(panels))
    for i, (dataset, dlabel) in enumerate(labels.items() or [("", "no dataset")]):
        for j, (panel, rows) in enumerate(panels.items()):
            ax = axes[i, j]
            drawn = False
            for k, row in enumerate(rows):
                v = restrict(values, dataset, row.setting)
                if not len(v):
                    continue
                steps, seeds = _seed_matrix(v.droplevel(["dataset", "setting"]))
                color = COLORS[k % len(COLORS)]
                for curve in seeds:
                    ax.plot(steps, curve, color=color, lw=0.6, alpha=0.4)
                ax.plot(steps, np.nanmean(seeds, axis=0), color=color, lw=2,
                        label=f"{row.label} (n={seeds.shape[0]})")
                drawn = True
            if not drawn:
                _no_data(ax, "stage train, metric train_accuracy")
            _finish(ax, f"{dlabel}: {panel}", "training step", "train accuracy")
    fig.suptitle(entry.get("title", "Training accuracy") + " (thin: seeds, thick: mean over seeds)")
    caption = ("Training accuracy over training steps (stage `train`, metric `train_accuracy`). "
               "Thin lines are individual seeds, thick lines their mean (as the paper's Fig. 1: "
               "without KL, |C| = 1024 training is chaotic and ends at 76.0% against 98.3% "
               "with it, while |C| = 20 trains either way). "
               f"Panels: {', '.join(panels)}; rows of panels: datasets {', '.join(labels)}.")
    return fig, _titled(entry, caption)


_PERIODIC_CAPTIONS = {  # by_setting -> caption (`split` filled in)
    False: "{split} accuracy of the periodic evaluations during training (stage `train`, metric "
           "`accuracy`), one panel per evaluation |C|, one line per training setting; lines are "
           "the mean over seeds, shaded regions +- one standard deviation over seeds (as the "
           "paper's Fig. 2 / Fig. 14: the training settings separate only at the large "
           "evaluation |C|).",
    True: "{split} accuracy of the periodic evaluations during training (stage `train`, metric "
          "`accuracy`), one panel per training setting, one line per evaluation |C| (as the "
          "paper's Fig. 13): the harder the evaluation, the more the training settings differ. "
          "Lines are the mean over seeds, shaded regions +- one standard deviation over seeds.",
}


def _periodic_grid(df: pd.DataFrame, spec: ReportSpec, name: str,
                   by_setting: bool) -> tuple[Figure, str]:
    """The periodic `split` accuracy during training of the rows (default: tables.fig2's), mean
    +- std over seeds: a panel per evaluation |C| and a line per row (Fig. 2), or the other way
    round with `by_setting` (Fig. 13); a row of panels per dataset."""
    entry = spec.figures.get(name) or {}
    fallback = (spec.tables.get(PERIODIC_ROWS) or {}).get("rows")
    rows = _rows(entry, f"report.figures.{name}.rows", fallback, df)
    values = curves(df, stage="train", metric="accuracy", split=spec.split,
                    keys=("candidates",))
    labels = _datasets(values, spec, rows)
    cands = sorted(set(values.index.get_level_values("candidates"))) if len(values) else []
    panels, lines = (rows, cands) if by_setting else (cands, rows)
    fig, axes = _grid(max(len(labels), 1), max(len(panels), 1))
    for i, (dataset, dlabel) in enumerate(labels.items() or [("", "no dataset")]):
        if not panels:
            _no_data(axes[i, 0], f"stage train, metric accuracy, split {spec.split}")
            _finish(axes[i, 0], dlabel, "training step", f"{spec.split} accuracy")
        for j, panel in enumerate(panels):
            ax, drawn = axes[i, j], False
            for k, line in enumerate(lines):
                row, c = (panel, line) if by_setting else (line, panel)
                w = restrict(values, dataset, row.setting)
                w = w[w.index.get_level_values("candidates") == c]
                if len(w):
                    steps, seeds = _seed_matrix(w.droplevel(["dataset", "setting", "candidates"]))
                    _mean_band(ax, steps, seeds, COLORS[k % len(COLORS)],
                               f"|C| = {c}" if by_setting else row.label)
                    drawn = True
            title = f"training {panel.label}" if by_setting else f"evaluation |C| = {panel}"
            if not drawn:
                _no_data(ax, title)
            _finish(ax, f"{dlabel}: {title}", "training step", f"{spec.split} accuracy",
                    legend="evaluation" if by_setting else "training")
    fig.suptitle(entry.get("title", f"{spec.split.capitalize()} accuracy during training by "
                           f"{'evaluation' if by_setting else 'training'} |C|")
                 + " (mean ± std over seeds)")
    caption = _PERIODIC_CAPTIONS[by_setting].format(split=spec.split.capitalize())
    return fig, _titled(entry, caption)


def test_accuracy_curves(df: pd.DataFrame, spec: ReportSpec,
                         name: str = "fig2") -> tuple[Figure, str]:
    """Fig. 2: periodic test accuracy over steps, a panel per evaluation |C|, a line per training
    |C| setting, mean +- std over seeds (rows: datasets)."""
    return _periodic_grid(df, spec, name, by_setting=False)


def candidates_curves(df: pd.DataFrame, spec: ReportSpec,
                      name: str = "fig13") -> tuple[Figure, str]:
    """Fig. 13: the curves of Fig. 2 the other way round: a panel per training setting, a line
    per evaluation |C|, mean +- std over seeds (rows: datasets)."""
    return _periodic_grid(df, spec, name, by_setting=True)


def etl_curves(df: pd.DataFrame, spec: ReportSpec, name: str = "fig4") -> tuple[Figure, str]:
    """Fig. 4: ETL accuracy over ETL steps, a panel per task, a line per setting, mean +- std over
    seeds of the per-seed mean over frozen speakers x fresh listeners (rows: datasets)."""
    entry = spec.figures.get(name) or {}
    fallback = (spec.tables.get(ETL_ROWS) or {}).get("rows")
    fallback = {k: v for k, v in (fallback or {}).items()
                if isinstance(v, str) or BEST in v} or None
    rows = _rows(entry, f"report.figures.{name}.rows", fallback, df, frozenset({MEAN, BEST}))
    tasks = dict(entry.get("tasks") or {"Discrimination": "etl_discrimination",
                                        "Classification": "etl_classification",
                                        "Attributes": "etl_attributes"})
    split = etl_split(df, spec.etl_split)
    values = {m: curves(df, stage="etl", metric=m, split=split) for m in tasks.values()}
    valid = validation_accuracy(df, main_candidates(df, spec.main_candidates))
    labels = _datasets(pd.concat(values.values()), spec, rows)
    fig, axes = _grid(max(len(labels), 1), len(tasks))
    for j, (task, metric) in enumerate(tasks.items()):
        for i, (dataset, dlabel) in enumerate(labels.items() or [("", "no dataset")]):
            ax = axes[i, j]
            drawn = False
            for k, row in enumerate(rows):
                v, label = restrict(values[metric], dataset, row.setting), row.label
                if row.kind == BEST:  # the seed of the best validation accuracy, as Table 2's
                    best = best_seed(valid, dataset, row.setting)
                    v = v[v.index.get_level_values("seed") == (best or (-1,))[0]]
                    label = f"{row.label} (seed {best[0]})" if best else label
                if len(v):
                    steps, seeds = _seed_matrix(v.droplevel(["dataset", "setting"]))
                    _mean_band(ax, steps, seeds, COLORS[k % len(COLORS)], label)
                    drawn = True
            if not drawn:
                _no_data(ax, f"stage etl, metric {metric}")
            _finish(ax, f"{dlabel}: {task}", "ETL step", "new-listener accuracy",
                    legend="speakers from")
    fig.suptitle(entry.get("title", "Ease and transfer learning") + " (mean ± std over seeds)")
    caption = ("Ease and transfer learning: accuracy of newly initialised listeners trained on "
               "the frozen speakers' greedy messages (stage `etl`), one panel per task "
               f"({', '.join(tasks)}), one line per setting. Each seed's curve is the mean over "
               "its frozen speakers and fresh listeners; lines are the mean over seeds, shaded "
               "regions +- one standard deviation over seeds (as the paper's Fig. 4); a \"best\" "
               "line is the one seed with the best validation accuracy (Table 2's best 1 pair).")
    return fig, _titled(entry, caption)


def _titled(entry: Mapping[str, Any], caption: str) -> str:
    """An instance's caption: its `title`, its kind's caption, then its own `caption`."""
    title = f"{entry['title']}. " if entry.get("title") else ""
    return title + caption + (f" {entry['caption']}" if entry.get("caption") else "")


def save(fig: Figure, caption: str, out_dir: str | os.PathLike, stem: str,
         config: Any = None) -> list[Path]:
    """Writes `<stem>.png`, `<stem>.pdf`, `<stem>.rst` and the PNG's provenance; returns paths."""
    out_dir = Path(out_dir)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf", out_dir / f"{stem}.rst"]
    # Fixed metadata keeps the bytes reproducible (no creation date, no version string).
    with provenance.atomic_path(paths[0], suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120, metadata={"Software": None})
    with provenance.atomic_path(paths[1], suffix=".pdf") as tmp:
        fig.savefig(tmp, format="pdf", metadata={"CreationDate": None, "Producer": None,
                                                 "Creator": None})
    with provenance.atomic_path(paths[2], suffix=".rst") as tmp:
        tmp.write_text(rst_text(caption) + "\n", encoding="utf-8")
    provenance.write_provenance(paths[0], config, caption=caption)
    log.info("wrote %s.{png,pdf,rst} to %s", stem, out_dir)
    return paths
