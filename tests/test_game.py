"""The game's shared pieces (emcom/game.py), which training, the periodic evaluation, the
evaluation stage and ETL all use: one candidate draw, one InfoNCE, one P x P play."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emcom import agents, config, game, population

D = 6


def test_candidate_index_and_gather():
    b = 7
    assert game.candidate_index(None, b, b) is None
    idx = np.asarray(game.candidate_index(jax.random.PRNGKey(0), b, 3))
    assert idx.shape == (b, 3) and np.all(idx[:, 0] == np.arange(b))
    scores = jnp.asarray(np.random.default_rng(0).normal(size=(b, b)), jnp.float32)
    logits, labels = game.gather_candidates(scores, jnp.asarray(idx))
    np.testing.assert_array_equal(logits, np.asarray(scores)[np.arange(b)[:, None], idx])
    np.testing.assert_array_equal(labels, 0)
    with pytest.raises(ValueError, match="num_candidates"):
        game.candidate_index(None, b, 1)


def test_info_nce_is_the_negated_mean_target_log_prob():
    r = np.random.default_rng(1)
    logits = jnp.asarray(r.normal(size=(5, 4)), jnp.float32)
    labels = jnp.asarray(r.integers(0, 4, 5), jnp.int32)
    lp = jax.nn.log_softmax(logits)[jnp.arange(5), labels]
    np.testing.assert_allclose(game.target_log_prob(logits, labels), lp, rtol=1e-6)
    np.testing.assert_allclose(game.info_nce(logits, labels), -lp.mean(), rtol=1e-6)


@pytest.fixture(scope="module")
def population3x2():
    cfg = config.resolve({"game": {"vocab_size": 5, "message_length": 3, "num_candidates": -1},
                          "speaker": {"hidden_size": 8, "embed_dim": 4},
                          "listener": {"hidden_size": 8, "embed_dim": 4, "proj_dim": 8},
                          "population": {"num_speakers": 3, "num_listeners": 2},
                          "training": {"batch_size": 16}})
    sp, li = agents.make_speaker(cfg), agents.make_listener(cfg)
    state = population.init_state(cfg, sp, li, D)
    x = jax.random.normal(jax.random.PRNGKey(2), (16, D))
    return sp, li, state, x


@pytest.mark.parametrize("chunk", [None, 2])
def test_play_pairs_is_every_pair_in_turn(population3x2, chunk):
    sp, li, state, x = population3x2
    msgs = game.population_messages(sp, state.speakers, x)
    got = game.play_pairs(li, state.listeners, msgs, x, lambda s: s, speaker_chunk=chunk)
    assert got.shape == (3, 2, 16, 16)
    for i in range(3):
        assert np.array_equal(msgs[i], sp.greedy(jax.tree_util.tree_map(lambda a: a[i],
                                                                        state.speakers), x))
        for j in range(2):
            lp = jax.tree_util.tree_map(lambda a: a[j], state.listeners)
            np.testing.assert_allclose(got[i, j], li.scores(lp, msgs[i], x), rtol=1e-5, atol=1e-6)


def test_population_play_matches_the_pairs_played_alone(population3x2):
    sp, li, state, x = population3x2
    acc, loss = game.population_play(sp, li, state.speakers, state.listeners, x, (16,),
                                     jax.random.PRNGKey(0))
    for i in range(3):
        m = sp.greedy(jax.tree_util.tree_map(lambda a: a[i], state.speakers), x)
        for j in range(2):
            scores = li.scores(jax.tree_util.tree_map(lambda a: a[j], state.listeners), m, x)
            logits, labels = game.candidate_logits(scores, 16, None)
            np.testing.assert_allclose(acc[0, i, j], game.success(logits, labels).mean())
            np.testing.assert_allclose(loss[i, j], game.info_nce(logits, labels), rtol=1e-5)
