"""Every loss and its gradient against an independent NumPy reference on small inputs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emcom import agents, game, losses

jax.config.update("jax_enable_x64", False)
B, T, V = 5, 3, 4


def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def inputs(seed=0):
    r = np.random.default_rng(seed)
    logits = r.normal(size=(B, T, V)).astype(np.float32)
    target = r.normal(size=(B, T, V)).astype(np.float32)
    values = r.normal(size=(B, T)).astype(np.float32)
    q = r.normal(size=(B, T, V)).astype(np.float32)
    words = r.integers(0, V, (B, T)).astype(np.int32)
    reward = (r.random(B) < 0.5).astype(np.float32)
    return logits, target, values, q, words, reward


def np_speaker(logits, target, values, q, words, reward, kind, alpha, beta, time_reduction):
    """Loss and analytic gradients wrt logits, values, q (NumPy, float64). Every term is summed
    over T, then divided by T for "mean" (the reference code's losses/speakers.py)."""
    logits, target, values, q = (a.astype(np.float64) for a in (logits, target, values, q))
    lp = np_log_softmax(logits)
    p = np.exp(lp)
    lpt = np_log_softmax(target)
    onehot = np.eye(V)[words]
    lp_w = (lp * onehot).sum(-1)
    r = reward[:, None].astype(np.float64)
    q_w = (q * onehot).sum(-1)
    adv = r - values if kind == "reinforce" else q_w - values
    value_loss = ((r - values) ** 2).sum(1)
    if kind == "policy_gradient":
        value_loss = value_loss + ((r - q_w) ** 2).sum(1)
    policy = -(adv * lp_w).sum(1)
    negent_t = (p * lp).sum(-1)                     # (B, T)
    kl_t = (p * (lp - lpt)).sum(-1)                 # (B, T)
    n = T if time_reduction == "mean" else 1
    loss = (value_loss + policy + alpha * negent_t.sum(1) + beta * kl_t.sum(1)).mean() / n
    # Gradients of the batch mean.
    d_logits = (-adv[..., None] * (onehot - p)
                + alpha * p * (lp - negent_t[..., None])
                + beta * p * ((lp - lpt) - kl_t[..., None])) / (B * n)
    d_values = -2 * (r - values) / (B * n)
    d_q = np.zeros_like(q)
    if kind == "policy_gradient":
        d_q = (-2 * (r - q_w))[..., None] * onehot / (B * n)
    return loss, d_logits, d_values, d_q, -negent_t.sum(1).mean() / n, kl_t.sum(1).mean() / n


@pytest.mark.parametrize("time_reduction", ["mean", "sum"])
@pytest.mark.parametrize("kind", ["reinforce", "policy_gradient"])
def test_speaker_loss_and_gradients_match_numpy(kind, time_reduction):
    logits, target, values, q, words, reward = inputs()
    alpha, beta = 0.3, 0.7

    def f(lg, v, qq):
        r = agents.Rollout(message=jnp.asarray(words), logits=lg, values=v, q_values=qq)
        return losses.speaker_loss(r, jnp.asarray(target), jnp.asarray(reward), kind=kind,
                                   entropy_coef=alpha, kl_coef=beta,
                                   time_reduction=time_reduction)

    out = f(logits, values, q)
    grads = jax.grad(lambda *a: f(*a).loss, argnums=(0, 1, 2))(logits, values, q)
    ref = np_speaker(logits, target, values, q, words, reward, kind, alpha, beta, time_reduction)
    np.testing.assert_allclose(out.loss, ref[0], rtol=1e-5, atol=1e-6)
    for g, r in zip(grads, ref[1:4]):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out.entropy, ref[4], rtol=1e-5)
    np.testing.assert_allclose(out.kl, ref[5], rtol=1e-5, atol=1e-7)
    assert ref[5] > 0  # the target differs, so the KL term is really exercised


def test_target_logits_get_no_gradient():
    logits, target, values, q, words, reward = inputs(1)
    r = agents.Rollout(jnp.asarray(words), jnp.asarray(logits), jnp.asarray(values), jnp.asarray(q))
    g = jax.grad(lambda t: losses.speaker_loss(r, t, jnp.asarray(reward)).loss)(jnp.asarray(target))
    assert np.all(np.asarray(g) == 0)


def test_info_nce_and_gradient_match_numpy():
    r = np.random.default_rng(2)
    logits = r.normal(size=(6, 4)).astype(np.float32)
    labels = r.integers(0, 4, 6).astype(np.int32)
    lp = np_log_softmax(logits.astype(np.float64))
    ref = -lp[np.arange(6), labels].mean()
    ref_grad = (np.exp(lp) - np.eye(4)[labels]) / 6
    np.testing.assert_allclose(game.info_nce(logits, labels), ref, rtol=1e-6)
    np.testing.assert_allclose(jax.grad(game.info_nce)(logits, labels), ref_grad, atol=1e-6)


def test_imitation_loss_and_gradient_match_numpy():
    logits, _, _, _, words, _ = inputs(3)
    lp = np_log_softmax(logits.astype(np.float64))
    onehot = np.eye(V)[words]
    ref = -(lp * onehot).sum((1, 2)).mean()
    ref_grad = (np.exp(lp) - onehot) / B
    total = functools.partial(losses.imitation_loss, time_reduction="sum")
    np.testing.assert_allclose(total(logits, words), ref, rtol=1e-6)
    np.testing.assert_allclose(jax.grad(total)(logits, words), ref_grad, atol=1e-6)
    # "mean" (the reference code, the default): averaged over T as well as B.
    np.testing.assert_allclose(losses.imitation_loss(logits, words), ref / T, rtol=1e-6)
    np.testing.assert_allclose(jax.grad(losses.imitation_loss)(logits, words), ref_grad / T,
                               atol=1e-6)


def test_cosine_scores_and_gradient_match_numpy():
    r = np.random.default_rng(4)
    p = r.normal(size=(5, 3)).astype(np.float32)
    t = r.normal(size=(7, 3)).astype(np.float32)
    g_up = r.normal(size=(5, 7))
    tau = 0.5
    pn = p / np.linalg.norm(p, axis=1, keepdims=True)
    tn = t / np.linalg.norm(t, axis=1, keepdims=True)
    ref = pn @ tn.T / tau
    np.testing.assert_allclose(agents.cosine_scores(p, t, tau), ref, rtol=1e-5, atol=1e-6)
    # d/dp of sum(G * S): through the normalisation x/|x|, d = (I - xn xn^T) dxn / |x|.
    d_pn, d_tn = g_up @ tn / tau, g_up.T @ pn / tau
    ref_dp = (d_pn - pn * (pn * d_pn).sum(1, keepdims=True)) / np.linalg.norm(p, axis=1)[:, None]
    ref_dt = (d_tn - tn * (tn * d_tn).sum(1, keepdims=True)) / np.linalg.norm(t, axis=1)[:, None]
    dp, dt = jax.grad(lambda a, b: jnp.sum(g_up * agents.cosine_scores(a, b, tau)),
                      argnums=(0, 1))(p, t)
    np.testing.assert_allclose(dp, ref_dp, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dt, ref_dt, rtol=1e-4, atol=1e-5)


def test_score_matrix_is_a_matmul_not_a_b_b_f_tensor():
    p = jnp.ones((64, 32))
    hlo = jax.jit(lambda a, b: agents.cosine_scores(a, b, 0.5)).lower(p, p).as_text()
    assert "dot_general" in hlo and "64x64x32" not in hlo


def test_candidates_are_target_plus_distinct_other_rows():
    b, c = 12, 5
    scores = jnp.arange(b * b, dtype=jnp.float32).reshape(b, b)
    logits, labels = game.candidate_logits(scores, c, jax.random.PRNGKey(0))
    cols = np.asarray(logits) - np.arange(b)[:, None] * b  # the candidate indices
    assert logits.shape == (b, c) and np.all(np.asarray(labels) == 0)
    assert np.all(cols[:, 0] == np.arange(b))
    for i in range(b):
        assert len(set(cols[i])) == c and i not in cols[i, 1:]
    whole, lab = game.candidate_logits(scores, b, None)
    assert whole is scores and np.all(np.asarray(lab) == np.arange(b))
    with pytest.raises(ValueError, match="num_candidates"):
        game.candidate_logits(scores, b + 1, None)


def test_distractors_are_uniform():
    b, c, n = 8, 3, 400
    keys = jax.random.split(jax.random.PRNGKey(1), n)
    scores = jnp.arange(b * b, dtype=jnp.float32).reshape(b, b)
    cols = jax.vmap(lambda k: game.candidate_logits(scores, c, k)[0][0, 1:])(keys)
    counts = np.bincount(np.asarray(cols).astype(int).ravel(), minlength=b)
    assert counts[0] == 0
    expected = n * (c - 1) / (b - 1)  # 114 per other row
    assert np.all(np.abs(counts[1:] - expected) < 5 * np.sqrt(expected))


def test_accuracy_at_and_ties():
    scores = jnp.array([[2.0, 1.0, 0.0], [0.0, 1.0, 1.0], [0.0, 3.0, 1.0]])
    np.testing.assert_array_equal(game.accuracy_at(scores, 3, None), [1.0, 0.0, 0.0])
    # |C| = 2: row 0 always wins; row 1 beats row 0 but ties (= loses) with row 2; row 2 beats
    # row 0 only.
    acc = np.asarray(jax.vmap(lambda k: game.accuracy_at(scores, 2, k))(
        jax.random.split(jax.random.PRNGKey(0), 200)))
    assert np.all(acc[:, 0] == 1)
    assert 0.35 < acc[:, 1].mean() < 0.65 and 0.35 < acc[:, 2].mean() < 0.65


def test_one_speaker_adam_step_at_the_reference_scale():
    """time_reduction="mean" is the reference's scale: the gradient is the T-summed one over T,
    and one Adam step from a fresh state is -lr g / (|g| + eps) with that g (hand-computed)."""
    from emcom import config, population

    cfg = config.resolve({"game": {"vocab_size": V, "message_length": T},
                          "speaker": {"hidden_size": 6, "embed_dim": 3}})
    sp = agents.make_speaker(cfg)
    x = jax.random.normal(jax.random.PRNGKey(0), (B, 7))
    params = sp.init(jax.random.PRNGKey(1), x)
    _, target, _, _, words, reward = inputs(5)

    def loss(p, time_reduction):
        r = sp.teacher_force_full(p, x, jnp.asarray(words))
        return losses.speaker_loss(r, jnp.asarray(target), jnp.asarray(reward),
                                   time_reduction=time_reduction).loss

    g_mean = jax.grad(loss)(params, "mean")
    g_sum = jax.grad(loss)(params, "sum")
    for a, b in zip(jax.tree_util.tree_leaves(g_mean), jax.tree_util.tree_leaves(g_sum)):
        np.testing.assert_allclose(a, b / T, rtol=2e-5, atol=1e-9)
    lr, eps = 1e-4, 1e-8
    opt = population.make_optimizer(config.resolve(
        {"optimizer": {"learning_rate": lr, "eps": eps}}))
    new, _ = population.adam_step(opt, params, opt.init(params), g_mean)
    for p, g, n in zip(*(jax.tree_util.tree_leaves(t) for t in (params, g_mean, new))):
        g = np.asarray(g, np.float64)
        # float32 round-off of Adam's sqrt(g^2) is ~1e-5 of the step lr
        np.testing.assert_allclose(n, np.asarray(p) - lr * g / (np.abs(g) + eps), rtol=1e-5,
                                   atol=lr * 1e-5)
