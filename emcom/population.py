"""Populations as stacked parameter trees: state, init, imitation, reset.

N speakers and L listeners; every leaf of `speakers`, `targets` and `speaker_opt` has a leading
axis N, every leaf of `listeners` and `listener_opt` a leading axis L. How the S pairs drawn in a
step update their agents (`population.update`) is `emcom.step`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from emcom.agents import Listener, Speaker
from emcom.config import TrainConfig
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
    scores: jax.Array        # (N,) each speaker's training accuracy score (imitation teacher)
    score_counts: jax.Array  # (N,) float32 updates folded into `scores` since init or reset


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """Adam with the config's hyper-parameters (one state per agent)."""
    o = cfg.optimizer
    return optax.adam(o.learning_rate, b1=o.b1, b2=o.b2, eps=o.eps)


def adam_step(optimizer: optax.GradientTransformation, params: PyTree, opt_state: PyTree,
              grads: PyTree) -> tuple[PyTree, PyTree]:
    """One optimiser step of one agent."""
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def _dummy_inputs(cfg: TrainConfig, feature_dim: int) -> tuple[jax.Array, jax.Array]:
    return (jnp.zeros((1, feature_dim), jnp.float32),
            jnp.zeros((1, cfg.game.message_length), jnp.int32))


def init_speakers(cfg: TrainConfig, speaker: Speaker, rng: jax.Array, n: int, feature_dim: int) -> PyTree:
    """n fresh speakers stacked on axis 0."""
    x, _ = _dummy_inputs(cfg, feature_dim)
    return jax.vmap(speaker.init, (0, None))(jax.random.split(rng, n), x)


def init_listeners(cfg: TrainConfig, listener: Listener, rng: jax.Array, n: int,
                   feature_dim: int) -> PyTree:
    """n fresh listeners stacked on axis 0."""
    x, m = _dummy_inputs(cfg, feature_dim)
    return jax.vmap(listener.init, (0, None, None))(jax.random.split(rng, n), m, x)


def init_targets(cfg: TrainConfig, speaker: Speaker, rng: jax.Array, speakers: PyTree,
                 feature_dim: int) -> PyTree:
    """EMA targets of fresh speakers: a copy of them, or (`speaker.target_init: independent`, the
    reference code's agent.py) a random init of their own."""
    if cfg.speaker.target_init == "copy":
        return jax.tree_util.tree_map(jnp.copy, speakers)
    n = jax.tree_util.tree_leaves(speakers)[0].shape[0]
    return init_speakers(cfg, speaker, rng, n, feature_dim)


def init_state(cfg: TrainConfig, speaker: Speaker, listener: Listener, feature_dim: int) -> TrainState:
    """The state at step 0 of the config's population, from `cfg.seed`.

    One compiled program of the seed's key (the same values as eager, bit for bit;
    tests/test_population.py): run eagerly, the agents' init dispatches hundreds of small ops that
    a fresh process compiles one by one, seconds of every training job, while the persistent
    compilation cache serves one program to every job of the same shapes, whatever its seed."""
    init = jax.jit(lambda key: _init_state(cfg, speaker, listener, feature_dim, key))
    return init(jax.random.PRNGKey(cfg.seed))


def _init_state(cfg: TrainConfig, speaker: Speaker, listener: Listener, feature_dim: int,
                key: jax.Array) -> TrainState:
    p = cfg.population
    optimizer = make_optimizer(cfg)
    rng, ks, kl, kt = jax.random.split(key, 4)
    speakers = init_speakers(cfg, speaker, ks, p.num_speakers, feature_dim)
    listeners = init_listeners(cfg, listener, kl, p.num_listeners, feature_dim)
    def zeros():  # one buffer each: the jitted update donates the state
        return jnp.zeros((p.num_speakers,), jnp.float32)

    return TrainState(
        step=jnp.zeros((), jnp.int32), rng=rng, speakers=speakers,
        targets=init_targets(cfg, speaker, kt, speakers, feature_dim),
        speaker_opt=jax.vmap(optimizer.init)(speakers), listeners=listeners,
        listener_opt=jax.vmap(optimizer.init)(listeners), scores=zeros(), score_counts=zeros())


def gather(tree: PyTree, idx: jax.Array) -> PyTree:
    """Agents idx (S,) of a stacked tree -> a stacked tree with leading axis S (or one agent for
    a scalar idx)."""
    return jax.tree_util.tree_map(lambda a: a[idx], tree)


def scatter(tree: PyTree, idx: jax.Array, new: PyTree) -> PyTree:
    """`tree` with agents idx replaced by `new` (idx distinct, or a scalar)."""
    return jax.tree_util.tree_map(lambda a, b: a.at[idx].set(b), tree, new)


def sample_pairs(rng: jax.Array, num_speakers: int, num_listeners: int,
                 num_pairs: int) -> tuple[jax.Array, jax.Array]:
    """S speaker and S listener indices drawn uniformly with replacement: (S,), (S,) int32."""
    ks, kl = jax.random.split(rng)
    return (jax.random.randint(ks, (num_pairs,), 0, num_speakers, jnp.int32),
            jax.random.randint(kl, (num_pairs,), 0, num_listeners, jnp.int32))


def ema(target: PyTree, params: PyTree, decay: float) -> PyTree:
    """target <- decay * target + (1 - decay) * params (the reference code's convention of the
    paper's eta, paper.md §7)."""
    return jax.tree_util.tree_map(lambda t, p: decay * t + (1.0 - decay) * p, target, params)


def update_score(cfg: TrainConfig, score: jax.Array, count: jax.Array,
                 accuracy: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A speaker's teacher score after one more update with batch accuracy `accuracy`.

    `imitation.score`: "ema", the paper's sigma <- mu sigma + (1 - mu) acc; "cumulative_mean",
    the reference code's mean of every batch accuracy since init (lewis_experiment.py).
    """
    if cfg.imitation.score == "ema":
        mu = cfg.imitation.ema
        return mu * score + (1 - mu) * accuracy, count + 1
    return (count * score + accuracy) / (count + 1), count + 1


def choose_imitation(cfg: TrainConfig, scores: jax.Array, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(teacher (), students (K,)): K = `imitation.students` students and one teacher drawn
    without replacement, the teacher the best / worst by score or a random one of the K + 1.
    With N = 1 the single speaker is its own teacher (self-imitation)."""
    n = scores.shape[0]
    if n == 1:
        return jnp.zeros((), jnp.int32), jnp.zeros((1,), jnp.int32)
    k = cfg.imitation.students
    chosen = jax.random.choice(rng, n, (k + 1,), replace=False).astype(jnp.int32)
    mode = cfg.imitation.teacher
    if mode == "best":
        pos = jnp.argmax(scores[chosen])
    elif mode == "worst":
        pos = jnp.argmin(scores[chosen])
    else:  # the draw is already uniform
        pos = jnp.zeros((), jnp.int32)
    # Stable sort puts the K non-teacher positions first, in draw order.
    return chosen[pos], chosen[jnp.argsort(jnp.arange(k + 1) == pos, stable=True)[:k]]


def imitation_step(cfg: TrainConfig, speaker: Speaker, optimizer: optax.GradientTransformation,
                   state: TrainState, x: jax.Array, rng: jax.Array) -> tuple[TrainState, jax.Array]:
    """Students imitate a teacher's messages on batch x (B, D); returns (state, mean loss ()).

    The teacher speaks greedily (sampled words with `loss.reference_sampling`). Each student
    takes one Adam step (its own optimiser state, shared with its game updates) on the
    cross-entropy to the teacher's words at its own states: `imitation.student: free` (the
    reference code) runs the student on its own sampled words, `forced` teacher-forces it on the
    teacher's. As in the reference (trainers/imitation_trainer.py), the teacher and every student
    sample with one key, so sampled students share the sampled teacher's noise. EMA targets and
    scores are left to the interaction steps.
    """
    choose_key, word_key = jax.random.split(rng)
    teacher, students = choose_imitation(cfg, state.scores, choose_key)
    teacher_params = gather(state.speakers, teacher)
    if cfg.loss.reference_sampling:
        words = speaker.sample(teacher_params, word_key, x)[0]
    else:
        words = speaker.greedy(teacher_params, x)
    words = jax.lax.stop_gradient(words)
    free = cfg.imitation.student == "free"

    def student_update(p, o):
        def loss_fn(p):
            if free:
                logits = speaker.rollout(p, word_key, x).logits
            else:
                logits = speaker.teacher_force(p, x, words)[0]
            return imitation_loss(logits, words, cfg.loss.time_reduction)
        loss, g = jax.value_and_grad(loss_fn)(p)
        return (*adam_step(optimizer, p, o, g), loss)

    new_p, new_o, losses = jax.vmap(student_update)(
        gather(state.speakers, students), gather(state.speaker_opt, students))
    return state._replace(speakers=scatter(state.speakers, students, new_p),
                          speaker_opt=scatter(state.speaker_opt, students, new_o)), losses.mean()


def reset_agents(cfg: TrainConfig, speaker: Speaker, listener: Listener,
                 optimizer: optax.GradientTransformation, state: TrainState,
                 rng: jax.Array, feature_dim: int) -> TrainState:
    """Fresh parameters and optimiser state for one randomly chosen listener, speaker, or both.

    `reset.target`: "listener" (paper App. B.4, after Li & Bowling 2019: "1 pair + reset" resets
    the only listener, "N pairs + reset" one randomly chosen listener), "speaker" or "pair" (the
    reference code's default: one random speaker and one random listener). A reset speaker also
    gets a fresh EMA target (`speaker.target_init`) and a fresh score.
    """
    target = cfg.reset.target
    ks, kl, kt, js, jl = jax.random.split(rng, 5)
    one = lambda tree: gather(tree, 0)  # noqa: E731  (the single agent of a stack of 1)

    if target in ("speaker", "pair"):
        j = jax.random.randint(js, (), 0, cfg.population.num_speakers)
        sp = init_speakers(cfg, speaker, ks, 1, feature_dim)
        state = state._replace(
            speakers=scatter(state.speakers, j, one(sp)),
            targets=scatter(state.targets, j, one(init_targets(cfg, speaker, kt, sp, feature_dim))),
            speaker_opt=scatter(state.speaker_opt, j, one(jax.vmap(optimizer.init)(sp))),
            scores=state.scores.at[j].set(0.0), score_counts=state.score_counts.at[j].set(0.0))
    if target in ("listener", "pair"):
        j = jax.random.randint(jl, (), 0, cfg.population.num_listeners)
        li = init_listeners(cfg, listener, kl, 1, feature_dim)
        state = state._replace(
            listeners=scatter(state.listeners, j, one(li)),
            listener_opt=scatter(state.listener_opt, j, one(jax.vmap(optimizer.init)(li))))
    return state
