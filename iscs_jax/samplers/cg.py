"""Conjugate gradient with a fixed number of iterations, for SPD systems.

Fixed iteration count (``lax.fori_loop``) so it traces once and costs the
same on every device; guarded divisions so an exact solve (residual 0) stays
finite, and the iterate is frozen once the residual norm falls below ``rtol``
times that of ``b`` (in float32, iterating on at round-off level makes CG on a
singular system, such as the normal equations of an underdetermined A, drift
off along the null space). The inner product is pluggable: a sharded caller passes one that
``lax.psum``-reduces over its mesh axis.
"""

from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp

from iscs_jax.operators import protocol

InnerFn = Callable[[jax.Array, jax.Array], jax.Array]


def real_inner(u: jax.Array, v: jax.Array) -> jax.Array:
    """Re <u, v> = Re sum(conj(u) v), a float scalar (also right for real arrays)."""
    return jnp.real(jnp.sum(jnp.conj(u) * v))


def _safe_div(num: jax.Array, den: jax.Array) -> jax.Array:
    """num / den, and 0 where den == 0 (no NaN once the residual vanishes)."""
    nonzero = den != 0
    return jnp.where(nonzero, num / jnp.where(nonzero, den, 1), 0)


def conjugate_gradient(apply_fn: Callable[[jax.Array], jax.Array], b: jax.Array,
                       x0: jax.Array, num_iters: int,
                       inner: InnerFn = real_inner, rtol: float = 1e-5) -> jax.Array:
    """Approximately solves ``M x = b`` for a symmetric positive definite ``M``.

    Args:
      apply_fn: ``v -> M v``, linear, SPD, same shape in and out.
      b: right-hand side, any shape ``S``.
      x0: starting point, shape ``S``.
      num_iters: number of CG iterations (static, >= 0; 0 returns ``x0``).
      inner: ``(u, v) -> scalar`` inner product; default `real_inner`. Pass a
        ``lax.psum``-reduced one when ``b`` is a shard of a larger vector.

    Returns:
      ``x`` of shape ``S`` after ``num_iters`` iterations.
    """
    chex.assert_equal_shape([b, x0])
    if num_iters < 0:
        raise ValueError(f"num_iters must be >= 0, got {num_iters}.")
    r = b - apply_fn(x0)
    threshold = rtol**2 * inner(b, b)
    state = (x0, r, r, inner(r, r))

    def body(_, state):
        x, r, p, rs = state
        active = rs > threshold
        mp = apply_fn(p)
        alpha = jnp.where(active, _safe_div(rs, inner(p, mp)), 0)
        x = x + alpha * p
        r = r - alpha * mp
        rs_new = inner(r, r)
        p = r + jnp.where(active, _safe_div(rs_new, rs), 0) * p
        return x, r, p, jnp.where(active, rs_new, rs)

    return jax.lax.fori_loop(0, num_iters, body, state)[0]


def normal_equations(operator, aty: jax.Array, x0: jax.Array, rho, num_iters: int,
                     inner: InnerFn = real_inner, mask: jax.Array | float = 1.0) -> jax.Array:
    """``num_iters`` CG iterations on (A^T A + rho I) x = A^T y + rho x0, from x0.

    CG runs in the operator's `protocol.gram_form` layout (e.g. slices last for
    `ParallelBeam`), which changes only the order of float additions.

    Args:
      operator: has ``A`` and ``AT`` (and optionally ``gram_form``).
      aty: ``A^T y``, ``[D, H, W]``.
      x0: starting point and Tikhonov centre ``[D, H, W]``.
      rho: Tikhonov weight (scalar >= 0; 0 is plain CG on the normal equations).
      num_iters: CG iterations.
      inner: CG inner product (psum-reduced when sharded); any layout, as it sums
        over every entry.
      mask: ``[D, 1, 1]`` (or scalar) multiplying every CG vector; padded slices
        (mask 0) stay exactly 0. Applied to b and x0 only for a slice-wise operator,
        whose A^T A already keeps zero slices zero.

    Returns:
      ``x [D, H, W]``.
    """
    form = protocol.gram_form(operator)
    if jnp.ndim(mask) == 0:
        apply_fn = lambda v: mask * (form.gram(v) + rho * v)  # noqa: E731
    elif protocol.is_slicewise(operator):
        apply_fn = lambda v: form.gram(v) + rho * v  # noqa: E731
    else:
        full_mask = form.encode(jnp.broadcast_to(mask, x0.shape).astype(x0.dtype))
        apply_fn = lambda v: full_mask * (form.gram(v) + rho * v)  # noqa: E731
    b = form.encode(mask * (aty + rho * x0))
    x = conjugate_gradient(apply_fn, b, form.encode(mask * x0), num_iters, inner=inner)
    return form.decode(x)
