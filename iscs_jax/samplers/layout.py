"""Where a sampler's slices sit: the `SliceLayout` of a (possibly sharded) volume.

A sampler running on one device sees the whole volume; inside ``jax.shard_map``
each device sees a block of it. `SliceLayout` is the one value that tells the
shared sampler core which block: the global ids of the local slices, the global
slice count, a mask that is 0 on padding slices and the mesh axis to reduce
over (``None`` on one device). From it come the global inner product (psum'd),
the per-slice noise draw, and the finite difference across slices (with a
one-slice halo exchange when sharded).

Also `local_operator`, the operator a device applies to its own block, and
`local_measurement`, its share of y (operator protocol, `operators.protocol`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp

from iscs_jax import parallel
from iscs_jax.operators import protocol
from iscs_jax.samplers import cg

@functools.partial(jax.tree_util.register_dataclass, data_fields=["slice_ids", "mask"],
                   meta_fields=["num_slices", "axis_name"])
@dataclasses.dataclass(frozen=True)
class SliceLayout:
    """The local slices of a volume of ``num_slices`` slices.

    Attributes:
      slice_ids: ``[n]`` int, global ids of the local slices (padding ids are >= num_slices).
      mask: ``[n]`` float, 1 on real slices, 0 on padding slices.
      num_slices: D, the global (unpadded) slice count (static).
      axis_name: mesh axis the slices are sharded over, or ``None`` on one device (static).
    """

    slice_ids: jax.Array
    mask: jax.Array
    num_slices: int
    axis_name: str | None = None

    @classmethod
    def whole(cls, depth: int) -> SliceLayout:
        """A whole, unsharded volume of ``depth`` slices."""
        return cls(jnp.arange(depth), jnp.ones(depth, jnp.float32), int(depth))

    @classmethod
    def shard(cls, num_local: int, num_slices: int, axis_name: str) -> SliceLayout:
        """This device's block inside ``jax.shard_map`` (block layout, `parallel.local_slice_ids`)."""
        ids = parallel.local_slice_ids(num_local, axis_name)
        return cls(ids, (ids < num_slices).astype(jnp.float32), int(num_slices), axis_name)

    @property
    def depth(self) -> int:
        """n, the number of local slices."""
        return self.slice_ids.shape[0]

    def psum(self, value: jax.Array) -> jax.Array:
        """Sum over the mesh axis (identity on one device)."""
        return value if self.axis_name is None else jax.lax.psum(value, self.axis_name)

    def inner(self, u: jax.Array, v: jax.Array) -> jax.Array:
        """Global real inner product of two local blocks (psum'd when sharded)."""
        return self.psum(cg.real_inner(u, v))

    def masked(self, x: jax.Array) -> jax.Array:
        """``x [n, ...]`` with padding slices set to 0."""
        return x * self.mask.reshape((-1,) + (1,) * (x.ndim - 1)).astype(x.dtype)

    def noise(self, noise_fn, key: jax.Array, slice_shape) -> jax.Array:
        """``noise_fn``'s draw for the local slices, ``[n, *slice_shape]``."""
        return noise_fn(key, self.slice_ids, self.num_slices, tuple(slice_shape))

    def _with_neighbours(self, x: jax.Array) -> jax.Array:
        """``[n + 2, ...]``: x with the previous and next slice (0 beyond the volume's ends)."""
        if self.axis_name is None:
            return jnp.pad(x, [(1, 1)] + [(0, 0)] * (x.ndim - 1))
        return parallel.halo_exchange(x, 1, self.axis_name)

    def _has_next(self, x: jax.Array) -> jax.Array:
        """1 where slice k and k + 1 are both real slices (the rows of D_z), shaped like x."""
        valid = (self.slice_ids + 1 < self.num_slices).astype(x.dtype)
        return valid.reshape((-1,) + (1,) * (x.ndim - 1))

    def z_diff(self, x: jax.Array) -> jax.Array:
        """D_z x: ``(D_z x)[k] = x[k + 1] - x[k]`` for k < D - 1, 0 on the last and padding slices.

        Args:
          x: local block ``[n, H, W]`` (padding slices 0).

        Returns:
          ``[n, H, W]``; one halo slice is exchanged with each neighbour when sharded.
        """
        ext = self._with_neighbours(x)
        return self._has_next(x) * (ext[2:] - x)

    def z_diff_adjoint(self, w: jax.Array) -> jax.Array:
        """D_z^T w: ``(D_z^T w)[k] = w[k - 1] - w[k]`` (rows of D_z only), ``[n, H, W]``."""
        w = self._has_next(w) * w
        ext = self._with_neighbours(w)
        return self.masked(ext[:-2] - w)


#: Operator-protocol helpers (`operators.protocol`), re-exported for the samplers.
coupling = protocol.coupling
has_pinv = protocol.has_pinv


@dataclasses.dataclass(frozen=True)
class ShardedView:
    """A slice-coupling operator seen from one device inside ``jax.shard_map``.

    ``A`` / ``AT`` map this device's block to its share of the measurement and
    back; the collectives (halo exchange, ...) are inside the operator's
    ``A_sharded`` / ``AT_sharded``.
    """

    operator: Any
    axis_name: str
    slice_mask: jax.Array

    coupling = "slicewise"  # local in, local out: the sampler needs no further care

    def A(self, x):
        return self.operator.A_sharded(x, self.axis_name, self.slice_mask)

    def AT(self, y):
        return self.operator.AT_sharded(y, self.axis_name, self.slice_mask)


def local_operator(operator, layout: SliceLayout | None):
    """The operator a device applies to its block: itself, or a `ShardedView` when sharded.

    Raises:
      ValueError: a slice-coupling operator without ``A_sharded`` / ``AT_sharded``.
    """
    if layout is None or layout.axis_name is None or coupling(operator) == "slicewise":
        return operator
    if hasattr(operator, "A_sharded") and hasattr(operator, "AT_sharded"):
        return ShardedView(operator, layout.axis_name, layout.mask)
    raise ValueError(
        f"{type(operator).__name__} couples slices (coupling {coupling(operator)!r}) and has no "
        "A_sharded/AT_sharded; implement them (halo exchange or all-gather over the axis) or "
        "reconstruct on one device.")


def local_measurement(operator, y: jax.Array, layout: SliceLayout) -> jax.Array:
    """This device's share of ``y``: ``y`` itself unless the operator is ``"global"``.

    For slice-wise and halo operators ``y`` is already sharded by slice; a global
    operator cuts the (replicated) full ``y`` with ``local_measurement(y, axis_name)``.
    """
    if layout.axis_name is None:
        return y
    return protocol.local_measurement(operator, y, layout.axis_name)
