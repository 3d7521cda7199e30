"""Device meshes: one axis over slices (reconstruction) or samples (training).

The mesh is built from ``jax.devices()``, so in a multi-host run (after
``jax.distributed.initialize()``) it spans every device of every host.

Also the slice-sharding helpers the sharded sampler uses: padding the slice
count to a multiple of the device count (`padded_size`, `pad_slices`), placing
host data sharded over the mesh (`shard_slices`) and bringing a result back to
every host (`gather_to_host`), the global ids of a device's slices
(`local_slice_ids`) and a z halo exchange (`halo_exchange`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
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


def initialize_distributed(coordinator_address: str = "", num_processes: int = 0,
                           process_id: int = -1) -> None:
    """Calls ``jax.distributed.initialize`` (multi-host); unset values are left to JAX.

    On a TPU pod or under SLURM JAX detects all three; elsewhere (e.g. several
    processes on one machine, or GPU hosts) pass them. Call before any other JAX use.

    Args:
      coordinator_address: ``"host:port"`` of process 0; ``""``: detect.
      num_processes: total process count; ``0``: detect.
      process_id: this process's index in ``[0, num_processes)``; ``-1``: detect.
    """
    if num_processes < 0 or (num_processes and not -1 <= process_id < num_processes):
        raise ValueError(f"parallel.process_id={process_id} must lie in [0, num_processes="
                         f"{num_processes}) (or -1 to detect it).")
    jax.distributed.initialize(coordinator_address=coordinator_address or None,
                               num_processes=num_processes or None,
                               process_id=None if process_id < 0 else process_id)


def leading_axis_sharding(mesh: Mesh) -> NamedSharding:
    """Shards an array's leading axis over the mesh's (only) axis."""
    return NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))


def replicated(mesh: Mesh) -> NamedSharding:
    """Replicates an array on every device of the mesh."""
    return NamedSharding(mesh, PartitionSpec())


def replicate(tree, mesh: Mesh):
    """Every array leaf of ``tree`` placed on every device of ``mesh`` (e.g. a denoiser's
    weights, placed once and passed to each sharded call). Built with
    ``jax.make_array_from_callback``, so in a multi-host run each process transfers to its
    own devices only (every process must hold the same values); leaves already replicated on
    ``mesh`` are kept as they are."""
    sharding = replicated(mesh)

    def place(leaf):
        if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
            return leaf
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(place, tree)


def padded_size(num_slices: int, num_devices: int) -> int:
    """The smallest multiple of ``num_devices`` that is >= ``num_slices``."""
    if num_slices < 1 or num_devices < 1:
        raise ValueError(f"Need num_slices >= 1 and num_devices >= 1, got {num_slices}, "
                         f"{num_devices}.")
    return -(-num_slices // num_devices) * num_devices


def pad_slices(x: jax.Array, size: int) -> jax.Array:
    """Zero-pads the leading (slice) axis of ``x [D, ...]`` up to ``size`` rows."""
    if size < x.shape[0]:
        raise ValueError(f"Cannot pad {x.shape[0]} slices down to {size}.")
    return jnp.pad(x, [(0, size - x.shape[0])] + [(0, 0)] * (x.ndim - 1))


def shard_slices(x, mesh: Mesh, size: int | None = None) -> jax.Array:
    """Zero-pads host data ``x [D, ...]`` to ``size`` slices and shards it over ``mesh``.

    Built with ``jax.make_array_from_callback``, so in a multi-host run each
    process only transfers its own devices' slices (every process must pass the
    same ``x``, e.g. each reads the same file).

    Args:
      x: array-like ``[D, ...]`` (converted to float32, or complex64 if complex, on the host).
      mesh: one-axis mesh.
      size: padded slice count (default `padded_size(D, mesh.size)`).

    Returns:
      a global ``jax.Array [size, ...]`` sharded along its leading axis.
    """
    host = np.asarray(x)
    host = host.astype(np.complex64 if np.iscomplexobj(host) else np.float32)
    size = padded_size(host.shape[0], mesh.size) if size is None else size
    if size % mesh.size or size < host.shape[0]:
        raise ValueError(f"size={size} must be >= {host.shape[0]} slices and a multiple of the "
                         f"{mesh.size} devices; use padded_size.")
    host = np.pad(host, [(0, size - host.shape[0])] + [(0, 0)] * (host.ndim - 1))
    return jax.make_array_from_callback(host.shape, leading_axis_sharding(mesh),
                                        lambda index: host[index])


def gather_to_host(x: jax.Array) -> np.ndarray:
    """The whole of a (possibly multi-host) global array as a numpy array, on every process."""
    if x.is_fully_addressable:
        return np.asarray(x)
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def local_slice_ids(num_local: int, axis_name: str) -> jax.Array:
    """Global ids ``[num_local]`` of this device's slices (inside ``jax.shard_map``).

    Block layout: device ``i`` along ``axis_name`` holds slices
    ``i * num_local .. (i + 1) * num_local - 1`` of the padded volume.
    """
    return jax.lax.axis_index(axis_name) * num_local + jnp.arange(num_local)


def halo_exchange(x: jax.Array, radius: int, axis_name: str) -> jax.Array:
    """Appends ``radius`` neighbour slices on both sides of a local block.

    Inside ``jax.shard_map`` over a slice-sharded volume: device ``i`` receives
    the last ``radius`` slices of device ``i - 1`` and the first ``radius`` of
    device ``i + 1`` (two ``lax.ppermute``; no wrap-around, so the first and
    last devices get zeros, i.e. a zero boundary in z).

    Args:
      x: local block ``[n, ...]`` with ``n >= radius``.
      radius: halo width in slices (static, >= 0).
      axis_name: the mesh axis the slices are sharded over.

    Returns:
      ``[n + 2 radius, ...]``.
    """
    if radius == 0:
        return x
    if x.shape[0] < radius:
        raise ValueError(f"Halo radius {radius} exceeds the {x.shape[0]} local slices; use "
                         f"fewer devices or more slices.")
    size = jax.lax.axis_size(axis_name)
    to_next = [(i, i + 1) for i in range(size - 1)]
    to_prev = [(i + 1, i) for i in range(size - 1)]
    from_prev = jax.lax.ppermute(x[-radius:], axis_name, perm=to_next)
    from_next = jax.lax.ppermute(x[:radius], axis_name, perm=to_prev)
    return jnp.concatenate([from_prev, x, from_next], axis=0)
