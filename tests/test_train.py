"""The training loop: it learns, resumes bit-identically, streams like it gathers, writes outputs."""

import json

import jax
import numpy as np
import pandas as pd
import pytest

from emcom import checkpoint, progress, train
from emcom.progress import is_cost


def toy_features(n, d=32, seed=0):
    """Features = random nonlinear map of 4 discrete attributes (4 values each) + noise."""
    rng = np.random.default_rng(seed)
    onehot = np.eye(4)[rng.integers(0, 4, (n, 4))].reshape(n, 16)
    w1 = np.random.default_rng(123).normal(size=(16, 64))
    w2 = np.random.default_rng(124).normal(size=(64, d))
    return (np.tanh(onehot @ w1) @ w2 + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


def tiny(steps=40, **training):
    return {"game": {"num_candidates": 8, "vocab_size": 6, "message_length": 3},
            "speaker": {"hidden_size": 16, "embed_dim": 4},
            "listener": {"hidden_size": 16, "embed_dim": 4, "proj_dim": 8},
            "optimizer": {"learning_rate": 3e-3},
            "training": {"steps": steps, "batch_size": 16, "steps_per_call": 5, "log_every": 5,
                         "eval_every": 20, "checkpoint_every": 10, "eval_candidates": [4, 16],
                         "eval_batches": 2, **training}}


def leaves(state):
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(state)]


def test_one_pair_learns_well_above_chance():
    # Observed (seed 0): train acc 0.12 @50, 0.32 @300, 0.55 @600; valid greedy acc@16 0.48 @100,
    # 0.62 @300, 0.77 @600, acc@64 0.44 @600. Chance: 1/16 and 1/64.
    cfg = {"game": {"num_candidates": 16, "vocab_size": 8, "message_length": 4},
           "speaker": {"hidden_size": 64}, "listener": {"hidden_size": 64, "proj_dim": 32},
           "optimizer": {"learning_rate": 3e-3},
           "training": {"steps": 600, "batch_size": 64, "steps_per_call": 50, "log_every": 50,
                        "eval_every": 600, "checkpoint_every": 600, "eval_candidates": [16, 64],
                        "eval_batches": 2}}
    result = train.train(cfg, toy_features(2048), toy_features(256, seed=1))
    df = pd.DataFrame(result.rows)
    acc = df[df.metric == "train_accuracy"].set_index("step")["value"]
    assert acc.loc[600] > 0.35 > 5 * (1 / 16)
    assert acc.loc[600] > acc.loc[50] + 0.2
    valid = df[(df.metric == "accuracy") & (df.split == "valid")].set_index("candidates")["value"]
    assert valid.loc[16] > 0.5 and valid.loc[64] > 0.2  # 8x and 13x chance


def test_resume_after_interruption_is_bit_identical(tmp_path):
    x, v = toy_features(160), toy_features(48, seed=1)
    cfg = tiny(40)
    full = train.train(cfg, x, v, None, tmp_path / "full")

    class Killed(Exception):
        pass

    def kill(step, state):
        if step == 25:  # between the checkpoints of steps 20 and 30
            raise Killed

    with pytest.raises(Killed):
        train.train(cfg, x, v, None, tmp_path / "cut", callback=kill)
    cut = checkpoint.load(tmp_path / "cut" / "latest.npz")
    assert cut.step == 20
    resumed = train.train(cfg, x, v, None, tmp_path / "cut")

    def learning(meta):  # the time in updates differs between runs; it is carried on resume
        return {k: v for k, v in meta.items() if k != "train_seconds"}

    for name in ("latest.npz", "best.npz"):
        a, b = checkpoint.load(tmp_path / "full" / name), checkpoint.load(tmp_path / "cut" / name)
        assert a.step == b.step and learning(a.meta) == learning(b.meta)
        for u, w in zip(leaves(a.state), leaves(b.state)):
            np.testing.assert_array_equal(u, w)
    assert checkpoint.load(tmp_path / "cut" / "latest.npz").meta["train_seconds"] > \
        cut.meta["train_seconds"] > 0
    for u, w in zip(leaves(full.state), leaves(resumed.state)):
        np.testing.assert_array_equal(u, w)

    def table(rows):
        df = pd.DataFrame(rows)
        return df[~df.metric.map(is_cost)].reset_index(drop=True)

    pd.testing.assert_frame_equal(table(full.rows), table(resumed.rows))
    progress = [json.loads(s) for s in (tmp_path / "cut" / "train_progress.jsonl").open()]
    pd.testing.assert_frame_equal(table(progress), table(full.rows))


def test_streamed_batches_equal_on_device_batches():
    x = toy_features(64)
    cfg = tiny(12, eval_every=12, checkpoint_every=12)
    on_device = train.train(cfg, x)
    streamed = train.train(cfg, x, max_device_bytes=0)
    for u, w in zip(leaves(on_device.state), leaves(streamed.state)):
        np.testing.assert_array_equal(u, w)


def test_batch_schedule_is_a_permutation_per_epoch():
    s = train.BatchSchedule(seed=3, num_rows=50, batch_size=8)
    idx = s.indices(0, 12)  # 6 steps per epoch
    for epoch in (idx[:6], idx[6:]):
        assert len(set(epoch.ravel())) == 48
    assert not np.array_equal(idx[:6], idx[6:])
    np.testing.assert_array_equal(s.indices(7, 2), idx[7:9])


def test_run_stage_writes_checkpoints_and_tidy_table(tmp_path):
    from emcom.data import synthetic

    synthetic.write(tmp_path / "data", num_identities=40, images_per_identity=10, feature_dim=16,
                    hidden_dim=32, official_test_identities=4)
    out = tmp_path / "run"
    df = train.run(tiny(20), tmp_path / "data", out)
    for name in ("latest.npz", "best.npz", "latest.npz.provenance.json", "resume.json"):
        assert (out / name).exists(), name
    assert set(df.stage) == {"train"} and {"train", "valid", "test"} <= set(df.split)
    acc = df[(df.metric == "accuracy") & (df.split == "test")]
    assert sorted(acc.candidates.unique()) == [4, 16] and sorted(acc.step.unique()) == [20]
    assert set(progress.TRAIN_METRICS[:5]) <= set(df.metric)
    assert checkpoint.load(out / "latest.npz").step == 20


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="float32"):
        train.train(tiny(5), np.zeros((40, 4), np.float64))
    with pytest.raises(ValueError, match="batch_size"):
        train.train(tiny(5), toy_features(10))
    with pytest.raises(ValueError, match="eval_candidates"):
        train.train(tiny(5), toy_features(40), toy_features(8))


def cost_free(rows):
    df = pd.DataFrame(rows)
    return df[~df.metric.map(is_cost)].reset_index(drop=True)


def seed_configs(batching="map", steps=40):
    return [{**tiny(steps, seeds_per_job=2, seeds_batching=batching), "seed": s} for s in (3, 4)]


def assert_same_runs(a, b):
    for ra, rb in zip(a, b):
        for u, w in zip(leaves(ra.state), leaves(rb.state)):
            np.testing.assert_array_equal(u, w)
        pd.testing.assert_frame_equal(cost_free(ra.rows), cost_free(rb.rows))
        assert (ra.best_step, ra.best_valid_loss) == (rb.best_step, rb.best_valid_loss)


def test_seeds_of_one_job_equal_separate_runs_bit_for_bit(tmp_path):
    x, v = toy_features(160), toy_features(48, seed=1)
    cfgs = seed_configs("map")
    together = train.train_seeds(cfgs, x, v, None, [tmp_path / "s3", tmp_path / "s4"])
    alone = [train.train(c, x, v, None, tmp_path / f"alone{i}") for i, c in enumerate(cfgs)]
    assert_same_runs(together, alone)
    assert not all(np.array_equal(u, w) for u, w in zip(leaves(together[0].state),
                                                        leaves(together[1].state)))
    for i, seed in enumerate((3, 4)):
        a = checkpoint.load(tmp_path / f"s{seed}" / "best.npz")
        b = checkpoint.load(tmp_path / f"alone{i}" / "best.npz")
        assert a.step == b.step and a.config.seed == seed
        for u, w in zip(leaves(a.state), leaves(b.state)):
            np.testing.assert_array_equal(u, w)


def test_vmapped_seeds_equal_separate_runs_to_round_off():
    x = toy_features(160)
    cfgs = seed_configs("vmap", steps=20)
    together = train.train_seeds(cfgs, x)
    for r, c in zip(together, cfgs):
        alone = train.train(c, x)
        for u, w in zip(leaves(r.state), leaves(alone.state)):
            np.testing.assert_allclose(u, w, rtol=1e-4, atol=1e-5)


def test_seeds_resume_together_after_a_kill_between_their_checkpoints(tmp_path):
    x, v = toy_features(160), toy_features(48, seed=1)
    cfgs = seed_configs("map")
    full = train.train_seeds(cfgs, x, v, None, [tmp_path / "full3", tmp_path / "full4"])

    class Killed(Exception):
        pass

    def kill_at(at):
        def kill(step, state):
            if step == at:
                raise Killed
        return kill

    outs = [tmp_path / "cut3", tmp_path / "cut4"]
    with pytest.raises(Killed):
        train.train_seeds(cfgs, x, v, None, outs, callback=kill_at(25))
    # Seed 3 one checkpoint ahead, as if the job had died between the two runs' saves of step 30.
    with pytest.raises(Killed):
        train.train(cfgs[0], x, v, None, outs[0], callback=kill_at(35))
    assert [checkpoint.load(o / "latest.npz").step for o in outs] == [30, 20]
    with pytest.raises(Killed):  # both resume at 20; killed again before the next checkpoint
        train.train_seeds(cfgs, x, v, None, outs, callback=kill_at(25))
    # Seed 3's generation at 20 became its resume point, so a further death between the runs'
    # saves of step 30 would find step 20 again as its previous generation.
    assert [checkpoint.load(o / "latest.npz").step for o in outs] == [20, 20]
    resumed = train.train_seeds(cfgs, x, v, None, outs)
    assert_same_runs(resumed, full)


def test_a_job_trains_one_setting_only():
    with pytest.raises(ValueError, match="differ in their seed only"):
        train.train_seeds([tiny(5), {**tiny(5, steps_per_call=1), "seed": 1}], toy_features(40))
    with pytest.raises(ValueError, match="distinct seeds"):
        train.train_seeds([tiny(5), tiny(5)], toy_features(40))
