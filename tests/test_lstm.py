"""emcom's LSTM against hk.LSTM: parameters, forward values, gradients, and the whole training
step."""

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emcom import agents, config as config_lib, parallel, population, train
from emcom.lstm import LSTM

B, T, E, H = 6, 4, 5, 7


def _unroll(cls):
    def f(inputs, h0, c0):
        outputs, state = hk.dynamic_unroll(cls(H, name="lstm"), inputs, hk.LSTMState(h0, c0))
        return outputs, state.cell
    return hk.without_apply_rng(hk.transform(f))


def _inputs(seed=0):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
    return (jax.random.normal(k1, (T, B, E)), jax.random.normal(k2, (B, H)),
            jax.random.normal(k3, (B, H)))


def _loss(f):
    # Weights every output and the last cell differently so that no gradient term cancels.
    def loss(params, inputs, h0, c0):
        outputs, cell = f.apply(params, inputs, h0, c0)
        return (jnp.sin(outputs * jnp.arange(1, H + 1)).sum() + (cell ** 2).sum())
    return loss


def test_same_parameters_and_forward_values_as_haiku():
    ours, theirs = _unroll(LSTM), _unroll(hk.LSTM)
    args = _inputs()
    key = jax.random.PRNGKey(3)
    p_ours, p_theirs = ours.init(key, *args), theirs.init(key, *args)
    assert jax.tree_util.tree_structure(p_ours) == jax.tree_util.tree_structure(p_theirs)
    jax.tree_util.tree_map(np.testing.assert_array_equal, p_ours, p_theirs)
    for a, b in zip(ours.apply(p_ours, *args), theirs.apply(p_theirs, *args)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("batched", [False, True])
def test_gradients_equal_autodiff(batched):
    ours, theirs = _unroll(LSTM), _unroll(hk.LSTM)
    args = _inputs(1)
    params = theirs.init(jax.random.PRNGKey(4), *args)
    grad = jax.grad(_loss(ours), argnums=(0, 1, 2, 3))
    ref = jax.grad(_loss(theirs), argnums=(0, 1, 2, 3))
    if batched:  # a population's agents: stacked parameters and inputs under vmap
        params = jax.tree_util.tree_map(lambda a: jnp.stack([a, 2 * a, -a]), params)
        args = tuple(jnp.stack([a, a[::-1], -a]) for a in args)
        grad, ref = jax.vmap(grad), jax.vmap(ref)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                           jax.jit(grad)(params, *args), jax.jit(ref)(params, *args))


def test_rejects_unbatched_inputs():
    f = hk.transform(lambda x: LSTM(H)(x, LSTM(H).initial_state(None)))
    with pytest.raises(ValueError, match=r"\(batch, features\)"):
        f.init(jax.random.PRNGKey(0), jnp.zeros((E,)))


def _two_steps(cfg, monkeypatch, cell):
    monkeypatch.setattr(agents, "LSTM", cell)
    speaker, listener = agents.make_speaker(cfg), agents.make_listener(cfg)
    state = train.stack([population.init_state(cfg, speaker, listener, 16)])
    data = jax.random.normal(jax.random.PRNGKey(5), (64, 16))
    update = train.make_update(cfg, speaker, listener, 16, parallel.data_mesh(), on_device=True)
    idx = jnp.asarray(train.BatchSchedule(0, 64, cfg.training.batch_size).indices(0, 2)[None])
    return update(state, data, idx)


@pytest.mark.parametrize("mode", config_lib.UPDATE_MODES)
def test_training_step_equals_the_haiku_lstm_step(monkeypatch, mode):
    """The trainer's update (2 steps, 2 x 2 population) with emcom's LSTM and with hk.LSTM."""
    cfg = config_lib.resolve({
        "game": {"num_candidates": -1, "vocab_size": 6, "message_length": 3},
        "speaker": {"hidden_size": 12}, "listener": {"hidden_size": 10, "proj_dim": 8},
        "population": {"num_speakers": 2, "num_listeners": 2, "update": mode},
        "training": {"batch_size": 16, "eval_candidates": [2]}})
    ours, theirs = _two_steps(cfg, monkeypatch, LSTM), _two_steps(cfg, monkeypatch, hk.LSTM)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
                           ours, theirs)
