"""haiku's LSTM with a hand-written backward pass: the same parameters and forward values.

Why: in autodiff's backward pass the weight gradient is x_and_h^T @ d_gates, a dot whose left
operand is transposed. XLA's CPU backend runs that dot on a slower kernel path than the forward
dot. Transposing x_and_h (B x (E + H), 2 MB at the paper's sizes) into its own buffer first makes
it a plain dot: on the 2-core CPU of docs/performance.md the LSTMs' gradients take about 0.82x
of hk.LSTM's time (`python -m emcom.bench lstm`), and they equal autodiff's to float32 round-off
(tests/test_lstm.py).
"""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np


@jax.custom_vjp
def lstm_cell(w: jax.Array, b: jax.Array, x_and_h: jax.Array, cell: jax.Array):
    """One step of haiku's LSTM (gates i, g, f, o; forget bias 1) on [inputs, hidden] (B, E + H)
    and the cell (B, H): returns (hidden, cell)."""
    return _forward(w, b, x_and_h, cell)[0]


def _forward(w, b, x_and_h, cell):
    i, g, f, o = jnp.split(jnp.dot(x_and_h, w) + b, 4, axis=-1)
    i, g, f, o = jax.nn.sigmoid(i), jnp.tanh(g), jax.nn.sigmoid(f + 1), jax.nn.sigmoid(o)
    c = f * cell + i * g
    tanh_c = jnp.tanh(c)
    return (o * tanh_c, c), (w, x_and_h, cell, i, g, f, o, tanh_c)


def _backward(residuals, cotangents):
    w, x_and_h, cell, i, g, f, o, tanh_c = residuals
    d_h, d_c = cotangents
    d_c = d_c + d_h * o * (1 - tanh_c * tanh_c)
    d_gates = jnp.concatenate([d_c * g * i * (1 - i), d_c * i * (1 - g * g),
                               d_c * cell * f * (1 - f), d_h * tanh_c * o * (1 - o)], axis=-1)
    # The barrier keeps XLA from folding the transpose back into the dot (module docstring).
    x_and_h_t = jax.lax.optimization_barrier(x_and_h.T)
    return x_and_h_t @ d_gates, d_gates.sum(0), d_gates @ w.T, d_c * f


lstm_cell.defvjp(_forward, _backward)


class _GateParams(hk.Module):
    """The parameters `hk.Linear` would create for the gates: same names, shapes and init."""

    def __call__(self, input_size: int, output_size: int) -> tuple[jax.Array, jax.Array]:
        w_init = hk.initializers.TruncatedNormal(stddev=1.0 / np.sqrt(input_size))
        return (hk.get_parameter("w", [input_size, output_size], init=w_init),
                hk.get_parameter("b", [output_size], init=jnp.zeros))


class LSTM(hk.LSTM):
    """`hk.LSTM` (same parameter tree, initial values and outputs) for batched inputs (B, E)."""

    def __call__(self, inputs: jax.Array, prev_state: hk.LSTMState
                 ) -> tuple[jax.Array, hk.LSTMState]:
        if inputs.ndim != 2:
            raise ValueError(f"LSTM: inputs must be (batch, features), got shape {inputs.shape}")
        x_and_h = jnp.concatenate([inputs, prev_state.hidden], axis=-1)
        w, b = _GateParams(name="linear")(x_and_h.shape[-1], 4 * self.hidden_size)
        h, c = lstm_cell(w, b, x_and_h, prev_state.cell)
        return h, hk.LSTMState(hidden=h, cell=c)
