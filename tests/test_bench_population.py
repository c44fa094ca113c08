"""`python -m emcom.bench population` at the tiny config's sizes: one JSON object per population
size with consistent figures, the paper's Table 5 beside it, and the Markdown table of the same."""

import json

from conftest import TINY

from emcom.bench import population
from emcom.report.cost_table import PAPER_V100


def test_population_benchmark_prints_each_size_and_the_papers_figures(capsys):
    assert population.main(["--pairs", "2,1", "--config", str(TINY), "--dim", "16", "--rows", "64",
                            "--steps", "2", "--steps-per-call", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    one, two = (json.loads(line) for line in out[:2])
    assert [one["pairs"], two["pairs"]] == [1, 2]  # ascending, whatever the order asked
    for r in (one, two):
        assert r["update"] == "vectorised" and r["compile_s"] > 0 and r["step_ms"] > 0
        assert r["sizes"] == str(TINY) and r["batch_size"] == 16  # the tiny config's batch
        assert abs(r["pair_updates_per_s"] * r["step_ms"] / 1000 - r["pairs"]) < 1e-9
        assert r["load"]["wall_s"] > 0
    # Two pairs hold two agents of each kind (and their Adam moments): more memory than one.
    assert two["step_memory_gib"] > one["step_memory_gib"] > 0
    memory, step_ms, _ = PAPER_V100["ImageNet"][1]
    assert (one["paper_v100_memory_gib"], one["paper_v100_step_ms"]) == (memory, step_ms)
    assert two["paper_v100_step_ms"] is None  # the paper measured N = 1, 10, 50
    table = out[2:]
    assert table[0].startswith("| pairs | step (ms) | vs 1 pair |") and len(table) == 4
    assert table[2].startswith("| 1 | ") and "| 1.00x |" in table[2]
    assert table[3].startswith("| 2 | ") and table[3].endswith("| n/a | n/a |")
    assert len({line.count("|") for line in table}) == 1


def test_a_size_that_does_not_fit_is_reported_as_skipped_not_run(capsys, monkeypatch):
    monkeypatch.setattr(population, "available_bytes", lambda device: 1)
    assert population.main(["--pairs", "1", "--config", str(TINY), "--dim", "16", "--rows", "64",
                            "--steps", "1", "--steps-per-call", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    result = json.loads(out[0])
    assert "step_ms" not in result and "GiB, more than the 0.0 GiB available" in result["skipped"]
    assert out[3].startswith("| 1 | skipped: the compiled update needs ")
    assert out[3].count("|") == out[1].count("|")  # as many columns as the header
