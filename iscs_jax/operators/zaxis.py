"""Z-axis blur: a slice-coupling operator (thick-slice acquisition, z super-resolution).

``ZBlur(kernel, inner)`` measures y = inner.A(B x), where ``B`` convolves the volume
along z (the slice axis) with a short, centred, odd-length kernel (the slice
profile) and a zero boundary, and ``inner`` is an optional slice-wise operator
(e.g. `ParallelBeam`; ``None`` is the identity, i.e. pure z super-resolution /
deblurring). ``AT`` is the exact adjoint: B^T (correlation with the flipped
kernel) after ``inner.AT``.

Sharding. Output slice k of ``B`` reads input slices k - r .. k + r (r = kernel
radius), so a slice-sharded volume needs only an r-slice *halo* from each
neighbouring device: `A_sharded` / `AT_sharded` do one pair of
``lax.ppermute`` (`parallel.halo_exchange`) per application, O(r H W) bytes per
device, instead of an all-gather of the volume (O(D H W)) or GSPMD (which picks
its own collectives and may replicate). Padded slices (those past the real
volume, ``slice_mask == 0``) are zeroed on the way in *and* out of ``B``, so they
act exactly like the zero boundary of the unsharded operator and never leak
into real slices.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from iscs_jax import parallel
from iscs_jax.operators import scan


def _correlate_z(x_ext: jax.Array, taps: tuple[float, ...]) -> jax.Array:
    """out[k] = sum_j taps[j] x_ext[k + j]; ``[n + 2r, ...] -> [n, ...]``."""
    depth = x_ext.shape[0] - len(taps) + 1
    return sum(t * x_ext[j:j + depth] for j, t in enumerate(taps))


def _zero_halo(x: jax.Array, radius: int) -> jax.Array:
    """Zero slices on both sides: the unsharded form of `parallel.halo_exchange`."""
    return jnp.pad(x, [(radius, radius)] + [(0, 0)] * (x.ndim - 1))


def _mask(x: jax.Array, slice_mask: jax.Array) -> jax.Array:
    return x * slice_mask.reshape((-1,) + (1,) * (x.ndim - 1)).astype(x.dtype)


@dataclasses.dataclass(frozen=True)
class ZBlur:
    """y = inner.A(B x), B a zero-boundary convolution along the slice axis.

    Hashable (tuples and a hashable ``inner``), so it can be closed over by
    ``jax.jit`` and ``jax.shard_map``.

    Attributes:
      kernel: odd-length tuple of z taps, centred (``(0.25, 0.5, 0.25)``: each
        measured slice averages its neighbours).
      inner: slice-wise operator applied after the blur (``slicewise`` True),
        or ``None`` for the identity.
      image_shape: (H, W) of a slice; only needed for `measurement_shape` when
        ``inner`` is None (otherwise ``inner.image_shape``).
    """

    kernel: tuple[float, ...] = (0.25, 0.5, 0.25)
    inner: Any = None
    image_shape: tuple[int, int] | None = None

    #: Couples each slice with `halo` neighbours on each side: a sharded sampler
    #: must use `A_sharded` / `AT_sharded`.
    coupling: ClassVar[str] = "halo"

    @classmethod
    def from_settings(cls, volume_shape, *, plane: str = "axial", filter_name: str = "ramp",
                      kernel=(0.25, 0.5, 0.25)) -> "ZBlur":
        """A blur of ``kernel`` along the slices of ``[D, H, W]`` (no inner operator).

        Args:
          volume_shape: ``(D, H, W)``.
          plane: must be ``"axial"`` (the blur runs along the slice axis).
          filter_name: unused.
          kernel: odd-length z taps, centred.
        """
        del filter_name
        scan.require_axial(plane, "zblur")
        return cls(tuple(kernel), image_shape=tuple(volume_shape)[1:])

    def describe(self) -> str:
        """One line, e.g. ``"z blur (3 taps)"``, then the inner operator's."""
        inner = "" if self.inner is None else f", then {self.inner.describe()}"
        return f"z blur ({len(self.kernel)} taps){inner}"

    def __post_init__(self):
        taps = np.asarray(self.kernel, np.float64).reshape(-1)
        if taps.size % 2 == 0 or not np.all(np.isfinite(taps)):
            raise ValueError(f"kernel must be an odd-length sequence of finite taps (centred), "
                             f"got {self.kernel}.")
        if self.inner is not None and not getattr(self.inner, "slicewise", False):
            raise ValueError("inner must be a slice-wise operator (slicewise=True) or None.")
        object.__setattr__(self, "kernel", tuple(float(t) for t in taps))
        if self.image_shape is not None:
            object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))

    @property
    def slicewise(self) -> bool:
        """Legacy flag: ``coupling == "slicewise"`` (False)."""
        return self.coupling == "slicewise"

    @property
    def radius(self) -> int:
        """Halo width r: output slice k depends on input slices k - r .. k + r."""
        return len(self.kernel) // 2

    @property
    def halo(self) -> int:
        """The protocol's halo width (= `radius`)."""
        return self.radius

    @property
    def baseline_name(self) -> str:
        """``"measured"`` (the blurred slices themselves) or the inner operator's baseline."""
        return "measured" if self.inner is None else self.inner.baseline_name

    def measurement_shape(self, num_slices: int) -> tuple[int, ...]:
        """Shape of ``A(x)`` for ``num_slices`` slices."""
        if self.inner is not None:
            return self.inner.measurement_shape(num_slices)
        if self.image_shape is None:
            raise ValueError("ZBlur without inner needs image_shape=(H, W) for "
                             "measurement_shape; pass it when building the operator.")
        return (int(num_slices), *self.image_shape)

    def baseline(self, y: jax.Array) -> jax.Array:
        """The measured (blurred) slices, or ``inner.baseline(y)``: ``[D, H, W]``.

        No deblurring: the baseline is what a reader sees without a prior.
        """
        y = jnp.asarray(y, jnp.float32)
        return y if self.inner is None else self.inner.baseline(y)

    def _inner_A(self, x):
        return x if self.inner is None else self.inner.A(x)

    def _inner_AT(self, y):
        return y if self.inner is None else self.inner.AT(y)

    def A(self, x: jax.Array) -> jax.Array:
        """``[D, H, W] -> inner.A`` of the z-blurred volume (``[D, H, W]`` without inner)."""
        x = jnp.asarray(x, jnp.float32)
        return self._inner_A(_correlate_z(_zero_halo(x, self.radius), self.kernel))

    def AT(self, y: jax.Array) -> jax.Array:
        """Exact adjoint of `A`: measurements ``[D, ...] -> [D, H, W]``."""
        w = self._inner_AT(jnp.asarray(y, jnp.float32))
        return _correlate_z(_zero_halo(w, self.radius), self.kernel[::-1])

    def A_sharded(self, x: jax.Array, axis_name: str, slice_mask: jax.Array) -> jax.Array:
        """`A` on a local block inside ``jax.shard_map`` (halo exchange over ``axis_name``).

        Args:
          x: local slices ``[n, H, W]`` (block layout, see `parallel.local_slice_ids`).
          axis_name: mesh axis the slices are sharded over.
          slice_mask: ``[n]``, 0 on padded slices (treated as the zero boundary).

        Returns:
          the local rows of ``A(x)``, ``[n, ...]``; rows of padded slices are 0.
        """
        x = _mask(jnp.asarray(x, jnp.float32), slice_mask)
        blurred = _correlate_z(parallel.halo_exchange(x, self.radius, axis_name), self.kernel)
        return self._inner_A(_mask(blurred, slice_mask))

    def AT_sharded(self, y: jax.Array, axis_name: str, slice_mask: jax.Array) -> jax.Array:
        """`AT` on a local block inside ``jax.shard_map`` (see `A_sharded`)."""
        w = _mask(self._inner_AT(jnp.asarray(y, jnp.float32)), slice_mask)
        ext = parallel.halo_exchange(w, self.radius, axis_name)
        return _mask(_correlate_z(ext, self.kernel[::-1]), slice_mask)
