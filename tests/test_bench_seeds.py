"""`python -m emcom.bench seeds` at the tiny config's sizes: one JSON object per (seeds, batching)
with consistent figures, and the Markdown table of the same."""

import json

import pytest
from conftest import TINY

from emcom.bench import seeds


def test_seeds_benchmark_prints_each_group_and_its_gain_over_one_seed(capsys):
    assert seeds.main(["--seeds", "2,1", "--config", str(TINY), "--dim", "16", "--rows", "64",
                       "--steps", "2", "--steps-per-call", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    results = [json.loads(line) for line in out[:3]]
    assert [(r["seeds"], r["batching"]) for r in results] == [(1, "map"), (2, "map"), (2, "vmap")]
    for r in results:
        assert r["compile_s"] > 0 and r["batch_size"] == 16 and r["pairs"] == 1
        assert r["run_steps_per_s"] * r["step_ms"] / 1000 == pytest.approx(r["seeds"])
    assert results[1]["memory_gib"] > results[0]["memory_gib"] > 0  # two runs' states
    table = out[3:]
    assert table[0].startswith("| seeds | batching |") and len(table) == 5
    assert table[2].startswith("| 1 | map | ") and "| 1.00x |" in table[2]
    assert len({line.count("|") for line in table}) == 1


def test_an_unknown_batching_is_named():
    with pytest.raises(SystemExit):
        seeds.main(["--batching", "pmap", "--config", str(TINY)])
