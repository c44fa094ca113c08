"""One population training step: S pairs play and update their agents, then imitation and reset.

Each step draws S = `population.pairs_per_step` (default N) speakers and S listeners uniformly
with replacement and pairs them in order; all pairs play the step's batch. How the S games update
the agents is `population.update`:

- "sequential" (the reference code, trainers/communication_trainer.py): the pairs are applied one
  after the other, each at the current parameters, so a later pair sees agents already updated
  by earlier pairs of the same step. An agent drawn k times takes k Adam steps, and a speaker's
  EMA target and score move once per update.
- "vectorised": the S gradients are taken in one `vmap` at the step's starting parameters, then
  every agent takes one Adam step (and EMA move, and score update) per draw, in draw order. The
  counts are those of "sequential"; the only difference is that an agent's later draws in a
  step use gradients taken before its earlier ones were applied.
- "mean_gradient": one Adam step per drawn agent with the mean of its draws' gradients (EMA and
  score once, with the mean accuracy). An agent is then updated 1 - (1 - 1/N)^N ~ 0.65 times per
  step on average instead of once.

Agents not drawn keep parameters, optimiser state, EMA target and score bit for bit.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from emcom import agents, population
from emcom.config import TrainConfig
from emcom.losses import PairMetrics, make_pair_loss
from emcom.population import PyTree, TrainState, adam_step, gather, scatter


class StepMetrics(NamedTuple):
    """Per-step means over the S pairs; imitation_loss is NaN on steps without imitation."""
    train_accuracy: jax.Array
    speaker_loss: jax.Array
    listener_loss: jax.Array
    entropy: jax.Array
    kl: jax.Array
    imitation_loss: jax.Array


class Game(NamedTuple):
    """What the update modes share: the optimiser, the pair gradient and the config."""
    cfg: TrainConfig
    optimizer: optax.GradientTransformation
    # (speaker, listener, target, x, key) -> ((speaker grad, listener grad), PairMetrics)
    pair_grad: Callable


def _where(mask: jax.Array, new: PyTree, old: PyTree) -> PyTree:
    """Per agent: new where mask (n,) else old, for stacked trees."""
    def pick(a, b):
        return jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)
    return jax.tree_util.tree_map(pick, new, old)


def _per_agent(values: PyTree, idx: jax.Array, n: int, select: jax.Array | None = None) -> PyTree:
    """Sums of the draws' values (S, ...) per agent (n, ...), over the draws in `select` (S,)."""
    def seg(v):
        if select is not None:
            v = jnp.where(select.reshape((-1,) + (1,) * (v.ndim - 1)), v, 0)
        return jax.ops.segment_sum(v, idx, num_segments=n)
    return jax.tree_util.tree_map(seg, values)


def sequential(game: Game, state: TrainState, x: jax.Array, s_idx: jax.Array, l_idx: jax.Array,
               keys: jax.Array) -> tuple[TrainState, PairMetrics]:
    """The S pairs one after the other under `lax.scan`, each loading, updating and storing back
    its speaker (with EMA target and score) and listener."""
    decay = game.cfg.loss.kl_ema

    def one_pair(state: TrainState, draw):
        i, j, key = draw
        sp, li = gather(state.speakers, i), gather(state.listeners, j)
        (g_s, g_l), m = game.pair_grad(sp, li, gather(state.targets, i), x, key)
        sp, so = adam_step(game.optimizer, sp, gather(state.speaker_opt, i), g_s)
        li, lo = adam_step(game.optimizer, li, gather(state.listener_opt, j), g_l)
        score, count = population.update_score(game.cfg, state.scores[i], state.score_counts[i],
                                               m.accuracy)
        state = state._replace(
            speakers=scatter(state.speakers, i, sp), speaker_opt=scatter(state.speaker_opt, i, so),
            targets=scatter(state.targets, i, population.ema(gather(state.targets, i), sp, decay)),
            listeners=scatter(state.listeners, j, li),
            listener_opt=scatter(state.listener_opt, j, lo),
            scores=state.scores.at[i].set(score), score_counts=state.score_counts.at[i].set(count))
        return state, m

    return jax.lax.scan(one_pair, state, (s_idx, l_idx, keys))


def _all_gradients(game: Game, state: TrainState, x: jax.Array, s_idx: jax.Array,
                   l_idx: jax.Array, keys: jax.Array):
    return jax.vmap(game.pair_grad, in_axes=(0, 0, 0, None, 0))(
        gather(state.speakers, s_idx), gather(state.listeners, l_idx),
        gather(state.targets, s_idx), x, keys)


def _draw_counts(idx: jax.Array, n: int) -> jax.Array:
    """(n,) int32 how many of the S draws picked each agent."""
    return jax.ops.segment_sum(jnp.ones_like(idx), idx, num_segments=n)


def _adam_each(game: Game, params: PyTree, opt_state: PyTree, grads: PyTree):
    """One Adam step of every agent of a stack (n, ...) with its gradient (n, ...)."""
    return jax.vmap(lambda p, o, g: adam_step(game.optimizer, p, o, g))(params, opt_state, grads)


def _score_each(game: Game, state: TrainState, accuracy: jax.Array):
    """(scores, counts) (N,) of every speaker after one more update with accuracy (N,)."""
    return jax.vmap(lambda s, c, a: population.update_score(game.cfg, s, c, a))(
        state.scores, state.score_counts, accuracy)


def _draw_rank(idx: jax.Array) -> jax.Array:
    """(S,) for each draw, how many earlier draws picked the same agent."""
    s = idx.shape[0]
    earlier = jnp.arange(s)[None, :] < jnp.arange(s)[:, None]
    return jnp.sum((idx[:, None] == idx[None, :]) & earlier, axis=1)


def vectorised(game: Game, state: TrainState, x: jax.Array, s_idx: jax.Array,
               l_idx: jax.Array, keys: jax.Array) -> tuple[TrainState, PairMetrics]:
    """All S gradients at the starting parameters, then per agent one Adam step per draw.

    Round r applies every agent's (r + 1)-th draw at once (a vmapped Adam over the agents drawn
    more than r times); the number of rounds is the largest draw count of the step.
    """
    (g_s, g_l), m = _all_gradients(game, state, x, s_idx, l_idx, keys)
    decay = game.cfg.loss.kl_ema
    n_s, n_l = state.scores.shape[0], jax.tree_util.tree_leaves(state.listeners)[0].shape[0]
    rank_s, rank_l = _draw_rank(s_idx), _draw_rank(l_idx)
    count_s, count_l = _draw_counts(s_idx, n_s), _draw_counts(l_idx, n_l)

    def round_(r, state: TrainState) -> TrainState:
        on_s, on_l = count_s > r, count_l > r
        sp, so = _adam_each(game, state.speakers, state.speaker_opt,
                            _per_agent(g_s, s_idx, n_s, rank_s == r))
        li, lo = _adam_each(game, state.listeners, state.listener_opt,
                            _per_agent(g_l, l_idx, n_l, rank_l == r))
        speakers = _where(on_s, sp, state.speakers)
        score, count = _score_each(game, state, _per_agent(m.accuracy, s_idx, n_s, rank_s == r))
        return state._replace(
            speakers=speakers, speaker_opt=_where(on_s, so, state.speaker_opt),
            targets=_where(on_s, population.ema(state.targets, speakers, decay), state.targets),
            listeners=_where(on_l, li, state.listeners),
            listener_opt=_where(on_l, lo, state.listener_opt),
            scores=jnp.where(on_s, score, state.scores),
            score_counts=jnp.where(on_s, count, state.score_counts))

    rounds = jnp.maximum(count_s.max(), count_l.max())
    return jax.lax.fori_loop(0, rounds, round_, state), m


def mean_gradient(game: Game, state: TrainState, x: jax.Array, s_idx: jax.Array,
                  l_idx: jax.Array, keys: jax.Array) -> tuple[TrainState, PairMetrics]:
    """One Adam step per drawn agent with the mean gradient of its draws (not the reference's)."""
    (g_s, g_l), m = _all_gradients(game, state, x, s_idx, l_idx, keys)
    decay = game.cfg.loss.kl_ema

    def mean_step(params, opt_state, grads, idx):
        n = jax.tree_util.tree_leaves(params)[0].shape[0]
        counts = _draw_counts(idx, n)
        scale = 1.0 / jnp.maximum(counts, 1).astype(jnp.float32)
        mean = jax.tree_util.tree_map(
            lambda s: s * scale.reshape((-1,) + (1,) * (s.ndim - 1)), _per_agent(grads, idx, n))
        new_p, new_o = _adam_each(game, params, opt_state, mean)
        drawn = counts > 0
        return _where(drawn, new_p, params), _where(drawn, new_o, opt_state), counts

    speakers, speaker_opt, counts = mean_step(state.speakers, state.speaker_opt, g_s, s_idx)
    listeners, listener_opt, _ = mean_step(state.listeners, state.listener_opt, g_l, l_idx)
    drawn = counts > 0
    acc = _per_agent(m.accuracy, s_idx, counts.shape[0]) / jnp.maximum(counts, 1)
    score, count = _score_each(game, state, acc)
    return state._replace(
        speakers=speakers, speaker_opt=speaker_opt, listeners=listeners,
        listener_opt=listener_opt,
        targets=_where(drawn, population.ema(state.targets, speakers, decay), state.targets),
        scores=jnp.where(drawn, score, state.scores),
        score_counts=jnp.where(drawn, count, state.score_counts)), m


_UPDATES = {"sequential": sequential, "vectorised": vectorised, "mean_gradient": mean_gradient}


def make_game(cfg: TrainConfig, speaker: agents.Speaker, listener: agents.Listener) -> Game:
    pair_loss = make_pair_loss(cfg, speaker, listener, cfg.num_candidates)
    return Game(cfg=cfg, optimizer=population.make_optimizer(cfg),
                pair_grad=jax.grad(pair_loss, argnums=(0, 1), has_aux=True))


def make_step(cfg: TrainConfig, speaker: agents.Speaker, listener: agents.Listener,
              feature_dim: int) -> Callable:
    """`step(state, x (B, D)) -> (state, StepMetrics)`: one population step of a resolved config.

    Interaction (`population.update`), then imitation every `imitation.every` = M steps and reset
    every `reset.every` = R steps, on the same batch. As in the reference code's
    lewis_experiment.py, they follow the interaction of 0-based step t when t > 0 and t % M == 0,
    i.e. after the (kM + 1)-th interaction step.
    """
    game = make_game(cfg, speaker, listener)
    pop = cfg.population
    n_pairs = cfg.population.pairs
    interact = _UPDATES[pop.update]
    imitation_every, reset_every = cfg.imitation.every, cfg.reset.every

    def step(state: TrainState, x: jax.Array):
        rng, pair_key, play_key, imitation_key, reset_key = jax.random.split(state.rng, 5)
        s_idx, l_idx = population.sample_pairs(pair_key, pop.num_speakers,
                                               pop.num_listeners, n_pairs)
        t = state.step
        state, m = interact(game, state, x, s_idx, l_idx, jax.random.split(play_key, n_pairs))
        state = state._replace(step=t + 1, rng=rng)
        imitation_loss = jnp.full((), jnp.nan, jnp.float32)
        if imitation_every:
            state, imitation_loss = jax.lax.cond(
                (t > 0) & (t % imitation_every == 0),
                lambda s: population.imitation_step(cfg, speaker, game.optimizer, s, x,
                                                    imitation_key),
                lambda s: (s, imitation_loss), state)
        if reset_every:
            state = jax.lax.cond(
                (t > 0) & (t % reset_every == 0),
                lambda s: population.reset_agents(cfg, speaker, listener, game.optimizer, s,
                                                  reset_key, feature_dim),
                lambda s: s, state)
        return state, StepMetrics(
            train_accuracy=m.accuracy.mean(), speaker_loss=m.speaker_loss.mean(),
            listener_loss=m.listener_loss.mean(), entropy=m.entropy.mean(), kl=m.kl.mean(),
            imitation_loss=imitation_loss)

    return step
