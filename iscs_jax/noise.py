"""Per-slice noise controls: independent (``iid``), ISCS and ``shared``.

Every control is a pure function of ``(key, global slice index)``: asking for
any subset of slice ids returns exactly the rows the full volume would have.
That is what makes sharded sampling independent of the device count, and it is
why ISCS here never materialises the 16·D-point SLERP path of the reference
implementation: slice ``k`` is computed directly from its closed-form position
``a_k`` on the path.

All functions take an explicit ``jax.random`` key and are jit-compatible
(``num_slices`` and ``slice_shape`` are static).
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

import chex
import jax
import jax.numpy as jnp

#: Interior points per slice on the reference SLERP path (Du et al., 2026).
PATH_POINTS_PER_SLICE = 16
_DOT_EPS = 1e-8
_CLIP_EPS = 1e-7
_THETA_EPS = 1e-6


class NoiseFn(Protocol):
    """``noise(key, slice_ids, num_slices, slice_shape) -> [len(slice_ids), *slice_shape]``."""

    def __call__(self, key: jax.Array, slice_ids: jax.Array, num_slices: int,
                 slice_shape: Sequence[int]) -> jax.Array: ...


def slice_alphas(slice_ids: jax.Array, num_slices: int) -> jax.Array:
    """Positions on the SLERP path of the given global slice ids.

    a_k = (16 k + 1 + 8 (D mod 2)) / (16 D + 1), with D = ``num_slices``.

    Args:
      slice_ids: integer array ``[n]`` of global slice indices in ``[0, D)``.
      num_slices: D, the number of slices of the whole volume.

    Returns:
      float32 ``[n]`` in (0, 1).
    """
    stride = PATH_POINTS_PER_SLICE
    offset = 1 + (stride // 2) * (num_slices % 2)
    ids = jnp.asarray(slice_ids, jnp.float32)
    return (stride * ids + offset) / (stride * num_slices + 1)


def slerp_alphas(num_slices: int) -> jax.Array:
    """The D path positions of a whole volume, ``[D]`` (see `slice_alphas`)."""
    if num_slices < 1:
        raise ValueError(f"num_slices must be >= 1, got {num_slices}.")
    return slice_alphas(jnp.arange(num_slices), num_slices)


def slerp(z0: jax.Array, z1: jax.Array, alphas: jax.Array) -> jax.Array:
    """Spherical interpolation between two arrays of the same shape.

    theta = arccos(clip(<z0, z1> / (|z0| |z1| + 1e-8), -1 + 1e-7, 1 - 1e-7));
    nearly (anti)parallel endpoints (theta within 1e-6 of 0 or pi) fall back
    to linear interpolation, selected with ``jnp.where`` so it stays traceable.

    Args:
      z0, z1: endpoints, same shape ``S``.
      alphas: ``[n]`` interpolation positions.

    Returns:
      ``[n, *S]``.
    """
    chex.assert_equal_shape([z0, z1])
    flat0, flat1 = z0.ravel(), z1.ravel()
    cos = jnp.dot(flat0, flat1) / (jnp.linalg.norm(flat0) * jnp.linalg.norm(flat1) + _DOT_EPS)
    theta = jnp.arccos(jnp.clip(cos, -1 + _CLIP_EPS, 1 - _CLIP_EPS))
    w0, w1 = slerp_weights(theta, jnp.asarray(alphas, z0.dtype))
    # A K=2 matrix product rather than broadcasting: fused elementwise, XLA would re-evaluate the
    # sines of the [n] weights once per voxel instead of once per slice.
    weights = jnp.stack([w0, w1], axis=1)  # [n, 2]
    endpoints = jnp.stack([flat0, flat1])  # [2, prod(S)]
    out = jnp.matmul(weights, endpoints, precision=jax.lax.Precision.HIGHEST)
    return out.reshape(weights.shape[0], *z0.shape)


def slerp_weights(theta: jax.Array, alphas: jax.Array) -> tuple[jax.Array, jax.Array]:
    """SLERP weights ``(w0, w1)``, each ``[n]``, for the angle ``theta`` between endpoints.

    w0 = sin((1 - a) theta) / (sin theta + 1e-8), w1 = sin(a theta) / (sin theta + 1e-8);
    within 1e-6 of 0 or pi the linear weights (1 - a, a) are used instead. (In float32 the
    clipped arccos of `slerp` never comes that close, as in the reference code; the branch
    matters for float64 and for callers passing theta directly.)
    """
    sin_theta = jnp.sin(theta) + _DOT_EPS
    w0 = jnp.sin((1 - alphas) * theta) / sin_theta
    w1 = jnp.sin(alphas * theta) / sin_theta
    degenerate = (theta < _THETA_EPS) | (jnp.abs(theta - jnp.pi) < _THETA_EPS)
    return jnp.where(degenerate, 1 - alphas, w0), jnp.where(degenerate, alphas, w1)


def iscs_from_endpoints(z0: jax.Array, z1: jax.Array, slice_ids: jax.Array,
                        num_slices: int) -> jax.Array:
    """ISCS noise of the requested slices from two endpoints.

    Args:
      z0, z1: Gaussian endpoints of one slice's shape ``S``.
      slice_ids: ``[n]`` global slice indices.
      num_slices: D, slices of the whole volume.

    Returns:
      ``[n, *S]``: slerp(z0, z1, a_k) for each requested k.
    """
    return slerp(z0, z1, slice_alphas(slice_ids, num_slices))


def _iid(key, slice_ids, num_slices, slice_shape):
    del num_slices
    draw = lambda k: jax.random.normal(jax.random.fold_in(key, k), slice_shape)
    return jax.vmap(draw)(jnp.asarray(slice_ids, jnp.uint32))


def _iscs(key, slice_ids, num_slices, slice_shape):
    key0, key1 = jax.random.split(key)
    z0 = jax.random.normal(key0, slice_shape)
    z1 = jax.random.normal(key1, slice_shape)
    # Materialise the endpoints once: otherwise XLA fuses the Gaussian transform of the random
    # bits into the output loop and recomputes it for every requested slice (~3x slower).
    z0, z1 = jax.lax.optimization_barrier((z0, z1))
    return iscs_from_endpoints(z0, z1, slice_ids, num_slices)


def _shared(key, slice_ids, num_slices, slice_shape):
    del num_slices
    z = jax.random.normal(key, slice_shape)
    return jnp.broadcast_to(z, (jnp.shape(slice_ids)[0], *slice_shape))


NOISE_KINDS: dict[str, Callable[..., jax.Array]] = {
    "iid": _iid,
    "iscs": _iscs,
    "shared": _shared,
}


def slice_noise(key: jax.Array, kind: str, slice_ids: jax.Array, num_slices: int,
                slice_shape: Sequence[int]) -> jax.Array:
    """Standard-normal noise for the requested slices of a D-slice volume.

    Args:
      key: a ``jax.random`` key shared by all devices for this step.
      kind: ``"iid"`` (slice k from ``fold_in(key, k)``), ``"iscs"``
        (slerp between two endpoints drawn from ``key``) or ``"shared"``
        (the same draw for every slice; an ablation).
      slice_ids: ``[n]`` global slice indices.
      num_slices: D, slices of the whole volume (static).
      slice_shape: shape of one slice, e.g. ``(H, W)`` (static).

    Returns:
      float32 ``[n, *slice_shape]``; row i depends only on (key, slice_ids[i]).
    """
    return make_noise_fn(kind)(key, slice_ids, num_slices, tuple(slice_shape))


def make_noise_fn(kind: str) -> NoiseFn:
    """Returns the `NoiseFn` of a noise control by name (see `slice_noise`)."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"Unknown noise kind {kind!r}; valid kinds: {sorted(NOISE_KINDS)}.")
    return NOISE_KINDS[kind]
