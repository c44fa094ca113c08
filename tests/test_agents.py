"""Agents: shapes and sizes, greedy evaluation, teacher forcing, listener scores, ETL head."""

import jax
import jax.numpy as jnp
import numpy as np

from emcom import agents, config

CFG = config.resolve({"game": {"num_candidates": -1, "vocab_size": 7, "message_length": 4},
                      "speaker": {"hidden_size": 12}, "listener": {"hidden_size": 10,
                                                                   "proj_dim": 6},
                      "training": {"batch_size": 5}})
X = jax.random.normal(jax.random.PRNGKey(0), (5, 9))


def test_paper_sizes_by_default():
    cfg = config.resolve()
    sp = jax.eval_shape(agents.make_speaker(cfg).init, jax.random.PRNGKey(0),
                        jnp.zeros((2, 2048)))
    assert sp["speaker/~/adapter"]["w"].shape == (2048, 512)       # h and c of 256
    assert sp["speaker/~/embed"]["embeddings"].shape == (21, 10)    # 20 words + sos
    assert sp["speaker/~/policy"]["w"].shape == (256, 20)
    assert sp["speaker/~/value"]["w"].shape == (256, 1)
    assert sp["speaker/~/q_advantage"]["w"].shape == (256, 20)
    li = jax.eval_shape(agents.make_listener(cfg).init, jax.random.PRNGKey(0),
                        jnp.zeros((2, 10), jnp.int32), jnp.zeros((2, 2048)))
    assert li["message_encoder/~/embed"]["embeddings"].shape == (20, 10)
    assert li["message_encoder/~/lstm/linear"]["w"].shape == (10 + 512, 4 * 512)
    assert li["message_proj"]["w"].shape == (512, 256)
    assert li["candidate_proj"]["w"].shape == (2048, 256)


def test_evaluation_is_greedy_and_training_samples():
    sp = agents.make_speaker(CFG)
    p = sp.init(jax.random.PRNGKey(1), X)
    greedy = sp.greedy(p, X)
    assert greedy.shape == (5, 4) and greedy.dtype == jnp.int32
    logits, _ = sp.teacher_force(p, X, greedy)
    # Each greedy word is the argmax of the policy at the state it was emitted from.
    np.testing.assert_array_equal(jnp.argmax(logits, -1), greedy)
    samples = jnp.stack([sp.sample(p, k, X)[0] for k in jax.random.split(jax.random.PRNGKey(2), 8)])
    assert len({tuple(np.asarray(s).ravel()) for s in samples}) > 1


def test_sampled_rollout_equals_teacher_forcing_on_its_words():
    sp = agents.make_speaker(CFG)
    p = sp.init(jax.random.PRNGKey(1), X)
    r = sp.rollout(p, jax.random.PRNGKey(3), X)
    tf = sp.teacher_force_full(p, X, r.message)
    assert r.logits.shape == (5, 4, 7) and r.values.shape == (5, 4) and r.q_values.shape == (5, 4, 7)
    for a, b in zip(r, tf):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # The dueling Q head has zero-mean advantages around its state value.
    assert np.all(np.isfinite(np.asarray(r.q_values)))


def test_listener_scores_are_cosine_over_temperature():
    li = agents.make_listener(CFG)
    m = jax.random.randint(jax.random.PRNGKey(4), (5, 4), 0, 7)
    p = li.init(jax.random.PRNGKey(5), m, X)
    s = np.asarray(li.scores(p, m, X[:3]))
    a, b = np.asarray(li.encode_message(p, m)), np.asarray(li.encode_candidates(p, X[:3]))
    ref = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (
        b / np.linalg.norm(b, axis=1, keepdims=True)).T / 0.5
    assert s.shape == (5, 3)
    np.testing.assert_allclose(s, ref, rtol=1e-5, atol=1e-6)


def test_classifier_reuses_the_message_encoder():
    clf = agents.make_classifier(CFG, 3)
    m = jax.random.randint(jax.random.PRNGKey(4), (5, 4), 0, 7)
    p = clf.init(jax.random.PRNGKey(0), m)
    assert clf.apply(p, m).shape == (5, 3)
    assert p["message_encoder/~/lstm/linear"]["w"].shape == (10 + 10, 40)  # embed 10 + hidden 10
