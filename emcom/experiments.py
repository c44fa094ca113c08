"""The `experiments:` block of the workflow config: grids of settings written once.

An experiment with a `grid: {dotted.training.key: [values...], ...}` stands for one setting per
point of the grid's product, named `<name>+<leaf><value>+...` (e.g. `sweep+kl_coef0.5+entropy_coef0`)
and trained with its `train` block plus the point's values. `expand` returns the experiments with
every grid replaced by its points, in order; errors name the key.
"""

from __future__ import annotations

import copy
import itertools
import re
from typing import Any, Mapping

from emcom.config import ConfigError, check_overrides

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")  # the schema's setting names


def _nested(dotted: str, value: Any) -> dict:
    out: dict = {}
    node = out
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return out


def _merge(base: dict, new: Mapping) -> dict:
    out = copy.deepcopy(base)
    for key, value in new.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, Mapping) else value
    return out


def _label(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else f"{value:g}" if isinstance(
        value, float) else str(value)


def grid_points(name: str, grid: Mapping[str, list]) -> list[tuple[str, dict]]:
    """(setting name, training overrides) of every point of `grid`, in product order."""
    where = f"experiments.{name}.grid"
    if not isinstance(grid, Mapping) or not grid:
        raise ConfigError(f"{where} must be a non-empty mapping {{dotted.key: [values]}}")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.{key} must be a non-empty list of values, got {values!r}")
        for value in values:
            try:
                check_overrides(_nested(key, value))
            except ConfigError as e:
                raise ConfigError(f"{where}.{key}: {e}") from None
    leaves = [key.rsplit(".", 1)[-1] for key in grid]
    points = []
    for values in itertools.product(*grid.values()):
        label = "+".join(f"{leaf}{_label(v)}" for leaf, v in zip(leaves, values))
        setting = f"{name}+{label}"
        if not NAME.match(setting):
            raise ConfigError(f"{where}: the point {dict(zip(grid, values))} makes the setting "
                              f"name {setting!r}, which is not a valid name")
        overrides: dict = {}
        for key, value in zip(grid, values):
            overrides = _merge(overrides, _nested(key, value))
        points.append((setting, overrides))
    return points


def expand(experiments: Mapping[str, Mapping]) -> dict[str, dict]:
    """The experiments with every `grid` expanded into its points (see the module docstring)."""
    out: dict[str, dict] = {}
    for name, exp in experiments.items():
        if "grid" not in exp:
            out[name] = dict(exp)
            continue
        rest = {k: v for k, v in exp.items() if k != "grid"}
        for setting, overrides in grid_points(name, exp["grid"]):
            if setting in experiments or setting in out:
                raise ConfigError(f"experiments.{name}.grid: setting {setting!r} exists already")
            out[setting] = {**copy.deepcopy(rest),
                            "train": _merge(rest.get("train", {}), overrides),
                            "grid_of": name}
    return out
