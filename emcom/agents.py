"""Speaker and Listener of the Lewis game (paper App. A.2) as haiku modules and pure functions.

Shapes: B batch, D input features (2048), T message length, V vocabulary size, F projection size
(256), C candidates. Every function below is pure (params in, arrays out) so that it can be
`vmap`ped over a population whose parameter trees are stacked on a leading agent axis.

Speaker: linear adapter D -> 2H split into the LSTM's initial (hidden, cell); word embedding of
V + 1 symbols (index V is the start symbol `sos`); LSTM H; heads on the hidden output: policy
(V logits), value (1) and a dueling Q head (value' + advantage - mean advantage, V outputs) used
only by the policy-gradient loss. Listener: word embedding V, LSTM (zero initial state), projection
of the last output to F; candidate projection D -> F; score = cosine / temperature.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp

from emcom.config import TrainConfig
from emcom.lstm import LSTM


class Rollout(NamedTuple):
    """A speaker's messages and the per-step outputs of its policy."""
    message: jax.Array   # (B, T) int32
    logits: jax.Array    # (B, T, V) policy logits at the visited states
    values: jax.Array    # (B, T) value baseline
    q_values: jax.Array  # (B, T, V) dueling Q head (policy-gradient loss only)


class SpeakerModule(hk.Module):
    """The speaker network; its three call modes share one parameter tree."""

    def __init__(self, vocab_size: int, message_length: int, hidden_size: int, embed_dim: int,
                 name: str = "speaker"):
        super().__init__(name=name)
        self.vocab_size = vocab_size
        self.message_length = message_length
        self.adapter = hk.Linear(2 * hidden_size, name="adapter")
        self.embed = hk.Embed(vocab_size + 1, embed_dim, name="embed")  # + sos
        self.lstm = LSTM(hidden_size, name="lstm")
        self.policy = hk.Linear(vocab_size, name="policy")
        self.value = hk.Linear(1, name="value")
        self.q_state_value = hk.Linear(1, name="q_state_value")
        self.q_advantage = hk.Linear(vocab_size, name="q_advantage")

    def _initial(self, x: jax.Array) -> tuple[hk.LSTMState, jax.Array]:
        h, c = jnp.split(self.adapter(x), 2, axis=-1)  # (B, H) each
        sos = jnp.full((x.shape[0],), self.vocab_size, jnp.int32)
        return hk.LSTMState(hidden=h, cell=c), sos

    def _heads(self, outputs: jax.Array, logits: jax.Array, message: jax.Array) -> Rollout:
        # outputs (T, B, H), logits (T, B, V), message (T, B): heads batched over all T at once.
        values = self.value(outputs)[..., 0]
        advantage = self.q_advantage(outputs)
        q = self.q_state_value(outputs) + advantage - advantage.mean(-1, keepdims=True)
        return Rollout(message=message.T.astype(jnp.int32), logits=logits.swapaxes(0, 1),
                       values=values.T, q_values=q.swapaxes(0, 1))

    def unroll(self, x: jax.Array, key: jax.Array | None) -> Rollout:
        """Generates messages word by word: sampled with `key`, or greedy (argmax) if key is None."""
        state, word = self._initial(x)

        def step(carry, step_key):
            state, word = carry
            out, state = self.lstm(self.embed(word), state)
            logits = self.policy(out)
            if step_key is None:
                word = jnp.argmax(logits, axis=-1).astype(jnp.int32)
            else:
                word = jax.random.categorical(step_key, logits).astype(jnp.int32)
            return (state, word), (out, logits, word)

        keys = None if key is None else jax.random.split(key, self.message_length)
        _, (outputs, logits, message) = hk.scan(
            step, (state, word), keys, length=self.message_length)
        return self._heads(outputs, logits, message)

    def teacher_force(self, x: jax.Array, message: jax.Array) -> Rollout:
        """Runs the policy on given words (B, T): the input at t is word t-1 (sos at t = 0)."""
        state, sos = self._initial(x)
        message = message.astype(jnp.int32)
        inputs = jnp.concatenate([sos[:, None], message[:, :-1]], axis=1).T  # (T, B)
        outputs, _ = hk.dynamic_unroll(self.lstm, self.embed(inputs), state)
        return self._heads(outputs, self.policy(outputs), message.T)


class Speaker(NamedTuple):
    """Pure functions of a speaker; `params` is the haiku parameter tree from `init`."""
    init: Callable       # (rng, x (B, D)) -> params
    rollout: Callable    # (params, rng, x) -> Rollout, words sampled
    sample: Callable     # (params, rng, x) -> (message (B, T), logits (B, T, V), values (B, T))
    greedy: Callable     # (params, x) -> message (B, T) int32, argmax words (evaluation)
    teacher_force: Callable  # (params, x, message (B, T)) -> (logits (B, T, V), values (B, T))
    teacher_force_full: Callable  # (params, x, message) -> Rollout with the given message


def make_speaker(cfg: TrainConfig) -> Speaker:
    """Builds the speaker of a resolved config (`emcom.config.resolve`)."""
    g, s = cfg.game, cfg.speaker

    def module():
        return SpeakerModule(g.vocab_size, g.message_length, s.hidden_size,
                             s.embed_dim)

    def f():
        net = module()

        def init(x):
            # Touches every submodule: both unroll modes share these parameters.
            return net.teacher_force(x, net.unroll(x, None).message)

        return init, (lambda x, key: net.unroll(x, key), net.teacher_force)

    t = hk.without_apply_rng(hk.multi_transform(f))
    unroll_fn, force_fn = t.apply

    def rollout(params, rng, x):
        return unroll_fn(params, x, rng)

    def sample(params, rng, x):
        r = rollout(params, rng, x)
        return r.message, r.logits, r.values

    def greedy(params, x):
        return unroll_fn(params, x, None).message

    def teacher_force_full(params, x, message):
        return force_fn(params, x, message)

    def teacher_force(params, x, message):
        r = teacher_force_full(params, x, message)
        return r.logits, r.values

    return Speaker(init=t.init, rollout=rollout, sample=sample, greedy=greedy,
                   teacher_force=teacher_force, teacher_force_full=teacher_force_full)


class MessageEncoder(hk.Module):
    """Word embedding + LSTM (zero initial state); returns the last output (B, H).

    Shared by the listener and the ease-of-learning heads (classification of labels/attributes).
    """

    def __init__(self, vocab_size: int, hidden_size: int, embed_dim: int,
                 name: str = "message_encoder"):
        super().__init__(name=name)
        self.embed = hk.Embed(vocab_size, embed_dim, name="embed")
        self.lstm = LSTM(hidden_size, name="lstm")

    def __call__(self, message: jax.Array) -> jax.Array:
        inputs = self.embed(message.astype(jnp.int32).T)  # (T, B, E)
        outputs, _ = hk.dynamic_unroll(
            self.lstm, inputs, self.lstm.initial_state(message.shape[0]))
        return outputs[-1]


def message_encoder(cfg: TrainConfig) -> MessageEncoder:
    """The listener's message encoder with the sizes of a resolved config (call inside haiku)."""
    lc = cfg.listener
    return MessageEncoder(cfg.game.vocab_size, lc.hidden_size, lc.embed_dim)


class Listener(NamedTuple):
    """Pure functions of a listener; `params` is the haiku parameter tree from `init`."""
    init: Callable               # (rng, message (B, T), x (B, D)) -> params
    encode_message: Callable     # (params, message (B, T)) -> (B, F) projection, not normalised
    encode_candidates: Callable  # (params, x (C, D)) -> (C, F) projection, not normalised
    scores: Callable             # (params, message (B, T), candidates (C, D)) -> (B, C)
    temperature: float


def cosine_scores(p: jax.Array, t: jax.Array, temperature: float) -> jax.Array:
    """cos(p_i, t_j) / temperature for all i, j as one matmul: p (B, F), t (C, F) -> (B, C)."""
    eps = 1e-12  # an all-zero projection scores 0 instead of NaN
    p = p * jax.lax.rsqrt(jnp.sum(p * p, axis=-1, keepdims=True) + eps)
    t = t * jax.lax.rsqrt(jnp.sum(t * t, axis=-1, keepdims=True) + eps)
    return (p @ t.T) / temperature


def make_listener(cfg: TrainConfig) -> Listener:
    """Builds the listener of a resolved config (`emcom.config.resolve`).

    The temperature (`listener.temperature`, default 0.5) reproduces the reference code's score
    -|p^ - t^|^2 = 2 cos - 2, whose softmax equals that of cos / 0.5 (paper.md §7).
    """
    lc = cfg.listener

    def f():
        encoder = message_encoder(cfg)
        message_proj = hk.Linear(lc.proj_dim, name="message_proj")
        candidate_proj = hk.Linear(lc.proj_dim, name="candidate_proj")

        def encode_message(message):
            return message_proj(encoder(message))

        def init(message, x):
            return encode_message(message), candidate_proj(x)

        return init, (encode_message, candidate_proj)

    t = hk.without_apply_rng(hk.multi_transform(f))
    enc_m, enc_c = t.apply
    temperature = float(lc.temperature)

    def scores(params, message, candidates):
        return cosine_scores(enc_m(params, message), enc_c(params, candidates), temperature)

    return Listener(init=t.init, encode_message=enc_m, encode_candidates=enc_c, scores=scores,
                    temperature=temperature)


class Classifier(NamedTuple):
    """A fresh message classifier for the ease-of-learning stage."""
    init: Callable   # (rng, message (B, T)) -> params
    apply: Callable  # (params, message (B, T)) -> logits (B, K)


def make_classifier(cfg: TrainConfig, num_outputs: int) -> Classifier:
    """Listener message encoder (embed + LSTM of a resolved config) followed by a linear head.

    For K-way classification use softmax cross-entropy on the (B, K) logits; for A binary
    attributes use num_outputs = A and a sigmoid per output.
    """
    if num_outputs < 1:
        raise ValueError(f"make_classifier: num_outputs must be >= 1, got {num_outputs}")

    def f(message):
        return hk.Linear(num_outputs, name="head")(message_encoder(cfg)(message))

    t = hk.without_apply_rng(hk.transform(f))
    return Classifier(init=t.init, apply=t.apply)
