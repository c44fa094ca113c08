"""Data parallelism: 4 simulated CPU devices give the losses of 1 device (in a subprocess)."""

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, jax, numpy as np
    from emcom import train
    assert jax.local_device_count() == 4, jax.devices()
    x = np.random.default_rng(0).normal(size=(64, 12)).astype(np.float32)
    cfg = {"game": {"num_candidates": 8, "vocab_size": 6, "message_length": 3},
           "speaker": {"hidden_size": 16}, "listener": {"hidden_size": 16, "proj_dim": 8},
           "population": {"num_speakers": 2, "num_listeners": 2},
           "optimizer": {"learning_rate": 3e-3},
           "training": {"steps": 10, "batch_size": 16, "steps_per_call": 5, "log_every": 5,
                        "eval_every": 10, "checkpoint_every": 10, "eval_candidates": [4]}}
    out = {}
    for n in (1, 4):
        r = train.train(cfg, x, devices=jax.local_devices()[:n])
        out[n] = [[row["metric"], row["step"], row["value"]] for row in r.rows
                  if row["metric"] in ("speaker_loss", "listener_loss", "train_accuracy")]
        out[f"sharding{n}"] = str(r.state.speakers["speaker/~/adapter"]["w"].sharding)
    print(json.dumps(out))
""")


def test_four_devices_match_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    one, four = out["1"], out["4"]
    assert len(one) == len(four) == 6
    for (m1, s1, v1), (m4, s4, v4) in zip(one, four):
        assert (m1, s1) == (m4, s4)
        assert abs(v1 - v4) <= 1e-4 * max(1.0, abs(v1)), (m1, s1, v1, v4)
    assert "4" in out["sharding4"] or "data" in out["sharding4"]
