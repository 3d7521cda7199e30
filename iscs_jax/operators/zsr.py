"""Z-axis super-resolution (ZSR): thick slices are means of ``factor`` thin slices along z.

``ZSuperResolution(factor, image_shape, z_axis)`` measures, for a volume ``x`` whose axis
``z_axis`` is z, the thick slices ``y[b] = mean(x[b f : (b + 1) f])`` along z without
overlap; a trailing partial block averages the slices it has. Written as a matrix,
``A = W S`` with ``S`` the 0/1 block-membership matrix and ``W = diag(1 / count_b)``,
so ``A A^T = diag(1 / count_b)`` and the pseudo-inverse ``A^+ = A^T (A A^T)^-1 = S^T``
repeats each thick slice over its block (`pinv`).

Where z is (``z_axis``):

* ``z_axis = 1`` or ``2``: z lies inside each slice (the volume is a stack of planes
  that contain z, e.g. coronal planes ``[Y, Z, X]``). The operator is then slice-wise:
  slice k of ``y`` depends only on slice k of ``x``.
* ``z_axis = 0``: z is the slice axis; thick slice b couples slices ``b f .. b f + f - 1``.
  ``y`` then has ``ceil(D / f)`` rows, not D, so it cannot be sharded in step with the
  thin slices: in the terms of `operators.protocol` the coupling is ``"global"`` (``y`` is
  passed replicated and `local_measurement` cuts each device's view of it), although the
  communication it needs is only a halo of ``halo = factor - 1`` slices.

Sharding (``z_axis = 0``). A device's block of slices need not align with the thick
slices (the sharded sampler pads D to a multiple of the device count only), so a
thick slice may straddle two devices. `A_sharded` therefore exchanges a halo of
``factor - 1`` slices with each neighbour (`parallel.halo_exchange`, two ppermutes of
``(factor - 1) H W`` floats) and returns, for each *local thin slice* j of thick slice
b, ``y_b / sqrt(count_b)``: the measurement seen from the devices is ``V y``, each thick
slice spread over its thin slices and scaled so that ``V^T V = I`` (`local_measurement`
cuts this device's rows of ``V y`` from the full ``y``). Inner products and norms of
local measurements, psum-reduced, are therefore those of ``y`` itself (DPS normalises
by ``||A x - y||``), ``AT_sharded(A_sharded(x))`` is exactly the local rows of
``A^T A x`` and ``AT_sharded(local_measurement(y))`` those of ``A^T y``, for any slice
count and device count. Requiring instead the device block to be a multiple of
``factor`` would avoid the exchange but tie the padding of the sampler (and the usable
device counts) to the operator.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from iscs_jax import parallel
from iscs_jax.data import prepare


def _block_counts(depth: int, factor: int) -> np.ndarray:
    """Slices in each thick slice: ``[ceil(depth / factor)]`` ints (the last may be short)."""
    starts = np.arange(0, depth, factor)
    return np.minimum(factor, depth - starts)


def linear_weights(depth: int, factor: int) -> np.ndarray:
    """Linear interpolation along z between thick-slice centres: float32 ``[D, B]``.

    Thick slice b is centred at ``b f + (count_b - 1) / 2`` (in thin-slice units);
    thin slices before the first or after the last centre take that thick slice.
    """
    counts = _block_counts(depth, factor)
    centres = np.arange(counts.size) * factor + (counts - 1) / 2.0
    weights = np.zeros((depth, counts.size), np.float64)
    for j in range(depth):
        basis = np.eye(counts.size)
        weights[j] = [np.interp(j, centres, basis[b]) for b in range(counts.size)]
    return weights.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class ZSuperResolution:
    """Thick-slice means along z; see the module docstring.

    Hashable, so it can be a static argument of ``jax.jit``.

    Attributes:
      factor: thin slices per thick slice (>= 1).
      image_shape: ``(H, W)`` of one slice of the volume (for `measurement_shape`, and
        the thin z size when z is in-plane).
      z_axis: the axis of the ``[D, H, W]`` volume that is z (0, 1 or 2).
      depth: thin z size when ``z_axis = 0``; ``None`` means ``factor`` times the
        thick-slice count (set it when D is not a multiple of ``factor``).
    """

    factor: int = 4
    image_shape: tuple[int, int] | None = None
    z_axis: int = 0
    depth: int | None = None

    baseline_name: ClassVar[str] = "linear"
    #: Every baseline this operator offers, by name (`baseline_by_name`).
    baseline_names: ClassVar[tuple[str, ...]] = ("linear", "pinv")

    @classmethod
    def from_settings(cls, volume_shape, *, plane: str = "axial", filter_name: str = "ramp",
                      factor: int = 4) -> "ZSuperResolution":
        """Thick slices along z of a stack of ``plane`` images ``[D, H, W]``.

        Args:
          volume_shape: ``(D, H, W)`` of the stack (`data.prepare.to_planes`).
          plane: the images' plane; z is the stack axis (axial) or the rows of each image.
          filter_name: unused (no filtered baseline).
          factor: thin slices per thick slice, an integer >= 1.
        """
        del filter_name
        volume_shape = tuple(volume_shape)
        z_axis = prepare.z_axis(plane)
        return cls(int(factor), volume_shape[1:], z_axis,
                   depth=volume_shape[0] if z_axis == 0 else None)

    def describe(self) -> str:
        """One line, e.g. ``"z super-resolution x4"``."""
        return f"z super-resolution x{self.factor}"

    def __post_init__(self):
        if int(self.factor) < 1:
            raise ValueError(f"factor={self.factor}: the slice-thickness ratio must be an "
                             "integer >= 1 (e.g. 4).")
        if self.z_axis not in (0, 1, 2):
            raise ValueError(f"z_axis must be 0, 1 or 2 (an axis of [D, H, W]), got "
                             f"{self.z_axis}.")
        if self.image_shape is not None:
            shape = tuple(int(s) for s in self.image_shape)
            if len(shape) != 2 or min(shape) < 1:
                raise ValueError(f"image_shape must be (H, W), got {self.image_shape}.")
            object.__setattr__(self, "image_shape", shape)
        if self.depth is not None and int(self.depth) < 1:
            raise ValueError(f"depth must be >= 1 or None, got {self.depth}.")
        object.__setattr__(self, "factor", int(self.factor))

    @property
    def coupling(self) -> str:
        """``"slicewise"`` when z is inside the slices, else ``"global"`` (see the module)."""
        return "global" if self.z_axis == 0 else "slicewise"

    @property
    def volume_shape(self) -> tuple[int, int, int]:
        """``[D, H, W]`` of the thin volume (needs ``image_shape``; D = ``depth``)."""
        if self.z_axis != 0 or self.image_shape is None or self.depth is None:
            raise ValueError("volume_shape is defined along the slice axis (z_axis=0) with "
                             "image_shape and depth: ZSuperResolution(factor, (H, W), depth=D).")
        return (int(self.depth), *self.image_shape)

    @property
    def slicewise(self) -> bool:
        return self.coupling == "slicewise"

    @property
    def halo(self) -> int:
        """Slices a thick slice reaches beyond any one of its members (z_axis = 0)."""
        return self.factor - 1 if self.z_axis == 0 else 0

    def measurement_shape(self, num_slices: int) -> tuple[int, int, int]:
        """Shape of ``A(x)`` for a ``[num_slices, H, W]`` volume."""
        if self.image_shape is None:
            raise ValueError("measurement_shape needs image_shape; build ZSuperResolution("
                             "factor, image_shape=(H, W)).")
        shape = [int(num_slices), *self.image_shape]
        shape[self.z_axis] = -(-shape[self.z_axis] // self.factor)
        return tuple(shape)

    def thin_depth(self, y) -> int:
        """Thin z size of the volume that measurement ``y`` comes from."""
        if self.z_axis == 0:
            return self.depth if self.depth is not None else np.shape(y)[0] * self.factor
        if self.image_shape is not None:
            return self.image_shape[self.z_axis - 1]
        return np.shape(y)[self.z_axis] * self.factor

    def _check(self, array, name: str) -> None:
        if np.ndim(array) != 3:
            raise ValueError(f"ZSuperResolution: {name} must be a volume [D, H, W], got shape "
                             f"{np.shape(array)}.")

    def A(self, x: jax.Array) -> jax.Array:
        """Thick-slice means: ``[D, H, W]`` -> the volume with z shortened to ceil(z / f)."""
        self._check(x, "x")
        z = jnp.moveaxis(jnp.asarray(x), self.z_axis, 0)
        counts = _block_counts(z.shape[0], self.factor)
        padded = parallel.pad_slices(z, counts.size * self.factor)
        sums = padded.reshape(counts.size, self.factor, *z.shape[1:]).sum(axis=1)
        means = sums / jnp.asarray(counts, sums.real.dtype).reshape(-1, 1, 1)
        return jnp.moveaxis(means, 0, self.z_axis)

    def _spread(self, y: jax.Array, scale_fn) -> jax.Array:
        """``S^T diag(scale) y``: thick slice b times ``scale_b`` over its thin slices."""
        self._check(y, "y")
        depth = self.thin_depth(y)
        z = jnp.moveaxis(jnp.asarray(y), self.z_axis, 0)
        if z.shape[0] != -(-depth // self.factor):
            raise ValueError(f"y has {z.shape[0]} thick slices along z but a volume of depth "
                             f"{depth} has {-(-depth // self.factor)} at factor {self.factor}.")
        scale = scale_fn(_block_counts(depth, self.factor)).astype(np.float32)
        z = z * jnp.asarray(scale).reshape(-1, 1, 1)
        return jnp.moveaxis(jnp.repeat(z, self.factor, axis=0)[:depth], 0, self.z_axis)

    def AT(self, y: jax.Array) -> jax.Array:
        """Exact adjoint: thick slice b divided by count_b on each of its thin slices."""
        return self._spread(y, lambda counts: 1.0 / counts)

    def pinv(self, y: jax.Array) -> jax.Array:
        """Exact pseudo-inverse ``S^T``: each thick slice repeated over its block."""
        return self._spread(y, np.ones_like)

    def linear(self, y: jax.Array) -> jax.Array:
        """Linear interpolation along z between thick-slice centres (`linear_weights`)."""
        self._check(y, "y")
        weights = jnp.asarray(linear_weights(self.thin_depth(y), self.factor))
        z = jnp.moveaxis(jnp.asarray(y), self.z_axis, 0)
        return jnp.moveaxis(jnp.tensordot(weights, z, axes=1), 0, self.z_axis)

    def baseline(self, y: jax.Array) -> jax.Array:
        """The ``linear`` baseline ``[D, H, W]`` (see `linear`)."""
        return self.linear(y)

    def baseline_by_name(self, name: str, y: jax.Array) -> jax.Array:
        """One of `baseline_names` applied to ``y``."""
        if name not in self.baseline_names:
            raise ValueError(f"Unknown ZSR baseline {name!r}; valid: {self.baseline_names}.")
        return self.linear(y) if name == "linear" else self.pinv(y)

    # Sharded form (z_axis = 0): see the module docstring.

    def _block_window(self, values, axis_name, slice_mask):
        """Per local thin slice: (sum of masked ``values`` over its thick slice, count)."""
        n, radius = values.shape[0], self.halo
        mask = slice_mask.reshape((-1,) + (1,) * (values.ndim - 1)).astype(values.dtype)
        ext = parallel.halo_exchange(mask * values, radius, axis_name)
        ext_mask = parallel.halo_exchange(mask, radius, axis_name)
        phase = parallel.local_slice_ids(n, axis_name) % self.factor
        first = jnp.arange(n) - phase + radius  # ext index of each slice's block start
        sums = sum(ext[first + k] for k in range(self.factor))
        counts = sum(ext_mask[first + k] for k in range(self.factor))
        return sums, jnp.maximum(counts, 1.0), mask

    def A_sharded(self, x: jax.Array, axis_name: str, slice_mask: jax.Array) -> jax.Array:
        """Local view of ``A`` inside ``jax.shard_map``: ``[n, H, W] -> [n, H, W]``.

        Row j is the mean of the thick slice b holding local thin slice j divided by
        ``sqrt(count_b)`` (the rows of ``V A x``, module docstring; 0 on padded slices);
        slice-wise operators (z in-plane) apply `A` directly.
        """
        if self.slicewise:
            return self.A(x)
        sums, counts, mask = self._block_window(jnp.asarray(x), axis_name, slice_mask)
        return mask * sums / (counts * jnp.sqrt(counts))

    def AT_sharded(self, y: jax.Array, axis_name: str, slice_mask: jax.Array) -> jax.Array:
        """Local rows of ``A^T`` for the local view of `A_sharded` / `local_measurement`."""
        if self.slicewise:
            return self.AT(y)
        y = jnp.asarray(y)
        _, counts, mask = self._block_window(jnp.zeros_like(y[:, :1, :1]), axis_name,
                                             slice_mask)
        return mask * y / jnp.sqrt(counts)

    def local_measurement(self, y: jax.Array, axis_name: str) -> jax.Array:
        """This device's rows of ``V y`` from the full ``y`` (replicated), in ``jax.shard_map``.

        ``y_b / sqrt(count_b)`` for each local thin slice j of thick slice b, in the block
        layout (`parallel.local_slice_ids`, ``ceil(D / devices)`` slices per device);
        padded slices get 0. Identity when the operator is slice-wise.
        """
        if self.slicewise:
            return y
        y = jnp.asarray(y)
        depth = self.thin_depth(y)
        num_local = -(-depth // jax.lax.axis_size(axis_name))
        ids = parallel.local_slice_ids(num_local, axis_name)
        blocks = jnp.minimum(ids // self.factor, y.shape[0] - 1)
        counts = jnp.asarray(_block_counts(depth, self.factor), y.dtype)[blocks]
        scale = (ids < depth).astype(y.dtype) / jnp.sqrt(counts)
        return y[blocks] * scale.reshape(-1, 1, 1)
