"""`python -m emcom.bench lstm` at tiny sizes: both LSTMs timed on the same inputs, their
gradients equal, and the analytic FLOPs of each size."""

import json

import jax

from emcom.bench import lstm


def test_lstm_benchmark_times_both_versions_and_compares_their_gradients(capsys):
    assert lstm.main(["--batch", "8", "--length", "3", "--repeats", "2", "--scale", "0.05"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    rows, summary = out[:-1], out[-1]
    assert [r["lstm"] for r in rows] == list(lstm.SIZES)
    for row in rows:
        hidden, embed = row["hidden"], row["embed"]
        assert hidden == round(lstm.SIZES[row["lstm"]][0] * 0.05)
        assert row["gflop"] * 1e9 == 3 * 3 * 2 * 8 * (embed + hidden) * 4 * hidden
        assert row["haiku_ms"] > 0 and row["emcom_ms"] > 0
        assert row["ratio"] == row["emcom_ms"] / row["haiku_ms"]
        assert row["max_relative_grad_diff"] < 1e-5
    assert summary["backend"] == jax.default_backend() and summary["wall_s"] > 0
