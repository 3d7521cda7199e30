"""Device meshes: one axis over slices (reconstruction) or samples (training).

The mesh is built from ``jax.devices()``, so in a multi-host run (after
``jax.distributed.initialize()``) it spans every device of every host.
"""

from __future__ import annotations

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

SLICE_AXIS = "slices"


def make_mesh(num_devices: int | None = None, axis_name: str = SLICE_AXIS) -> Mesh:
    """A one-axis mesh over the first ``num_devices`` devices (default: all).

    The axis type is ``Auto`` (``jax.make_mesh`` defaults to ``Explicit`` in
    current JAX), so ``jit`` with ``NamedSharding`` and ``jax.shard_map`` both
    work on it without sharding-in-types annotations.

    Args:
      num_devices: how many devices to use; ``None`` or ``0`` means all.
      axis_name: name of the mesh axis.

    Returns:
      a `jax.sharding.Mesh` of shape ``(num_devices,)``.
    """
    devices = jax.devices()
    if num_devices in (None, 0):
        num_devices = len(devices)
    if not 1 <= num_devices <= len(devices):
        raise ValueError(
            f"parallel.num_devices={num_devices} but only {len(devices)} device(s) are visible; "
            f"use a value in [1, {len(devices)}] or 0 for all.")
    return jax.make_mesh((num_devices,), (axis_name,), axis_types=(AxisType.Auto,),
                         devices=devices[:num_devices])


def leading_axis_sharding(mesh: Mesh) -> NamedSharding:
    """Shards an array's leading axis over the mesh's (only) axis."""
    return NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))


def replicated(mesh: Mesh) -> NamedSharding:
    """Replicates an array on every device of the mesh."""
    return NamedSharding(mesh, PartitionSpec())
