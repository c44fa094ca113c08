"""`python -m emcom.report {tables,figures} IN.parquet... --spec SPEC.yaml --out DIR [--only NAME]`.

Reads and concatenates tidy tables, writes the paper's tables or figures into DIR and prints the
paths written. SPEC is a YAML/JSON file holding the report spec, either bare or under `report:`
(so the workflow's `config/config.yaml` itself works).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import yaml

from emcom.report import write_figures, write_tables
from emcom.tidy import read_tables


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(prog="python -m emcom.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["tables", "figures"])
    parser.add_argument("inputs", nargs="+", type=Path, help="tidy tables (.parquet)")
    parser.add_argument("--spec", type=Path, help="report spec (YAML/JSON); default: defaults")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--only", action="append", help="a table/figure name (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    spec = None
    if args.spec is not None:
        spec = yaml.safe_load(args.spec.read_text(encoding="utf-8")) or {}
        if isinstance(spec, dict) and "report" in spec:
            spec = spec["report"]
    df = read_tables(args.inputs)
    write = write_tables if args.what == "tables" else write_figures
    paths = write(df, spec, args.out, args.only)
    for path in paths:
        print(path)
    return paths


if __name__ == "__main__":
    main()
