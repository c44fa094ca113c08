"""`python -m emcom.report {tables,figures} IN.parquet... --spec SPEC.yaml --out DIR [--only NAME]`
`python -m emcom.report readme CLAIMS.csv [--readme README.md] [--check]`
`python -m emcom.report diagnose IN.parquet... --spec SPEC.yaml`.

Reads and concatenates tidy tables, writes the paper's tables or figures into DIR and prints the
paths written. SPEC is a YAML/JSON file holding the report spec, either bare or under `report:`
(so the workflow's `config/config.yaml` itself works). `readme` rewrites the README's claims block
(between `<!-- claims:begin -->` and `<!-- claims:end -->`) from a run's claims.csv, or with
`--check` fails if it differs. `diagnose` prints why the claims of SPEC's `report.claims` are
inconclusive (`emcom.report.diagnose`): seeds each comparison needs, and late accuracy slopes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd
import yaml

from emcom.report import write_figures, write_tables
from emcom.report.claims import update_readme
from emcom.report.claims_spec import resolve_claims
from emcom.report.diagnose import comparisons, late_rise, spec_settings, to_markdown, trends
from emcom.tidy import read_tables


def readme(argv: list[str]) -> list[Path]:
    parser = argparse.ArgumentParser(prog="python -m emcom.report readme")
    parser.add_argument("claims", type=Path, help="a run's results/report/claims.csv")
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--check", action="store_true", help="fail if the README differs")
    args = parser.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    new = update_readme(text, pd.read_csv(args.claims, keep_default_na=False,
                                          na_values={"value": [""], "p": [""]}))
    if args.check:
        if new != text:
            raise SystemExit(f"{args.readme}: the claims block differs from {args.claims}; run "
                             f"python -m emcom.report readme {args.claims}")
        return []
    args.readme.write_text(new, encoding="utf-8")
    print(args.readme)
    return [args.readme]


def diagnose(argv: list[str]) -> list[Path]:
    parser = argparse.ArgumentParser(prog="python -m emcom.report diagnose")
    parser.add_argument("inputs", nargs="+", type=Path, help="tidy tables (.parquet)")
    parser.add_argument("--spec", type=Path, required=True, help="a config with report.claims")
    parser.add_argument("--fraction", type=float, default=0.25,
                        help="the last fraction of training the slopes are fitted on")
    args = parser.parse_args(argv)
    spec = yaml.safe_load(args.spec.read_text(encoding="utf-8")) or {}
    spec = (spec.get("report", spec) or {}).get("claims") or {}
    df = read_tables(args.inputs)
    claims = resolve_claims(spec)
    rise = late_rise(df, spec_settings(claims), claims["candidates"], fraction=args.fraction)
    print(to_markdown(comparisons(df, claims), trends(df, claims), rise), end="")
    return []


def main(argv: list[str] | None = None) -> list[Path]:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["readme"]:
        return readme(argv[1:])
    if argv[:1] == ["diagnose"]:
        return diagnose(argv[1:])
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
