"""How the S pairs of a step update a population: sequential (the reference code's loop over
pairs), vectorised (k Adam steps for k draws, gradients at the step's start), mean_gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from emcom import agents, config, population, step as step_lib

D = 12


def cfg_of(update, n=3, **over):
    base = {"game": {"num_candidates": -1, "vocab_size": 5, "message_length": 3},
            "speaker": {"hidden_size": 8, "embed_dim": 3},
            "listener": {"hidden_size": 8, "embed_dim": 3, "proj_dim": 4},
            "optimizer": {"learning_rate": 0.01},
            "population": {"num_speakers": n, "num_listeners": n, "update": update},
            "training": {"batch_size": 8, "eval_candidates": [4]}}
    for k, v in over.items():
        base.setdefault(k, {}).update(v)
    return config.resolve(base)


def setup(cfg):
    sp, li = agents.make_speaker(cfg), agents.make_listener(cfg)
    return sp, li, population.init_state(cfg, sp, li, D), step_lib.make_game(cfg, sp, li)


def batch():
    return jax.random.normal(jax.random.PRNGKey(1), (8, D))


def leaves(t):
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(t)]


def assert_trees_close(a, b, atol=1e-6):
    for x, y in zip(leaves(a), leaves(b)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=atol)


def adam_count(opt_state):
    return np.asarray(opt_state[0].count)


def python_loop(cfg, game, state, x, s_idx, l_idx, keys):
    """The reference code's communicate(): load pair, update, store back, pair after pair."""
    opt, decay, mu = game.optimizer, cfg.loss.kl_ema, cfg.imitation.ema

    @jax.jit
    def update_pair(sp, li, tg, so, lo, key):
        (g_s, g_l), m = game.pair_grad(sp, li, tg, x, key)
        u, so = opt.update(g_s, so, sp)
        sp = optax.apply_updates(sp, u)
        u, lo = opt.update(g_l, lo, li)
        li = optax.apply_updates(li, u)
        tg = jax.tree_util.tree_map(lambda t, p: decay * t + (1 - decay) * p, tg, sp)
        return sp, li, tg, so, lo, m.accuracy

    st = jax.tree_util.tree_map(lambda a: np.array(a), state)  # mutable host copy
    take = lambda tree, i: jax.tree_util.tree_map(lambda a: a[i], tree)  # noqa: E731

    def put(tree, i, new):
        for a, b in zip(jax.tree_util.tree_leaves(tree), jax.tree_util.tree_leaves(new)):
            a[i] = np.asarray(b)

    for i, j, key in zip(np.asarray(s_idx), np.asarray(l_idx), keys):
        sp, li, tg, so, lo, acc = update_pair(
            take(st.speakers, i), take(st.listeners, j), take(st.targets, i),
            take(st.speaker_opt, i), take(st.listener_opt, j), key)
        put(st.speakers, i, sp), put(st.listeners, j, li), put(st.targets, i, tg)
        put(st.speaker_opt, i, so), put(st.listener_opt, j, lo)
        st.scores[i] = mu * st.scores[i] + (1 - mu) * float(acc)
        st.score_counts[i] += 1
    return st


DRAWS = (jnp.array([2, 0, 2, 2], jnp.int32), jnp.array([1, 1, 0, 2], jnp.int32))


def test_sequential_matches_a_python_loop_over_pairs():
    cfg = cfg_of("sequential")
    _, _, state, game = setup(cfg)
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    got, m = jax.jit(lambda s, x: step_lib.sequential(game, s, x, *DRAWS, keys))(state, batch())
    want = python_loop(cfg, game, state, batch(), *DRAWS, keys)
    assert_trees_close(got, want)
    assert m.accuracy.shape == (4,)
    np.testing.assert_array_equal(adam_count(got.speaker_opt), [1, 0, 3])
    np.testing.assert_array_equal(adam_count(got.listener_opt), [1, 2, 1])


def run_mode(mode):
    """(start state, game, state after `mode` on DRAWS, the S gradients at the start, metrics)."""
    _, _, state, game = setup(cfg_of(mode))
    x, keys = batch(), jax.random.split(jax.random.PRNGKey(3), 4)
    fn = getattr(step_lib, mode)
    got, _ = jax.jit(lambda s, x: fn(game, s, x, *DRAWS, keys))(state, x)
    s_idx, l_idx = DRAWS
    (g_s, _), m = jax.vmap(game.pair_grad, in_axes=(0, 0, 0, None, 0))(
        population.gather(state.speakers, s_idx), population.gather(state.listeners, l_idx),
        population.gather(state.targets, s_idx), x, keys)
    return state, game, got, g_s, m


def test_vectorised_gives_one_adam_and_ema_step_per_draw_in_draw_order():
    state, game, got, g_s, m = run_mode("vectorised")
    np.testing.assert_array_equal(adam_count(got.speaker_opt), [1, 0, 3])
    np.testing.assert_array_equal(adam_count(got.listener_opt), [1, 2, 1])
    np.testing.assert_array_equal(np.asarray(got.score_counts), [1, 0, 3])
    # Speaker 1 and nothing else of it moved; by hand, speaker 2 takes its three gradients (all
    # at the start parameters) as three Adam steps, its target one EMA move after each.
    for tree in ("speakers", "targets", "speaker_opt"):
        for a, b in zip(leaves(population.gather(getattr(state, tree), 1)),
                        leaves(population.gather(getattr(got, tree), 1))):
            np.testing.assert_array_equal(a, b)
    sp, so = population.gather(state.speakers, 2), population.gather(state.speaker_opt, 2)
    tg, score = population.gather(state.targets, 2), 0.0
    for draw in (0, 2, 3):
        sp, so = population.adam_step(game.optimizer, sp, so, population.gather(g_s, draw))
        tg = population.ema(tg, sp, 0.99)
        score = 0.99 * score + 0.01 * float(m.accuracy[draw])
    # The by-hand gradients come from another XLA program: float32 round-off of near-zero
    # gradients moves Adam's normalised step by up to ~1e-3 of lr = 1e-2.
    assert_trees_close(population.gather(got.speakers, 2), sp, atol=1e-5)
    assert_trees_close(population.gather(got.targets, 2), tg, atol=1e-5)
    np.testing.assert_allclose(float(got.scores[2]), score, rtol=1e-6)


def test_vectorised_equals_sequential_when_no_agent_is_drawn_twice():
    s_idx, l_idx = jnp.array([2, 0, 1], jnp.int32), jnp.array([1, 2, 0], jnp.int32)
    keys = jax.random.split(jax.random.PRNGKey(4), 3)
    results = []
    for mode in ("sequential", "vectorised", "mean_gradient"):
        _, _, state, game = setup(cfg_of(mode))
        fn = getattr(step_lib, mode)
        results.append(jax.jit(lambda s, x: fn(game, s, x, s_idx, l_idx, keys))(state, batch())[0])
    # The three modes are three XLA programs. Their gradients agree to float32 round-off (the
    # Adam moments below, at 1e-6); Adam's normalised step g / (sqrt(v) + eps) magnifies that
    # round-off for near-zero gradients, so the parameters agree to the bound of the test above
    # (~1e-3 of lr = 1e-2; measured 6.3e-6 on one of 1056 speaker weights).
    for other in results[1:]:
        for field in results[0]._fields:
            atol = 1e-5 if field in ("speakers", "listeners") else 1e-6
            assert_trees_close(getattr(results[0], field), getattr(other, field), atol=atol)


def test_mean_gradient_takes_one_adam_step_with_the_mean_of_the_draws():
    state, game, got, g_s, _ = run_mode("mean_gradient")
    np.testing.assert_array_equal(adam_count(got.speaker_opt), [1, 0, 1])
    mean = jax.tree_util.tree_map(lambda g: (g[0] + g[2] + g[3]) / 3, g_s)
    want, _ = population.adam_step(game.optimizer, population.gather(state.speakers, 2),
                                   population.gather(state.speaker_opt, 2), mean)
    assert_trees_close(population.gather(got.speakers, 2), want)


def test_one_pair_trains_identically_in_every_mode():
    states = []
    for mode in config.UPDATE_MODES:
        cfg = cfg_of(mode, n=1)
        sp, li, state, _ = setup(cfg)
        fn = jax.jit(step_lib.make_step(cfg, sp, li, D))
        for _ in range(3):
            state, _ = fn(state, batch())
        states.append(state)
    assert_trees_close(states[0], states[1])
    assert_trees_close(states[0], states[2])


@pytest.mark.parametrize("mode", config.UPDATE_MODES)
def test_update_counts_over_steps(mode):
    """Over many steps with S = N draws, sequential and vectorised update every agent once per
    step on average; mean_gradient only 1 - (1 - 1/N)^N of the time."""
    n, steps = 4, 30
    cfg = cfg_of(mode, n=n)
    sp, li, state, _ = setup(cfg)
    fn = jax.jit(step_lib.make_step(cfg, sp, li, D))
    for _ in range(steps):
        state, _ = fn(state, batch())
    per_step = adam_count(state.speaker_opt).sum() / steps
    if mode == "mean_gradient":
        assert per_step < n  # a repeated draw is one update
        assert adam_count(state.speaker_opt).sum() == np.asarray(state.score_counts).sum()
    else:
        assert per_step == n  # exactly S = N speaker updates per step
        assert adam_count(state.listener_opt).sum() == n * steps
