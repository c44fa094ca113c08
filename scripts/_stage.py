"""What the Snakemake adapters in scripts/ share: logging into the rule's log, the run's keys.

Snakemake puts this folder on `sys.path` of every `script:`, so the adapters import it by name.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

import pandas as pd

# Every job is a fresh process that compiles the same few XLA programs (the runs of a setting differ
# only in their seed), and compiling dominates small jobs: share JAX's persistent compilation cache
# between jobs (compiled programs are reused as is, so numbers do not change). Set before jax loads.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.abspath(".snakemake/jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

# Jobs in a conda environment (--sdm conda) have no emcom installed: fall back on this checkout's.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from emcom import checkpoint, tidy  # noqa: E402


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


def run_keys(snakemake: Any) -> dict[str, Any]:
    """The tidy-table keys a library `run` leaves to the workflow: dataset, setting, seed."""
    wc = snakemake.wildcards
    return {"dataset": wc.dataset, "setting": wc.setting, "seed": int(wc.seed)}


def run_checkpoint_stage(snakemake: Any, run: Callable[..., pd.DataFrame], **kwargs: Any) -> None:
    """Runs a per-checkpoint stage `run(checkpoint, data_dir, settings, **kwargs) -> tidy rows` on
    the rule's `input.checkpoint` and `input.manifest`'s folder, and writes `output.table` (+ .csv,
    + provenance) with the run's keys and the evaluated dataset (`eval_dataset` wildcard, else the
    training dataset)."""
    log = setup_logging(snakemake)
    settings = snakemake.params.settings
    data_dir = Path(snakemake.input.manifest).parent
    ckpt = checkpoint.load(snakemake.input.checkpoint)
    log.info("%s on %s with settings %s", snakemake.input.checkpoint, data_dir, settings)
    df = run(ckpt, data_dir, settings, **kwargs)
    # the config's dataset name, which the dataset column uses too (a manifest may name it otherwise)
    df = df.assign(eval_dataset=snakemake.wildcards.get("eval_dataset", snakemake.wildcards.dataset))
    tidy.write_table(tidy.with_keys(df, **run_keys(snakemake)), snakemake.output.table,
                     config=settings, checkpoint=str(snakemake.input.checkpoint))


def write_report(snakemake: Any, write: Callable[..., list[Path]], name: str) -> None:
    """Writes one table or figure `name` with `write(df, spec, out_dir, [name])` (emcom.report's
    write_tables / write_figures) from the rule's tidy tables, into its outputs' folder; fails if
    a declared output was not written."""
    setup_logging(snakemake)
    out_dir = Path(snakemake.output[0]).parent
    written = write(tidy.read_tables(snakemake.input), snakemake.params.spec, out_dir, [name])
    expected = {str(p) for p in snakemake.output if not str(p).endswith(".provenance.json")}
    missing = sorted(expected - {str(p) for p in written})
    if missing:
        raise RuntimeError(f"emcom.report wrote no {missing} for {name!r}")
