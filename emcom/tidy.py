"""The long-format ("tidy") table every stage writes: one row per measured number.

Columns and metric names are fixed by `docs/DESIGN.md`; every paper table is then a group-by over
(dataset, setting, seed, split, candidates, metric). Library `run` functions build rows with
`make_rows`/`row` (filling stage, split, candidates, speaker, listener, metric, value, step and
eval_dataset); the stage script adds dataset, setting and seed with `with_keys` before
`write_table`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from emcom import provenance
from emcom.errors import EmcomError
from emcom.names import SPLITS, STAGES

log = logging.getLogger(__name__)

# Column -> pandas dtype. The order is the on-disk column order.
COLUMNS: dict[str, str] = {
    "dataset": "str",
    "setting": "str",
    "seed": "int64",
    "stage": "str",
    "eval_dataset": "str",
    "split": "str",
    "candidates": "int64",
    "speaker": "int64",
    "listener": "int64",
    "metric": "str",
    "value": "float64",
    "step": "int64",
}
# Defaults for the columns a library `run` leaves to the stage script or that do not apply.
DEFAULTS: dict[str, Any] = {
    "dataset": "", "setting": "", "seed": -1, "eval_dataset": "", "candidates": -1,
    "speaker": -1, "listener": -1, "step": -1,
}


class TidyError(EmcomError):
    """A table that does not follow the tidy schema."""


def row(**fields: Any) -> dict[str, Any]:
    """One row: `fields` over `DEFAULTS`; raises TidyError naming an unknown or missing column."""
    unknown = sorted(set(fields) - set(COLUMNS))
    if unknown:
        raise TidyError(f"unknown tidy column(s) {unknown}; expected a subset of {list(COLUMNS)}")
    out = {**DEFAULTS, **fields}
    missing = [c for c in COLUMNS if c not in out]
    if missing:
        raise TidyError(f"tidy row lacks column(s) {missing} (no default exists for them)")
    return {c: out[c] for c in COLUMNS}


def make_rows(metric: str, values: np.ndarray | float, *, axes: Sequence[str] = (),
              coords: Sequence[Sequence[Any]] = (), **fields: Any) -> list[dict[str, Any]]:
    """Rows for an array of values, one per element, labelled by named axes.

    Args:
      metric: the metric name of every row.
      values: array of shape (len(coords[0]), len(coords[1]), ...) (a scalar when axes is empty).
      axes: column names of the array's axes, e.g. ("speaker", "listener").
      coords: for each axis, the column value of each index along it.
      **fields: the other columns, constant over the rows.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(axes) != len(coords) or values.ndim != len(axes):
        raise TidyError(f"make_rows({metric!r}): values of shape {values.shape} need one axis "
                        f"name and one coordinate list per dimension; got axes={list(axes)}")
    for axis, coord, size in zip(axes, coords, values.shape):
        if len(coord) != size:
            raise TidyError(f"make_rows({metric!r}): axis {axis!r} has {size} entries but "
                            f"{len(coord)} coordinates")
    rows = []
    for index in np.ndindex(values.shape):
        labels = {axis: coords[i][j] for i, (axis, j) in enumerate(zip(axes, index))}
        rows.append(row(metric=metric, value=float(values[index]), **fields, **labels))
    return rows


def frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A validated DataFrame from rows (an empty table keeps the columns and dtypes)."""
    df = pd.DataFrame(list(rows), columns=list(COLUMNS))
    return validate(df.astype(COLUMNS))


def with_keys(df: pd.DataFrame, **keys: Any) -> pd.DataFrame:
    """A copy of `df` with constant columns (dataset, setting, seed, ...) set; validated."""
    unknown = sorted(set(keys) - set(COLUMNS))
    if unknown:
        raise TidyError(f"unknown tidy column(s) {unknown}")
    df = df.copy()
    for key, value in keys.items():
        df[key] = value
    return validate(df.astype(COLUMNS))


def validate(df: pd.DataFrame) -> pd.DataFrame:
    """Returns `df` if it has exactly the tidy columns with usable values; else raises TidyError.

    Checks: no missing or extra column, integer columns integral, no NaN in key columns, `stage` and
    `split` within their vocabularies.
    """
    missing = [c for c in COLUMNS if c not in df.columns]
    extra = [c for c in df.columns if c not in COLUMNS]
    if missing or extra:
        raise TidyError(f"tidy table columns differ from DESIGN.md: missing {missing}, "
                        f"extra {extra}")
    for column, dtype in COLUMNS.items():
        if column == "value":
            continue
        if df[column].isna().any():
            raise TidyError(f"tidy column {column!r} has missing values")
        if dtype == "int64" and not pd.api.types.is_integer_dtype(df[column]):
            raise TidyError(f"tidy column {column!r} must be integer, got {df[column].dtype}")
    bad_stage = sorted(set(df["stage"]) - set(STAGES))
    if bad_stage:
        raise TidyError(f"tidy column 'stage' has unknown values {bad_stage}; expected {STAGES}")
    bad_split = sorted(set(df["split"]) - set(SPLITS))
    if bad_split:
        raise TidyError(f"tidy column 'split' has unknown values {bad_split}; expected {SPLITS}")
    return df[list(COLUMNS)]


def write_table(df: pd.DataFrame, path: str | os.PathLike, *, config: Any = None,
                **extra: Any) -> Path:
    """Writes `path` (.parquet) and the same stem `.csv`, atomically, plus `path`'s provenance.

    Returns the Parquet path. `config` is the config slice recorded in the provenance.
    """
    path = Path(path)
    if path.suffix != ".parquet":
        raise TidyError(f"tidy table path must end in .parquet: {path}")
    df = validate(df.astype(COLUMNS)).reset_index(drop=True)
    with provenance.atomic_path(path, suffix=".parquet") as tmp:
        df.to_parquet(tmp, index=False)
    with provenance.atomic_path(path.with_suffix(".csv"), suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    provenance.write_provenance(path, config, rows=len(df), **extra)
    log.info("wrote %d rows to %s (+ .csv)", len(df), path)
    return path


def read_tables(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """Concatenates tidy Parquet tables, validating each (the error names the offending file)."""
    frames = []
    for path in paths:
        try:
            df = pd.read_parquet(path)
        except (OSError, ValueError) as err:  # pyarrow's errors derive from these
            raise TidyError(f"{path}: unreadable Parquet table: {err}") from err
        try:
            frames.append(validate(df.astype({c: t for c, t in COLUMNS.items() if c in df})))
        except (TidyError, ValueError, TypeError) as err:
            raise TidyError(f"{path}: {err}") from err
    if not frames:
        return frame([])
    return pd.concat(frames, ignore_index=True)
