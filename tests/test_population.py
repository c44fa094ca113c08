"""Stacked populations: imitation, reset, a 10-pair run with imitation."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from emcom import agents, config, losses, population, step as step_lib, train

D = 12


def cfg_of(**over):
    base = {"game": {"num_candidates": -1, "vocab_size": 5, "message_length": 3},
            "speaker": {"hidden_size": 8, "embed_dim": 3},
            "listener": {"hidden_size": 8, "embed_dim": 3, "proj_dim": 4},
            "training": {"batch_size": 8, "eval_candidates": [4]}}
    for k, v in over.items():
        base.setdefault(k, {}).update(v)
    return config.resolve(base)


def setup(cfg):
    sp, li = agents.make_speaker(cfg), agents.make_listener(cfg)
    return sp, li, population.init_state(cfg, sp, li, D)


def leaves(t):
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(t)]


@pytest.mark.parametrize("student", ["free", "forced"])
def test_imitation_step_is_one_adam_step_of_each_student_on_the_teachers_words(student):
    """K students (and nobody else) take one Adam step on the cross-entropy to the best drawn
    speaker's greedy words, at their own free-running states (the reference code) or
    teacher-forced; the teacher and every student sample with one key."""
    cfg = cfg_of(population={"num_speakers": 4, "num_listeners": 4},
                 imitation={"every": 1, "students": 2, "teacher": "best", "student": student},
                 optimizer={"learning_rate": 0.05})
    sp, _, state = setup(cfg)
    state = state._replace(scores=jnp.array([0.1, 0.9, 0.2, 0.3]))
    x = jax.random.normal(jax.random.PRNGKey(1), (8, D))
    opt = population.make_optimizer(cfg)
    rng = jax.random.PRNGKey(0)
    new, loss = jax.jit(lambda s, xb, k: population.imitation_step(cfg, sp, opt, s, xb, k))(
        state, x, rng)
    choose_key, word_key = jax.random.split(rng)
    teacher, students = population.choose_imitation(cfg, state.scores, choose_key)
    drawn = [int(teacher)] + [int(i) for i in students]
    assert len(set(drawn)) == 3 and float(state.scores[teacher]) == max(
        float(state.scores[i]) for i in drawn)
    words = sp.greedy(population.gather(state.speakers, teacher), x)

    def student_loss(params):
        if student == "free":
            logits = sp.rollout(params, word_key, x).logits
        else:
            logits = sp.teacher_force(params, x, words)[0]
        return losses.imitation_loss(logits, words)

    for i in range(4):
        old, got = population.gather(state.speakers, i), population.gather(new.speakers, i)
        if i in students:
            g = jax.grad(student_loss)(old)
            want, _ = population.adam_step(opt, old, population.gather(state.speaker_opt, i), g)
        else:  # the teacher and the undrawn speaker are untouched
            want = old
        for a, b in zip(leaves(got), leaves(want)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert np.isfinite(float(loss))


def test_imitation_and_reset_follow_the_reference_timing():
    """After the interaction of 0-based step t when t > 0 and t % M == 0."""
    cfg = cfg_of(population={"num_speakers": 2, "num_listeners": 2},
                 imitation={"every": 3, "students": 1})
    sp, li, state = setup(cfg)
    step = jax.jit(step_lib.make_step(cfg, sp, li, D))
    x = jax.random.normal(jax.random.PRNGKey(1), (8, D))
    imitated = []
    for _ in range(8):
        state, m = step(state, x)
        imitated.append(bool(np.isfinite(float(m.imitation_loss))))
    assert [t for t, on in enumerate(imitated) if on] == [3, 6]


def test_self_imitation_with_one_speaker():
    cfg = cfg_of(imitation={"every": 1}, optimizer={"learning_rate": 0.05})
    sp, _, state = setup(cfg)
    x = jax.random.normal(jax.random.PRNGKey(1), (8, D))
    opt = population.make_optimizer(cfg)
    new, _ = jax.jit(lambda s, xb, k: population.imitation_step(cfg, sp, opt, s, xb, k))(
        state, x, jax.random.PRNGKey(0))
    words = sp.greedy(population.gather(state.speakers, 0), x)
    old_lp = sp.teacher_force(population.gather(state.speakers, 0), x, words)[0]
    new_lp = sp.teacher_force(population.gather(new.speakers, 0), x, words)[0]
    assert losses.imitation_loss(new_lp, words) < losses.imitation_loss(old_lp, words)


def test_reset_replaces_one_random_listener_with_fresh_params_and_optimiser_state():
    # 8 pairs a step: every listener is drawn (and so trained) before the reset.
    cfg = cfg_of(population={"num_speakers": 3, "num_listeners": 3, "pairs_per_step": 8},
                 reset={"every": 3, "target": "listener"},
                 training={"steps": 5, "eval_every": 1})  # a schedule the config accepts
    sp, li, state = setup(cfg)
    step = jax.jit(step_lib.make_step(cfg, sp, li, D))
    x = jax.random.normal(jax.random.PRNGKey(1), (8, D))
    for _ in range(3):
        state, _ = step(state, x)
    assert np.all(np.asarray(state.listener_opt[0].count) > 0)
    # 0-based step 3 (the 4th): one listener reset after the update, as in the reference code
    state, _ = step(state, x)
    counts = np.asarray(state.listener_opt[0].count)
    reset = np.flatnonzero(counts == 0)
    assert len(reset) == 1, counts  # exactly one listener (paper App. B.4), others keep training
    # The reset listener holds a fresh initialisation: same shapes, and its Adam moments are zero.
    j = int(reset[0])
    for mu in leaves(state.listener_opt[0].mu):
        assert not np.any(mu[j])
    trained = [i for i in range(3) if i != j and counts[i] > 0]
    assert trained and all(np.any(leaves(state.listener_opt[0].mu)[0][i]) for i in trained)


def test_ten_pair_population_with_imitation_trains():
    cfg = {"game": {"num_candidates": 8, "vocab_size": 6, "message_length": 3},
           "speaker": {"hidden_size": 16, "embed_dim": 4},
           "listener": {"hidden_size": 16, "embed_dim": 4, "proj_dim": 8},
           "population": {"num_speakers": 10, "num_listeners": 10},
           "imitation": {"every": 5, "students": 3},
           "training": {"steps": 20, "batch_size": 16, "steps_per_call": 10, "log_every": 10,
                        "eval_every": 20, "checkpoint_every": 20, "eval_candidates": [4, 16]}}
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, D)).astype(np.float32)
    result = train.train(cfg, x, x[:32])
    df = pd.DataFrame(result.rows)
    assert np.isfinite(df.value).all()
    assert (df.metric == "imitation_loss").sum() == 2
    scores = np.asarray(result.state.scores)
    assert scores.shape == (10,) and np.all(scores > 0)  # every speaker drawn within 20 steps
    # Every speaker moved from its initialisation.
    init = population.init_state(config.resolve(cfg), agents.make_speaker(config.resolve(cfg)),
                                 agents.make_listener(config.resolve(cfg)), D)
    w0 = np.asarray(init.speakers["speaker/~/adapter"]["w"])
    w1 = np.asarray(result.state.speakers["speaker/~/adapter"]["w"])
    assert all(not np.array_equal(w0[i], w1[i]) for i in range(10))


@pytest.mark.parametrize("target_init", ["copy", "independent"])
def test_target_init(target_init):
    """The EMA target starts as a copy of its speaker, or (the reference code) as an independent
    random init; a reset speaker gets a target of the same kind."""
    cfg = cfg_of(population={"num_speakers": 2, "num_listeners": 2},
                 speaker={"target_init": target_init}, reset={"target": "speaker"})
    sp, li, state = setup(cfg)
    same = [np.array_equal(a, b) for a, b in zip(leaves(state.speakers), leaves(state.targets))]
    # (biases start at zero either way: independent inits differ in their weights)
    assert all(same) if target_init == "copy" else not all(same)
    opt = population.make_optimizer(cfg)
    new = population.reset_agents(cfg, sp, li, opt, state, jax.random.PRNGKey(5), D)
    j = [i for i in range(2) if not np.array_equal(
        np.asarray(new.speakers["speaker/~/adapter"]["w"][i]),
        np.asarray(state.speakers["speaker/~/adapter"]["w"][i]))]
    assert len(j) == 1
    reset_same = [np.array_equal(a[j[0]], b[j[0]])
                  for a, b in zip(leaves(new.speakers), leaves(new.targets))]
    assert all(reset_same) if target_init == "copy" else not all(reset_same)
    assert float(new.score_counts[j[0]]) == 0.0


@pytest.mark.parametrize("target_init", ["copy", "independent"])
def test_compiled_init_equals_the_eager_init_bit_for_bit(target_init):
    cfg = cfg_of(population={"num_speakers": 3, "num_listeners": 2},
                 speaker={"target_init": target_init})
    sp, li = agents.make_speaker(cfg), agents.make_listener(cfg)
    compiled = population.init_state(cfg, sp, li, D)
    eager = population._init_state(cfg, sp, li, D, jax.random.PRNGKey(cfg.seed))  # op by op
    assert jax.tree_util.tree_structure(compiled) == jax.tree_util.tree_structure(eager)
    for a, b in zip(leaves(compiled), leaves(eager)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    # Separate buffers (the update donates the state): the copied targets are not the speakers.
    flat = jax.tree_util.tree_leaves(compiled)
    assert len({x.unsafe_buffer_pointer() for x in flat}) == len(flat)
