"""What the Snakemake adapters in scripts/ share: importing emcom, logging into the rule's log, and
writing a stage's tidy table with the run's keys.

Snakemake puts this folder on `sys.path` of every `script:`, so every adapter imports this module
first (`from _stage import ...`), which also makes this checkout's emcom importable.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

# Every job is a fresh process that compiles the same few XLA programs (the runs of a setting differ
# only in their seed), and compiling dominates small jobs: share JAX's persistent compilation cache
# between jobs (compiled programs are reused as is, so numbers do not change). Set before jax loads.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.abspath(".snakemake/jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

# Jobs in a conda environment (--sdm conda) have no emcom installed: fall back on this checkout's.
sys.path.append(str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from emcom import tidy  # noqa: E402
from emcom.settings import stage_settings  # noqa: E402


def setup_logging(snakemake: Any) -> logging.Logger:
    """Sends logging, warnings and uncaught exceptions to the rule's `log:` file."""
    logging.basicConfig(
        filename=snakemake.log[0], filemode="w", level=logging.INFO, force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    log = logging.getLogger(f"emcom.rule.{snakemake.rule}")

    def excepthook(kind, value, tb):
        log.critical("rule %s failed", snakemake.rule, exc_info=(kind, value, tb))
        sys.__excepthook__(kind, value, tb)

    sys.excepthook = excepthook
    log.info("rule %s, wildcards %s", snakemake.rule, dict(snakemake.wildcards))
    return log


def write_stage_table(snakemake: Any, df: pd.DataFrame, settings: Any, **provenance: Any) -> None:
    """Writes a stage's tidy rows to `output.table` (+ .csv, + provenance), labelled with the run
    (dataset, setting, seed) and the evaluated dataset as the config names it (`eval_dataset`
    wildcard, else the training dataset; a manifest may name it otherwise)."""
    wc = snakemake.wildcards
    write_run_table(df, snakemake.output.table, settings, wc.dataset, wc.setting, int(wc.seed),
                    wc.get("eval_dataset", wc.dataset), **provenance)


def write_run_table(df: pd.DataFrame, path: str, settings: Any, dataset: str, setting: str,
                    seed: int, eval_dataset: str | None = None, **provenance: Any) -> None:
    """Writes one run's tidy rows to `path` (+ .csv, + provenance), labelled with its keys."""
    df = df.assign(eval_dataset=eval_dataset or dataset)
    df = tidy.with_keys(df, dataset=dataset, setting=setting, seed=seed)
    tidy.write_table(df, path, config=settings, **provenance)


def run_checkpoint_stage(snakemake: Any, stage: str, run: Callable[..., pd.DataFrame],
                         **kwargs: Any) -> None:
    """Runs a per-checkpoint stage `run(settings, checkpoint, data_dir, **kwargs) -> tidy rows` on
    the rule's `input.checkpoint` and `input.manifest`'s folder, and writes its table."""
    log = setup_logging(snakemake)
    settings = stage_settings(stage, snakemake.params.settings)
    data_dir = Path(snakemake.input.manifest).parent
    log.info("%s on %s with settings %s", snakemake.input.checkpoint, data_dir, settings)
    df = run(settings, snakemake.input.checkpoint, data_dir, **kwargs)
    write_stage_table(snakemake, df, settings, checkpoint=str(snakemake.input.checkpoint))


def write_report(snakemake: Any, write: Callable[..., list[Path]], name: str,
                 extra: pd.DataFrame | None = None) -> None:
    """Writes one table or figure `name` with `write(df, spec, out_dir, [name])` (emcom.report's
    write_tables / write_figures) from the rule's tidy tables and `extra` tidy rows, into its
    outputs' folder; fails if a declared output was not written."""
    setup_logging(snakemake)
    out_dir = Path(snakemake.output[0]).parent
    df = tidy.read_tables(snakemake.input)
    if extra is not None and len(extra):
        df = pd.concat([df, extra], ignore_index=True)
    written = write(df, snakemake.params.spec, out_dir, [name])
    expected = {str(p) for p in snakemake.output if not str(p).endswith(".provenance.json")}
    missing = sorted(expected - {str(p) for p in written})
    if missing:
        raise RuntimeError(f"emcom.report wrote no {missing} for {name!r}")
