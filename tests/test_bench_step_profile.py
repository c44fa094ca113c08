"""`python -m emcom.bench step_profile` at the tiny config's sizes: every part of a step timed,
with FLOPs from the analytic count where a part has matmuls, and the trainer's step last."""

import json

import yaml
from conftest import TINY

from emcom import config
from emcom.bench import flops, step_profile


def test_step_profile_times_every_part_against_the_analytic_flops(capsys):
    assert step_profile.main(["--config", str(TINY), "--dim", "16", "--repeats", "2",
                              "--steps-per-call", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = ["speaker rollout", "speaker rollout, grad", "EMA target", "listener message",
             "listener message, grad", "listener candidates, grad", "pair loss", "pair gradient",
             "Adam, both agents", "training step"]
    rows = [json.loads(line) for line in out[:len(names)]]
    assert [r["part"] for r in rows] == names
    assert all(r["ms"] > 0 for r in rows) and rows[-1]["fraction_of_step"] == 1.0
    parts = {r["part"]: r for r in rows}
    sizes = yaml.safe_load(TINY.read_text())["train"]
    total = flops.config_flops(config.resolve(sizes), 16)["total"]
    assert parts["training step"]["gflop"] == parts["pair gradient"]["gflop"] == total / 1e9
    # forward-only parts are a third of their gradient's count (backward = 2x forward)
    forward, both = parts["speaker rollout"]["gflop"], parts["speaker rollout, grad"]["gflop"]
    assert abs(3 * forward - both) < 1e-12
    assert parts["pair loss"]["gflop"] is None and parts["Adam, both agents"]["gflop"] == 0
    summary = json.loads(out[len(names)])
    assert summary["sizes"] == str(TINY) and summary["compile_s"] > 0
    table = out[len(names) + 1:]
    assert len(table) == 2 + len(names) and table[-1].startswith("| training step | ")
