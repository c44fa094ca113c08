"""Ease of learning: fresh listeners learn informative languages, curves, rows, errors."""

import numpy as np
import pytest

from emcom import config, etl, etl_tasks
from emcom.settings import stage_settings
from test_evaluate import TINY, tiny_checkpoint, tiny_dataset

SETTINGS = {"steps": 60, "eval_every": 30, "steps_per_call": 30, "listeners": 2,
            "batch_size": 32, "candidates": 8, "learning_rate": 1e-2}


def _toy_split(n, rng):
    """Inputs whose label (4 classes) and 2 attributes are read off the first 4 features."""
    x = rng.normal(size=(n, 8)).astype(np.float32)
    bits = (x[:, :4] > 0).astype(np.int64)
    return {"x": x, "label": bits[:, 0] * 2 + bits[:, 1], "attributes": bits[:, 2:4]}


def _languages(arrays):
    """(2, N, 4) messages: speaker 0 says the 4 sign bits, speaker 1 always says the same."""
    bits = (arrays["x"][:, :4] > 0).astype(np.int32)
    return np.stack([bits + 1, np.zeros_like(bits)])  # words < TINY's vocabulary of 5


@pytest.mark.parametrize("task_name", ["classification", "attributes", "discrimination"])
def test_informative_language_is_learnt_and_constant_one_is_not(task_name):
    cfg = config.resolve(TINY)
    rng = np.random.default_rng(0)
    train, test = _toy_split(256, rng), _toy_split(64, rng)
    task = {"classification": etl_tasks.classification_task(cfg, 4),
            "attributes": etl_tasks.attributes_task(cfg, 2, 2),
            "discrimination": etl_tasks.discrimination_task(cfg, 8)}[task_name]
    curve = etl.train_listeners(cfg, task, _languages(train), train, _languages(test), test,
                                stage_settings("etl", SETTINGS))
    assert sorted(curve) == [0, 30, 60]
    loss, accuracy = curve[60]
    assert loss.shape == (2, 2)  # (speakers, listeners)
    if task_name == "attributes":
        assert accuracy.shape == (2, 2, 2)
        accuracy = accuracy.mean(-1)
    chance = {"classification": 0.25, "attributes": 0.5, "discrimination": 1 / 8}[task_name]
    # The informative language: well above chance after 60 steps, and better than at step 0.
    assert accuracy[0].min() > min(0.9, 2.5 * chance)
    assert accuracy[0].mean() > curve[0][1][0].mean()
    # The constant language carries nothing: at most the majority class on held-out data.
    assert accuracy[1].max() < chance + 0.2
    assert loss[0].mean() < loss[1].mean()


def test_training_is_reproducible_and_measures_every_held_out_row():
    cfg = config.resolve(TINY)
    rng = np.random.default_rng(1)
    train, test = _toy_split(128, rng), _toy_split(45, rng)  # 45 = 32 + a padded batch of 13
    task = etl_tasks.classification_task(cfg, 4)
    settings = stage_settings("etl", {**SETTINGS, "steps": 10, "eval_every": 10})
    a = etl.train_listeners(cfg, task, _languages(train), train, _languages(test), test, settings)
    b = etl.train_listeners(cfg, task, _languages(train), train, _languages(test), test, settings)
    for step in a:
        np.testing.assert_array_equal(a[step][1], b[step][1])
        # Every held-out row counts once: accuracies are multiples of 1/45.
        np.testing.assert_allclose(a[step][1] * 45, np.round(a[step][1] * 45), atol=1e-4)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("etl") / "best.npz")


def test_run_rows(tmp_path, tiny_ckpt):
    ckpt = tiny_ckpt
    data_dir = tiny_dataset(tmp_path)
    settings = {"steps": 4, "eval_every": 2, "steps_per_call": 2, "listeners": 2,
                "max_speakers": 2, "batch_size": 16, "candidates": 64}
    df = etl.run(settings, ckpt, data_dir)
    assert set(df.stage) == {"etl"} and set(df.split) == {"test"}
    assert set(df.step) == {0, 2, 4}
    assert set(zip(df.speaker, df.listener)) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    metrics = set(df.metric)
    assert {"etl_discrimination", "etl_classification", "etl_attributes",
            "etl_attribute/Smiling", "etl_attribute/Young", "etl_loss/discrimination",
            "etl_loss/classification", "etl_loss/attributes"} == metrics
    # |C| = 64 is capped by the batch of 16.
    assert set(df[df.metric == "etl_discrimination"].candidates) == {16}
    assert set(df[df.metric == "etl_classification"].candidates) == {-1}
    final = df[(df.step == 4) & (df.metric == "etl_attributes")].value.to_numpy()
    per_attribute = df[(df.step == 4) & df.metric.str.startswith("etl_attribute/")]
    np.testing.assert_allclose(np.sort(final), np.sort(
        per_attribute.groupby(["speaker", "listener"]).value.mean().to_numpy()))
    assert df[df.metric.str.startswith("etl_d")].value.between(0, 1).all()


def test_run_without_attributes_and_bad_settings(tmp_path, tiny_ckpt):
    ckpt = tiny_ckpt
    data_dir = tiny_dataset(tmp_path, attributes=False)
    df = etl.run({"steps": 1, "eval_every": 1, "listeners": 1, "max_speakers": 1,
                                  "batch_size": 8, "tasks": ["classification", "attributes"]}, ckpt, data_dir)
    assert set(df.metric) == {"etl_classification", "etl_loss/classification"}
    with pytest.raises(ValueError, match="reconstruction"):
        etl.run({"tasks": ["reconstruction"]}, ckpt, data_dir)
    with pytest.raises(ValueError, match="etl.steps"):
        etl.run({"steps": 0}, ckpt, data_dir)
    with pytest.raises(ValueError, match="etl.stepz"):
        etl.run({"stepz": 3}, ckpt, data_dir)


def test_measure_on_train_scores_a_fresh_training_batch(tmp_path, tiny_ckpt):
    """`measure_on: train` (the reference code's ETL accuracy) measures batches of the train
    split: rows say so, and with a batch of 16 every value is a multiple of 1/16."""
    data_dir = tiny_dataset(tmp_path)
    settings = {"steps": 4, "eval_every": 2, "steps_per_call": 2, "listeners": 1,
                "max_speakers": 1, "batch_size": 16, "tasks": ["classification"],
                "measure_on": "train"}
    df = etl.run(settings, tiny_ckpt, data_dir)
    assert set(df.split) == {"train"} and set(df.step) == {0, 2, 4}
    acc = df[df.metric == "etl_classification"].value.to_numpy()
    np.testing.assert_allclose(acc * 16, np.round(acc * 16), atol=1e-4)
    held_out = etl.run({**settings, "measure_on": "test"}, tiny_ckpt, data_dir)
    assert set(held_out.split) == {"test"}
    with pytest.raises(ValueError, match="etl.measure_on"):
        etl.run({**settings, "measure_on": "valid"}, tiny_ckpt, data_dir)


def test_reference_sampling_makes_etl_languages_sampled(tmp_path):
    """With `loss.reference_sampling` the frozen speakers' messages are sampled, as the reference
    code's speaker always samples: a fresh (high-entropy) speaker then says different words
    for equal inputs, where greedy messages are a function of the input."""
    from emcom import agents, evaluate
    import jax

    ckpt = evaluate.as_checkpoint(tiny_checkpoint(tmp_path / "s.npz",
                                                  loss={"reference_sampling": True}))
    speaker = agents.make_speaker(ckpt.config)
    x = np.repeat(np.random.default_rng(0).normal(size=(1, 8)).astype(np.float32), 64, axis=0)
    greedy = evaluate.speaker_messages(speaker, ckpt.speakers, x)
    sampled = evaluate.speaker_messages(speaker, ckpt.speakers, x, rng=jax.random.PRNGKey(0))
    assert greedy.shape == sampled.shape == (3, 64, 4)
    assert all(len(np.unique(greedy[s], axis=0)) == 1 for s in range(3))
    assert all(len(np.unique(sampled[s], axis=0)) > 1 for s in range(3))
    assert evaluate.sampled_words(ckpt.config)
