"""`python -m emcom.configdoc [SCHEMA] > config/README.md`: the config reference, generated from the
workflow's JSON schema (config/config.schema.yaml), so that every key's type, default and
description has one source. tests/test_configdoc.py fails when config/README.md is stale."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator

import yaml

SCHEMA = Path(__file__).resolve().parent.parent / "config" / "config.schema.yaml"

INTRO = """\
# Config reference

Generated from [`config.schema.yaml`](config.schema.yaml) by
`python -m emcom.configdoc > config/README.md`; do not edit by hand.

`config.yaml` is the embedded default (the whole paper in small, on synthetic data, on a CPU);
`claims.yaml` the settings that can show each of the paper's claims; `paper.yaml` the paper's
experiments on the real data (GPUs). Another config replaces the default with `--configfile` (it is
not merged into it: see the Snakefile). The schema is checked at start (`snakemake.utils.validate`):
every mapping is closed, so a misspelt key fails with its path. What the schema cannot see is
checked when the DAG is built (`rules/common.smk`): merged training configs through
`emcom.config.resolve`, report rows through `emcom.report.resolve_spec`, dataset and setting names,
again naming the key.

A training run's config is the `train:` block, then `train_per_dataset.<dataset>`, then the
experiment's `train`, then its `per_dataset.<dataset>`, then its seed (last wins), over the defaults
below. Which job reruns when a key changes (Snakemake's `params` trigger; each rule receives only
its slice): `datasets.<name>` → that dataset and everything downstream; the training blocks → the
affected runs and everything downstream; `evaluate` → evaluation, transfer and the tables reading
them; `language` → language jobs, Fig. 3; `etl` → ETL jobs, Table 1, Table 7, Fig. 4;
`report.tables.<name>` → that table; `report` → the figures and the claims; `resources` → nothing
(rerun with `--forcerun` if you need to).
"""


def _resolve(node: dict, root: dict) -> dict:
    ref = node.get("$ref")
    if ref:
        target = root
        for part in ref.lstrip("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _type(node: dict, root: dict) -> str:
    node = _resolve(node, root)
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if "const" in node:
        return f"`{node['const']}`"
    kinds = node.get("type")
    if kinds is None and "oneOf" in node:
        return " or ".join(_type(n, root) for n in node["oneOf"])
    kinds = kinds if isinstance(kinds, list) else [kinds] if kinds else ["any"]
    out = []
    for kind in kinds:
        if kind == "array" and isinstance(node.get("items"), dict):
            out.append(f"list of {_type(node['items'], root)}")
        else:
            out.append(str(kind))
    return " or ".join(out)


# Blocks used in several places are described once, in their own section.
SHARED = {"#/$defs/train_overrides": "training keys", "#/$defs/stage_resources": "resource keys"}


def _rows(node: dict, root: dict, prefix: str) -> Iterator[tuple[str, str, str, str]]:
    node = _resolve(node, root)
    for key, child in (node.get("properties") or {}).items():
        shared = SHARED.get(child.get("$ref", ""))
        child = _resolve(child, root)
        dotted = f"{prefix}{key}"
        default = json.dumps(child["default"]) if "default" in child else ""
        text = " ".join(str(child.get("description", "")).split())
        if shared:
            yield dotted, "object", default, f"{text} (the {shared} below)"
            continue
        yield dotted, _type(child, root), default, text
        if child.get("properties"):
            yield from _rows(child, root, f"{dotted}.")
        extra = child.get("additionalProperties")
        if isinstance(extra, dict) and (extra.get("properties") or extra.get("$ref")):
            yield from _rows({"properties": {"<name>": extra}}, root, f"{dotted}.")
        for branch in (child.get("then"), child.get("else")):  # per-source keys of a dataset
            if isinstance(branch, dict) and branch.get("properties"):
                yield from _rows({"properties": {k: v for k, v in branch["properties"].items()
                                                 if v}}, root, f"{dotted}.")


def _table(title: str, node: dict, schema: dict, prefix: str) -> list[str]:
    lines = ["", f"## {title}", "", " ".join(str(node.get("description", "")).split()), "",
             "| key | type | default | description |", "| --- | --- | --- | --- |"]
    sub = dict(node)
    if isinstance(node.get("additionalProperties"), dict):
        sub = {"properties": {"<name>": node["additionalProperties"]}}
    for dotted, kind, default, text in _rows(sub, schema, prefix):
        lines.append(f"| `{dotted}` | {kind} | {f'`{default}`' if default else ''} | "
                     f"{text.replace('|', chr(92) + '|')} |")
    return lines


def render(schema: dict) -> str:
    """The Markdown reference of every key of `schema`, a table per top-level key, then the
    shared blocks."""
    lines = [INTRO]
    for key, node in schema["properties"].items():
        shared = SHARED.get(node.get("$ref", ""))
        node = _resolve(node, schema)
        if shared:
            lines += ["", f"## `{key}`", "", " ".join(str(node.get("description", "")).split())
                      + f" (the {shared} below)"]
            continue
        lines += _table(f"`{key}`", node, schema, f"{key}.")
    for ref, name in SHARED.items():
        lines += _table(name.capitalize(), _resolve({"$ref": ref}, schema), schema, "")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else SCHEMA
    sys.stdout.write(render(yaml.safe_load(path.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
