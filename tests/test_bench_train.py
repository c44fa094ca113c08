"""`python -m emcom.bench train`: its options and one small run's record."""

from __future__ import annotations

import json

from emcom.bench import train as bench_train


def test_paper_keeps_the_step_counts_given():
    paper = bench_train.parse_args(["--paper"])
    assert (paper.batch_size, paper.dim, paper.pairs) == (1024, 2048, "1")
    assert (paper.steps, paper.steps_per_call, paper.loop_steps) == (4, 2, 2)
    given = bench_train.parse_args(["--paper", "--steps", "20", "--steps-per-call", "10"])
    assert (given.steps, given.steps_per_call, given.loop_steps) == (20, 10, 2)
    plain = bench_train.parse_args([])
    assert (plain.steps, plain.steps_per_call, plain.loop_steps) == (20, 10, 4)


def test_small_run_prints_its_timing_and_flops(capsys):
    assert bench_train.main([
        "--pairs", "2", "--batch-size", "8", "--dim", "16", "--rows", "64", "--steps", "4",
        "--steps-per-call", "2", "--loop-steps", "1", "--speaker-hidden", "8",
        "--listener-hidden", "8", "--proj-dim", "8"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["pairs"], row["steps"], row["steps_per_call"]) == (2, 4, 2)
    assert row["compile_s"] > 0 and row["vectorised_s_per_step"] > 0 and row["loop_s_per_step"] > 0
    parts = sum(row["analytic_gflop_breakdown"].values())  # each rounded to 4 digits
    assert abs(row["analytic_gflop_per_step"] - parts) <= 1e-3 * parts
    assert row["vectorised_pair_updates_per_s"] == 2 / row["vectorised_s_per_step"]
