"""The report spec (`report:` in the workflow config, `docs/report.md`): which settings make which
rows of which table or figure. `resolve_spec` checks it once into a `ReportSpec`; builders read it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

from emcom.names import SPLITS

# Row kinds: the mean over seeds of a setting, its listener-vote ensemble, its best seed.
MEAN, VOTE, BEST = "mean", "vote", "best_of"


class SpecError(ValueError):
    """A report spec that does not follow `docs/report.md`; the message names the dotted key."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of a table: its label, the setting it reads and how (`MEAN`, `VOTE`, `BEST`)."""
    label: str
    setting: str
    kind: str = MEAN


@dataclasses.dataclass(frozen=True)
class ReportSpec:
    """The checked `report:` block. Defaults are the schema's (config/config.schema.yaml)."""
    main_candidates: int = 1024   # evaluation |C| standing for the paper's 1024 (capped by data)
    split: str = "test"           # split of "generalisation"
    robustness: str = "absolute"  # absolute | relative accuracy drop under noise
    etl_split: str | None = None  # split of ETL rows; None = the only one present
    datasets: Mapping[str, str] | None = None  # {name: display label}, column order; None = all
    tables: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    figures: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    claims: Mapping[str, Any] | None = None  # emcom.report.claims_spec; None: no claims table

    def shared(self) -> dict[str, Any]:
        """The keys every table and figure reads (what their provenance records)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("tables", "figures", "claims")}

    def target(self, name: str) -> int:
        """A table's evaluation |C| (its own `main_candidates`, else the spec's)."""
        return self.tables[name].get("main_candidates", self.main_candidates)


SHARED_KEYS = tuple(f.name for f in dataclasses.fields(ReportSpec)
                    if f.name not in ("tables", "figures", "claims"))


def check_shared(spec: Mapping[str, Any]) -> None:
    """Checks the keys of `report:` that every table and figure reads."""
    if not isinstance(spec.get("main_candidates", 1), int) or spec.get("main_candidates", 1) <= 0:
        raise SpecError(f"report.main_candidates must be a positive integer, "
                        f"got {spec['main_candidates']!r}")
    if spec.get("robustness", "absolute") not in ("absolute", "relative"):
        raise SpecError(f"report.robustness must be 'absolute' or 'relative', "
                        f"got {spec['robustness']!r}")
    if spec.get("datasets") is not None and not isinstance(spec["datasets"], Mapping):
        raise SpecError("report.datasets must be a mapping {dataset name: display label}")
    for key, allowed in (("split", SPLITS), ("etl_split", SPLITS + (None,))):
        if key in spec and spec[key] not in allowed:
            raise SpecError(f"report.{key} must be one of {list(allowed)}, got {spec[key]!r}")


def check_entry(entry: Any, where: str, keys: Iterable[str], kinds: set[str],
                settings: set[str] | None, rows_required: bool) -> dict[str, Any]:
    """One table's or figure's entry, checked; row labels become strings (YAML reads `16:` as an
    int, and JSON provenance needs string keys)."""
    entry = entry or {}
    if not isinstance(entry, Mapping) or set(entry) - set(keys):
        raise SpecError(f"{where}: expected a mapping with keys among {sorted(keys)}, got {entry!r}")
    entry = dict(entry)
    if rows_required and "rows" not in entry:
        raise SpecError(f"{where}.rows is required")
    if "rows" in entry:
        parse_rows(entry["rows"], f"{where}.rows", kinds, settings)
        entry["rows"] = {str(k): v for k, v in entry["rows"].items()}
    for panel, rows in (entry.get("panels") or {}).items():
        parse_rows(rows, f"{where}.panels.{panel}", {MEAN}, settings)
    if entry.get("panels"):
        entry["panels"] = {str(p): {str(k): v for k, v in rows.items()}
                           for p, rows in entry["panels"].items()}
    if "datasets" in entry and not (isinstance(entry["datasets"], list) and all(
            isinstance(d, str) for d in entry["datasets"])):
        raise SpecError(f"{where}.datasets must be a list of dataset names")
    if "tasks" in entry and not isinstance(entry["tasks"], Mapping):
        raise SpecError(f"{where}.tasks must be a mapping {{label: metric}}")
    if "main_candidates" in entry and (not isinstance(entry["main_candidates"], int)
                                       or entry["main_candidates"] <= 0):
        raise SpecError(f"{where}.main_candidates must be a positive integer")
    return entry


def parse_rows(rows: Any, where: str, kinds: set[str] = frozenset({MEAN}),
               settings: set[str] | None = None) -> list[Row]:
    """`{label: setting | {vote: setting} | {best_of: setting}}` -> rows, in order."""
    if not isinstance(rows, Mapping) or not rows:
        raise SpecError(f"{where}: expected a non-empty mapping {{row label: setting}}, "
                        f"got {rows!r}")
    out = []
    for label, entry in rows.items():
        if isinstance(entry, str):
            row = Row(str(label), entry, MEAN)
        elif isinstance(entry, Mapping) and len(entry) == 1 and next(iter(entry)) in (VOTE, BEST):
            kind, setting = next(iter(entry.items()))
            row = Row(str(label), str(setting), kind)
        else:
            raise SpecError(f"{where}.{label}: expected a setting name, {{vote: setting}} or "
                            f"{{best_of: setting}}, got {entry!r}")
        if row.kind not in kinds:
            raise SpecError(f"{where}.{label}: row kind {row.kind!r} is not allowed here "
                            f"(allowed: {sorted(kinds)})")
        if settings is not None and row.setting not in settings:
            raise SpecError(f"{where}.{label}: unknown setting {row.setting!r}; the config "
                            f"defines {sorted(settings)}")
        out.append(row)
    return out
