"""Populations as stacked parameter trees: init, grouped per-agent Adam updates, imitation, reset.

N speakers and L listeners; every leaf of `speakers`, `targets` and `speaker_opt` has a leading
axis N, every leaf of `listeners` and `listener_opt` a leading axis L. One step trains S pairs
drawn with replacement. An agent drawn k > 1 times in a step gets ONE Adam update with the mean
of its k gradients (a segment sum over the draws divided by k), i.e. the gradient of its mean
loss over its k games; agents not drawn keep their parameters, optimiser state and EMA target
bit for bit. This is deterministic and independent of the order of the draws.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from emcom.agents import Listener, Speaker
from emcom.losses import imitation_loss

PyTree = Any


class TrainState(NamedTuple):
    """Everything a training step reads and writes (a checkpoint holds exactly this)."""
    step: jax.Array          # () int32, steps done
    rng: jax.Array           # (2,) uint32 raw PRNG key
    speakers: PyTree         # (N, ...) online speaker params
    targets: PyTree          # (N, ...) EMA target speaker params
    speaker_opt: PyTree      # (N, ...) Adam states
    listeners: PyTree        # (L, ...) listener params
    listener_opt: PyTree     # (L, ...) Adam states
    scores: jax.Array        # (N,) EMA of each speaker's training accuracy (imitation teacher)


def make_optimizer(cfg: dict) -> optax.GradientTransformation:
    """Adam with the config's hyper-parameters (one state per agent)."""
    o = cfg["optimizer"]
    return optax.adam(o["learning_rate"], b1=o["b1"], b2=o["b2"], eps=o["eps"])


def _dummy_inputs(cfg: dict, logit_dim: int) -> tuple[jax.Array, jax.Array]:
    return (jnp.zeros((1, logit_dim), jnp.float32),
            jnp.zeros((1, cfg["game"]["message_length"]), jnp.int32))


def init_speakers(cfg: dict, speaker: Speaker, rng: jax.Array, n: int, logit_dim: int) -> PyTree:
    """n fresh speakers stacked on axis 0."""
    x, _ = _dummy_inputs(cfg, logit_dim)
    return jax.vmap(speaker.init, (0, None))(jax.random.split(rng, n), x)


def init_listeners(cfg: dict, listener: Listener, rng: jax.Array, n: int,
                   logit_dim: int) -> PyTree:
    """n fresh listeners stacked on axis 0."""
    x, m = _dummy_inputs(cfg, logit_dim)
    return jax.vmap(listener.init, (0, None, None))(jax.random.split(rng, n), m, x)


def init_state(cfg: dict, speaker: Speaker, listener: Listener, logit_dim: int) -> TrainState:
    """The state at step 0 of the config's population, from `cfg['seed']`."""
    p = cfg["population"]
    optimizer = make_optimizer(cfg)
    rng, ks, kl = jax.random.split(jax.random.PRNGKey(cfg["seed"]), 3)
    speakers = init_speakers(cfg, speaker, ks, p["num_speakers"], logit_dim)
    listeners = init_listeners(cfg, listener, kl, p["num_listeners"], logit_dim)
    return TrainState(
        step=jnp.zeros((), jnp.int32), rng=rng, speakers=speakers,
        targets=jax.tree_util.tree_map(jnp.copy, speakers),
        speaker_opt=jax.vmap(optimizer.init)(speakers), listeners=listeners,
        listener_opt=jax.vmap(optimizer.init)(listeners),
        scores=jnp.zeros((p["num_speakers"],), jnp.float32))


def gather(tree: PyTree, idx: jax.Array) -> PyTree:
    """Agents idx (S,) of a stacked tree -> a stacked tree with leading axis S."""
    return jax.tree_util.tree_map(lambda a: a[idx], tree)


def sample_pairs(rng: jax.Array, num_speakers: int, num_listeners: int,
                 num_pairs: int) -> tuple[jax.Array, jax.Array]:
    """S speaker and S listener indices drawn uniformly with replacement: (S,), (S,) int32."""
    ks, kl = jax.random.split(rng)
    return (jax.random.randint(ks, (num_pairs,), 0, num_speakers, jnp.int32),
            jax.random.randint(kl, (num_pairs,), 0, num_listeners, jnp.int32))


def _where(mask: jax.Array, new: PyTree, old: PyTree) -> PyTree:
    """Per agent: new where mask (n,) else old, for stacked trees."""
    def pick(a, b):
        return jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)
    return jax.tree_util.tree_map(pick, new, old)


def grouped_update(optimizer: optax.GradientTransformation, params: PyTree, opt_state: PyTree,
                   grads: PyTree, idx: jax.Array) -> tuple[PyTree, PyTree, jax.Array]:
    """One Adam step per drawn agent with the mean of its draws' gradients.

    Args:
      params, opt_state: stacked trees, leading axis n (agents).
      grads: stacked tree, leading axis S (one gradient per draw).
      idx: (S,) agent of each draw.

    Returns:
      new params, new optimiser state (undrawn agents unchanged), counts (n,) draws per agent.
    """
    n = jax.tree_util.tree_leaves(params)[0].shape[0]
    counts = jax.ops.segment_sum(jnp.ones_like(idx, jnp.float32), idx, num_segments=n)
    scale = 1.0 / jnp.maximum(counts, 1.0)

    def mean_grad(g):
        s = jax.ops.segment_sum(g, idx, num_segments=n)
        return s * scale.reshape((-1,) + (1,) * (s.ndim - 1))

    grads = jax.tree_util.tree_map(mean_grad, grads)

    def adam(p, o, g):
        updates, o = optimizer.update(g, o, p)
        return optax.apply_updates(p, updates), o

    new_params, new_opt = jax.vmap(adam)(params, opt_state, grads)
    drawn = counts > 0
    return _where(drawn, new_params, params), _where(drawn, new_opt, opt_state), counts


def ema_update(targets: PyTree, params: PyTree, decay: float, mask: jax.Array) -> PyTree:
    """target <- decay * target + (1 - decay) * params for the agents in mask (n,) (reference
    code's convention of the paper's eta, paper.md §7)."""
    new = jax.tree_util.tree_map(lambda t, p: decay * t + (1.0 - decay) * p, targets, params)
    return _where(mask, new, targets)


def imitation_step(cfg: dict, speaker: Speaker, optimizer: optax.GradientTransformation,
                   state: TrainState, x: jax.Array, rng: jax.Array) -> tuple[TrainState, jax.Array]:
    """Students imitate a teacher's messages on batch x (B, D); returns (state, mean loss ()).

    K = `imitation.students` students and one teacher are drawn without replacement; the teacher
    is the best / worst (by the EMA accuracy `state.scores`) or a random one of the K + 1. With
    N = 1 the single speaker imitates its own greedy messages (self-imitation). Students take one
    Adam step on the cross-entropy to the teacher's greedy words (sampled words with
    `loss.reference_sampling`); their EMA targets are left to the interaction steps.
    """
    n = cfg["population"]["num_speakers"]
    k = 1 if n == 1 else cfg["imitation"]["students"]
    choose_key, word_key = jax.random.split(rng)
    if n == 1:
        teacher = jnp.zeros((), jnp.int32)
        students = jnp.zeros((1,), jnp.int32)
    else:
        chosen = jax.random.choice(choose_key, n, (k + 1,), replace=False).astype(jnp.int32)
        mode = cfg["imitation"]["teacher"]
        if mode == "best":
            pos = jnp.argmax(state.scores[chosen])
        elif mode == "worst":
            pos = jnp.argmin(state.scores[chosen])
        else:  # the draw is already uniform
            pos = jnp.zeros((), jnp.int32)
        teacher = chosen[pos]
        # Stable sort puts the K non-teacher positions first, in draw order.
        students = chosen[jnp.argsort(jnp.arange(k + 1) == pos, stable=True)[:k]]
    teacher_params = gather(state.speakers, teacher)
    if cfg["loss"]["reference_sampling"]:
        words = speaker.sample(teacher_params, word_key, x)[0]
    else:
        words = speaker.greedy(teacher_params, x)
    words = jax.lax.stop_gradient(words)

    def student_update(p, o):
        def loss_fn(p):
            return imitation_loss(speaker.teacher_force(p, x, words)[0], words,
                                  cfg["imitation"]["reduction"])
        loss, g = jax.value_and_grad(loss_fn)(p)
        updates, o = optimizer.update(g, o, p)
        return optax.apply_updates(p, updates), o, loss

    new_p, new_o, losses = jax.vmap(student_update)(
        gather(state.speakers, students), gather(state.speaker_opt, students))
    # Students are distinct, so a scatter writes each exactly once.
    scatter = lambda tree, new: jax.tree_util.tree_map(  # noqa: E731
        lambda a, b: a.at[students].set(b), tree, new)
    return state._replace(speakers=scatter(state.speakers, new_p),
                          speaker_opt=scatter(state.speaker_opt, new_o)), losses.mean()


def reset_agents(cfg: dict, speaker: Speaker, listener: Listener,
                 optimizer: optax.GradientTransformation, state: TrainState,
                 rng: jax.Array, logit_dim: int) -> TrainState:
    """Fresh parameters and optimiser state for one randomly chosen listener, speaker, or both.

    `reset.target`: "listener" (paper App. B.4, after Li & Bowling 2019: "1 pair + reset" resets
    the only listener, "N pairs + reset" one randomly chosen listener), "speaker" or "pair" (the
    reference code's default: one random speaker and one random listener). A reset speaker also
    gets a fresh EMA target (= its new params) and score 0.
    """
    target = cfg["reset"]["target"]
    ks, kl, js, jl = jax.random.split(rng, 4)

    def replace(tree: PyTree, j: jax.Array, fresh: PyTree) -> PyTree:
        return jax.tree_util.tree_map(lambda a, b: a.at[j].set(b[0]), tree, fresh)

    if target in ("speaker", "pair"):
        j = jax.random.randint(js, (), 0, cfg["population"]["num_speakers"])
        sp = init_speakers(cfg, speaker, ks, 1, logit_dim)
        state = state._replace(speakers=replace(state.speakers, j, sp),
                               targets=replace(state.targets, j, sp),
                               speaker_opt=replace(state.speaker_opt, j,
                                                   jax.vmap(optimizer.init)(sp)),
                               scores=state.scores.at[j].set(0.0))
    if target in ("listener", "pair"):
        j = jax.random.randint(jl, (), 0, cfg["population"]["num_listeners"])
        li = init_listeners(cfg, listener, kl, 1, logit_dim)
        state = state._replace(listeners=replace(state.listeners, j, li),
                               listener_opt=replace(state.listener_opt, j,
                                                    jax.vmap(optimizer.init)(li)))
    return state
