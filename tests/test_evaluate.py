"""Evaluation: P x P pairs, vote, robustness, |C| capping, splits, zero-shot transfer.

The protocol is checked exactly with hand-made agents whose accuracies are known; `run` is checked
end to end on a tiny real checkpoint and a tiny dataset. `tiny_dataset` and `tiny_checkpoint` are
shared with test_etl.py and test_metrics.py.
"""

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest

from emcom import agents, checkpoint, config, evaluate, population, tidy
from emcom.data import arrow
from emcom.settings import stage_settings

TINY = {
    "game": {"vocab_size": 5, "message_length": 4, "num_candidates": -1},
    "speaker": {"hidden_size": 16, "embed_dim": 4},
    "listener": {"hidden_size": 16, "embed_dim": 4, "proj_dim": 16},
    "population": {"num_speakers": 3, "num_listeners": 3},
    "training": {"batch_size": 32},
}


def tiny_dataset(root, name="tiny", dim=8, sizes=None, attributes=True, seed=0):
    """A prepared dataset folder: Gaussian logits, 4 classes, 2 attributes tied to the inputs."""
    sizes = sizes or {"train": 96, "valid": 40, "test": 48}
    rng = np.random.default_rng(seed)
    out = root / name
    out.mkdir(parents=True)
    names = ["Smiling", "Young"] if attributes else None
    for split, n in sizes.items():
        logits = rng.normal(size=(n, dim)).astype(np.float32)
        labels = (logits[:, 0] > 0).astype(np.int64) * 2 + (logits[:, 1] > 0)
        attrs = (logits[:, 2:4] > 0).astype(np.uint8) if attributes else None
        arrow.write_split(out / f"{split}.arrow", logits, labels, np.arange(n), attrs, names)
    manifest = {"name": name, "feature_dim": dim, "num_classes": 4, "splits": sizes,
                "attribute_names": names, "landmark_names": None, "source": {}, "versions": {}}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def tiny_checkpoint(path, dim=8, seed=0, **overrides):
    """A checkpoint of a freshly initialised tiny population (3 speakers, 3 listeners)."""
    cfg = config.resolve({**TINY, "seed": seed, **overrides})
    state = population.init_state(cfg, agents.make_speaker(cfg), agents.make_listener(cfg), dim)
    return checkpoint.save(path, state, cfg)


# Hand-made agents on 16-d inputs whose signs are distinct codes and magnitudes lie in [1, 2]:
# the "good" speaker says the 16 signs; the good listener scores cos(+-1 message, x), which is
# largest for the target; a "mute" speaker (gain 0) always says the same message; a "deaf"
# listener (gain 0) scores every candidate 0, a tie that loses.
def _signs_speaker():
    def greedy(params, x):
        return jnp.where(params["gain"] > 0, (x > 0).astype(jnp.int32), 0)
    return agents.Speaker(None, None, None, greedy, None, None)


def _signs_listener():
    def encode_message(params, message):
        return (2.0 * message - 1.0) * params["gain"]
    return agents.Listener(None, encode_message, lambda params, x: x, None, 0.1)


def _sign_inputs(n, rng):
    codes = rng.choice(1 << 16, size=n, replace=False)
    bits = (codes[:, None] >> np.arange(16)) & 1
    return ((2 * bits - 1) * rng.uniform(1, 2, size=(n, 16))).astype(np.float32)


SETTINGS = stage_settings("evaluate", {"candidates": [4, 16, 64, 1000], "epochs": 3})


def test_pairs_vote_and_noise_on_known_agents():
    x = _sign_inputs(256, np.random.default_rng(0))
    speakers = {"gain": jnp.array([1.0, 0.0])}   # good, mute
    listeners = {"gain": jnp.array([1.0, 0.0])}  # good, deaf
    candidates, acc = evaluate.evaluate_split(_signs_speaker(), _signs_listener(), speakers,
                                              listeners, x, SETTINGS)
    assert candidates == [4, 16, 64, 256]  # 1000 capped by the 256 examples
    pairs = acc["accuracy"]  # (K, speaker, listener)
    np.testing.assert_array_equal(pairs[:, 0, 0], 1.0)
    np.testing.assert_array_equal(pairs[:, :, 1], 0.0)  # ties lose
    # A mute speaker: the listener picks the same favourite for every target, chance = 1/|C|.
    np.testing.assert_allclose(pairs[:, 1, 0], [1 / 4, 1 / 16, 1 / 64, 1 / 256], atol=0.06)
    assert pairs[-1, 1, 0] == pytest.approx(1 / 256)  # |C| = B: exactly one target wins
    # The vote of a good and a deaf listener follows the good one: better than the pair mean.
    np.testing.assert_array_equal(acc["accuracy_vote"][:, 0], 1.0)
    assert np.all(acc["accuracy_vote"][:, 0] > pairs[:, 0, :].mean(-1))
    # Noise flips some signs: the good pair loses games, more with more candidates.
    noisy = acc["accuracy_noisy"][:, 0, 0]
    assert np.all(noisy < 1.0) and noisy[-1] < noisy[0]
    assert np.all(acc["accuracy_vote_noisy"][:, 0] < 1.0)


def test_evaluation_is_reproducible_and_seeded():
    x = _sign_inputs(128, np.random.default_rng(1))
    speakers, listeners = {"gain": jnp.array([1.0, 0.0])}, {"gain": jnp.array([1.0])}
    args = (_signs_speaker(), _signs_listener(), speakers, listeners, x)
    a = evaluate.evaluate_split(*args, SETTINGS)[1]
    b = evaluate.evaluate_split(*args, SETTINGS)[1]
    c = evaluate.evaluate_split(*args, dataclasses.replace(SETTINGS, seed=7))[1]
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["accuracy_noisy"], c["accuracy_noisy"])


def test_speaker_chunks_do_not_change_results():
    x = _sign_inputs(64, np.random.default_rng(2))
    speakers = {"gain": jnp.array([1.0, 0.0, 1.0])}
    listeners = {"gain": jnp.array([1.0, 0.5])}
    args = (_signs_speaker(), _signs_listener(), speakers, listeners, x)
    whole = evaluate.evaluate_split(*args, SETTINGS)[1]
    tiny_budget = evaluate.evaluate_split(*args, dataclasses.replace(SETTINGS, memory_budget=1))[1]
    for name in whole:
        np.testing.assert_allclose(whole[name], tiny_budget[name])


def test_split_rows_drops_and_ensembles():
    acc = {"accuracy": np.array([[[0.8, 0.6], [0.4, 0.0]]]),
           "accuracy_noisy": np.array([[[0.4, 0.6], [0.1, 0.0]]]),
           "accuracy_vote": np.array([[0.9, 0.3]]),
           "accuracy_vote_noisy": np.array([[0.5, 0.2]])}
    df = tidy.frame(evaluate.split_rows("test", [16], acc, step=5, eval_dataset=""))
    get = lambda m, s, l: df[(df.metric == m) & (df.speaker == s) & (df.listener == l)].value.item()
    assert get("robustness_drop", 0, 0) == pytest.approx(0.4)
    assert get("robustness_drop_rel", 0, 0) == pytest.approx(0.5)
    assert np.isnan(get("robustness_drop_rel", 1, 1))  # clean accuracy 0: undefined
    assert get("accuracy", -1, -1) == pytest.approx(0.45)  # the "average" ensemble
    assert get("robustness_drop", -1, -1) == pytest.approx(0.45 - 0.275)
    assert get("robustness_drop_rel", -1, -1) == pytest.approx((0.45 - 0.275) / 0.45)
    assert get("accuracy_vote", 1, -1) == pytest.approx(0.3)
    assert get("accuracy_vote", -1, -1) == pytest.approx(0.6)
    assert set(df.step) == {5} and set(df.candidates) == {16}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    return tiny_checkpoint(root / "best.npz"), tiny_dataset(root)


def test_run_on_a_checkpoint(tiny_run):
    ckpt_path, data_dir = tiny_run
    settings = {"candidates": [4, 16, 64], "epochs": 2, "max_agents": 2}
    df = evaluate.run(settings, ckpt_path, data_dir)
    # test_official is absent from the dataset: skipped; 64 is capped by valid's 40 examples.
    assert set(df.split) == {"valid", "test"}
    assert set(df[df.split == "valid"].candidates) == {4, 16, 40}
    assert set(df[df.split == "test"].candidates) == {4, 16, 48}
    pairs = df[(df.metric == "accuracy") & (df.speaker >= 0)]
    assert set(zip(pairs.speaker, pairs.listener)) == {(0, 0), (0, 1), (1, 0), (1, 1)}  # P = 2
    assert pairs.value.between(0, 1).all()
    assert set(df.stage) == {"eval"} and set(df.eval_dataset) == {""}
    again = evaluate.run(settings, checkpoint.load(ckpt_path), data_dir)
    np.testing.assert_array_equal(df.value.to_numpy(), again.value.to_numpy())


def test_zero_shot_transfer_and_errors(tiny_run, tmp_path):
    ckpt_path, _ = tiny_run
    other = tiny_dataset(tmp_path, name="shifted", sizes={"test": 30}, seed=5)
    df = evaluate.run({"candidates": [4], "epochs": 1}, ckpt_path, tmp_path / "unused",
                      eval_data_dir=other)
    assert set(df.eval_dataset) == {"shifted"} and set(df.split) == {"test"}
    wrong_d = tiny_dataset(tmp_path, name="wide", dim=12, sizes={"test": 30})
    with pytest.raises(ValueError, match="feature_dim 12"):
        evaluate.run({"candidates": [4]}, ckpt_path, wrong_d)
    with pytest.raises(ValueError, match="evaluate.epoch"):
        evaluate.run({"epoch": 1}, ckpt_path, other)
