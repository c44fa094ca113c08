"""Data parallelism over the local devices with `jax.sharding`.

Parameters, optimiser states and the on-device dataset are replicated; each training batch is
sharded along its batch axis. The listener's B x B score matrix needs every candidate's
projection on every device: XLA's SPMD partitioner inserts that all-gather from the shardings, so
the math is exactly the single-device program (up to float reduction order).
"""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named `data` over `devices` (default: all local devices)."""
    devices = list(jax.local_devices() if devices is None else devices)
    return Mesh(np.array(devices), (AXIS,))


def check_batch(mesh: Mesh, batch_size: int) -> None:
    """Raises ValueError unless the batch splits evenly over the mesh's devices."""
    n = mesh.devices.size
    if batch_size % n:
        raise ValueError(f"training.batch_size={batch_size} must be divisible by the number of "
                         f"devices ({n}) for data parallelism")


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding of arrays held whole on every device (params, states, dataset)."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
    """Sharding that splits axis `batch_axis` over the devices."""
    return NamedSharding(mesh, P(*([None] * batch_axis), AXIS))


def replicate(tree, mesh: Mesh):
    """Puts every leaf of `tree` on all devices of the mesh."""
    return jax.device_put(tree, replicated(mesh))


def shard_batch(x, mesh: Mesh, batch_axis: int = 0):
    """Puts host array x on the mesh, split along `batch_axis`."""
    return jax.device_put(x, batch_sharding(mesh, batch_axis))


def constrain_batch(x: jax.Array, mesh: Mesh) -> jax.Array:
    """Inside jit: asks for x (B, ...) to be sharded along B (a no-op on one device)."""
    if mesh.devices.size == 1:
        return x
    return jax.lax.with_sharding_constraint(x, batch_sharding(mesh))
