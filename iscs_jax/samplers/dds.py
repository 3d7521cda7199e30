"""Decomposed Diffusion Sampling (DDS) for volumes, with a 2D slice-wise prior.

One step at noise level sigma (Chung et al., ICLR 2024; Du et al., ICLR 2026):

  1. x0_hat = denoise(x, sigma), every slice, in chunks of ``chunk_size``;
  2. data consistency: ``cg_iters`` CG iterations on
     (A^T A + rho I) x0 = A^T y + rho x0_hat over the whole volume, from x0_hat;
  3. re-noise x0 to the next sigma (`renoise.renoise`) with fresh noise from
     the chosen noise control (iid / ISCS / shared) and the noise estimate
     eps_hat = (x - x0_hat) / sigma.

The last step stops after 2 and returns the data-consistent x0: it runs the
same step body with sigma_next = 0, where every re-noising mode is exactly the
identity on x0 (both coefficients are 0), so one step body serves all steps
(compiled once, shared by `reconstruct` and `reconstruct_loop`).

Keys: step i re-noises with ``fold_in(key, i)`` (i = 0 .. N-1); the initial
draw uses ``fold_in(key, N)``, an index no step uses. Noise of the local slices
is ``noise_fn(step_key, slice_ids, num_slices, (H, W))``, so a slice's noise does
not depend on how the volume is split across devices.

Sharding (inside ``jax.shard_map``): pass ``axis_name`` (CG inner products
are ``lax.psum``-reduced over it), the global ``slice_ids`` of the local slices,
the global ``num_slices`` and a ``slice_mask`` that is 0 on padded slices (those
stay 0 through data consistency and in the output).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp

from iscs_jax import noise as noise_lib
from iscs_jax.samplers import cg, renoise as renoise_lib


class _Problem(NamedTuple):
    """Everything a step needs besides the iterate (closed over, not scanned)."""
    key: jax.Array
    aty: jax.Array
    operator: Any
    denoise_fn: Any
    noise_fn: Any
    slice_ids: jax.Array
    num_slices: int
    mask: jax.Array  # [D, 1, 1]
    inner: Any
    cg_iters: int
    chunk_size: int
    mode: str
    eta: float


def denoise_in_chunks(denoise_fn, x: jax.Array, sigma: jax.Array, chunk_size: int) -> jax.Array:
    """Applies ``denoise_fn(x_chunk [c, H, W], sigma)`` to ``x [D, H, W]`` chunk by chunk.

    D is zero-padded up to a multiple of ``chunk_size``; ``lax.map`` runs the
    chunks one after another so memory stays O(chunk_size H W) per call.

    Returns:
      ``x0_hat [D, H, W]``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
    depth = x.shape[0]
    num_chunks = -(-depth // chunk_size)
    padded = jnp.pad(x, [(0, num_chunks * chunk_size - depth)] + [(0, 0)] * (x.ndim - 1))
    chunks = padded.reshape(num_chunks, chunk_size, *x.shape[1:])
    out = jax.lax.map(lambda c: denoise_fn(c, sigma), chunks)
    return out.reshape(padded.shape)[:depth]


def data_consistency(operator, aty: jax.Array, x0_hat: jax.Array, rho: jax.Array,
                     cg_iters: int, inner=cg.real_inner, mask: jax.Array | float = 1.0) -> jax.Array:
    """``cg_iters`` CG iterations on (A^T A + rho I) x = A^T y + rho x0_hat, from x0_hat.

    Args:
      operator: has ``A`` and ``AT`` (``AT(A(x))`` maps ``[D, H, W]`` to itself).
      aty: ``A^T y``, ``[D, H, W]``.
      x0_hat: denoised volume ``[D, H, W]``.
      rho: Tikhonov weight (scalar >= 0; 0 is plain CG on the normal equations from x0_hat,
        regularised by early stopping, as in the published CT setting).
      cg_iters: number of CG iterations.
      inner: CG inner product (psum-reduced when sharded).
      mask: ``[D, 1, 1]`` (or scalar) multiplying every CG vector; padded
        slices (mask 0) stay exactly 0.

    Returns:
      the data-consistent ``x0 [D, H, W]``.
    """
    apply_fn = lambda v: mask * (operator.AT(operator.A(v)) + rho * v)
    b = mask * (aty + rho * x0_hat)
    return cg.conjugate_gradient(apply_fn, b, mask * x0_hat, cg_iters, inner=inner)


def _estimate(problem: _Problem, x, sigma, rho):
    """Denoise then data consistency: returns (x0 data-consistent, eps_hat)."""
    x0_hat = denoise_in_chunks(problem.denoise_fn, x, sigma, problem.chunk_size)
    x0 = data_consistency(problem.operator, problem.aty, x0_hat, rho, problem.cg_iters,
                          problem.inner, problem.mask)
    return x0, (x - x0_hat) / sigma


def _slice_noise(problem: _Problem, key, shape):
    return problem.noise_fn(key, problem.slice_ids, problem.num_slices, shape[1:])


def _step(problem: _Problem, x, inputs):
    """One step (denoise, DC, re-noise to sigma_next; 0 at the end); a ``lax.scan`` body."""
    index, sigma, sigma_next, rho = inputs
    x0, eps_hat = _estimate(problem, x, sigma, rho)
    fresh = _slice_noise(problem, jax.random.fold_in(problem.key, index), x.shape)
    x_next = renoise_lib.renoise(x0, eps_hat, fresh, sigma, sigma_next,
                                 mode=problem.mode, eta=problem.eta)
    return x_next, None


def _resolve_noise(noise):
    return noise_lib.make_noise_fn(noise) if isinstance(noise, str) else noise


def _global_inner(axis_name):
    if axis_name is None:
        return cg.real_inner
    return lambda u, v: jax.lax.psum(cg.real_inner(u, v), axis_name)


def _check_args(operator, sigmas, chunk_size, cg_iters, axis_name):
    if sigmas.ndim != 1 or sigmas.shape[0] < 1:
        raise ValueError(f"sigmas must be a non-empty 1D array, got shape {sigmas.shape}.")
    if chunk_size < 1 or cg_iters < 0:
        raise ValueError(f"Need chunk_size >= 1 and cg_iters >= 0, got {chunk_size}, {cg_iters}.")
    if axis_name is not None and not getattr(operator, "slicewise", False):
        raise ValueError("axis_name is set but operator.slicewise is not True: a sharded "
                         "sampler can only apply slice-wise operators locally.")


def _initial_volume(problem: _Problem, x_init, sigmas):
    """x_init + sigma_0 n (warm start) or sigma_0 n, n from ``fold_in(key, N)``."""
    shape = problem.aty.shape
    noise = _slice_noise(problem, jax.random.fold_in(problem.key, sigmas.shape[0]), shape)
    if x_init is None:
        return sigmas[0] * noise
    chex.assert_shape(x_init, shape)
    return x_init + sigmas[0] * noise


def _setup(key, y, operator, denoise_fn, *, noise, sigmas, x_init, mode, eta, cg_iters, rho,
           chunk_size, axis_name, slice_ids, num_slices, slice_mask):
    """Validates arguments; returns (problem, x at sigmas[0], per-step scan inputs)."""
    sigmas = jnp.asarray(sigmas, jnp.float32)
    _check_args(operator, sigmas, chunk_size, cg_iters, axis_name)
    aty = operator.AT(y)
    depth = aty.shape[0]
    if slice_ids is None:
        slice_ids, num_slices = jnp.arange(depth), (depth if num_slices is None else num_slices)
    elif num_slices is None:
        raise ValueError("slice_ids given without num_slices: pass the global slice count too.")
    slice_ids = jnp.asarray(slice_ids)
    mask = jnp.ones(depth) if slice_mask is None else jnp.asarray(slice_mask, aty.dtype)
    chex.assert_shape([slice_ids, mask], (depth,))
    problem = _Problem(key, aty, operator, denoise_fn, _resolve_noise(noise), slice_ids,
                       int(num_slices), mask[:, None, None], _global_inner(axis_name),
                       cg_iters, chunk_size, mode, renoise_lib.resolve_eta(mode, eta))
    start = _initial_volume(problem, x_init, sigmas)
    rhos = jnp.broadcast_to(jnp.asarray(rho, jnp.float32), sigmas.shape)
    steps = (jnp.arange(sigmas.shape[0]), sigmas, jnp.append(sigmas[1:], 0.0), rhos)
    return problem, start, steps


def reconstruct(key, y, operator, denoise_fn, *, noise, sigmas, x_init=None, mode="dds",
                eta=None, cg_iters=10, rho=1.0, chunk_size=8, axis_name=None, slice_ids=None,
                num_slices=None, slice_mask=None) -> jax.Array:
    """Reconstructs a volume with DDS and a 2D slice-wise diffusion prior.

    Args:
      key: ``jax.random`` key (the same on every device when sharded).
      y: measurements; ``operator.AT(y)`` has the volume shape ``[D, H, W]``.
      operator: linear operator with ``A``, ``AT`` (and ``slicewise`` when sharded).
      denoise_fn: ``DenoiseFn(x [c, H, W], sigma) -> x0_hat [c, H, W]``.
      noise: a noise-kind name (``"iid"``, ``"iscs"``, ``"shared"``) or a `NoiseFn`.
      sigmas: ``[N]`` decreasing noise levels, e.g. ``VESDE.sigmas(N)``.
      x_init: optional ``[D, H, W]`` warm start, re-noised to ``sigmas[0]``.
      mode: re-noising mode, a key of `renoise.RENOISE_MODES`.
      eta: stochasticity override; ``None`` uses the mode's default.
      cg_iters: CG iterations of each data-consistency step.
      rho: Tikhonov weight, a scalar or ``[N]`` per step (the published code
        uses ``w / sigmas**2``).
      chunk_size: slices per denoiser call.
      axis_name: mesh axis to ``psum`` CG inner products over (inside shard_map).
      slice_ids: ``[D]`` global ids of the local slices (default ``arange(D)``).
      num_slices: global slice count (default D; required with ``slice_ids``).
      slice_mask: ``[D]``, 0 on padded slices (default all ones).

    Returns:
      the data-consistent reconstruction ``[D, H, W]`` (0 where the mask is 0).
    """
    problem, x, steps = _setup(
        key, y, operator, denoise_fn, noise=noise, sigmas=sigmas, x_init=x_init, mode=mode,
        eta=eta, cg_iters=cg_iters, rho=rho, chunk_size=chunk_size, axis_name=axis_name,
        slice_ids=slice_ids, num_slices=num_slices, slice_mask=slice_mask)
    return jax.lax.scan(functools.partial(_step, problem), x, steps)[0]


def reconstruct_loop(key, y, operator, denoise_fn, **kwargs) -> jax.Array:
    """Same as `reconstruct` with a Python loop over steps (for tests and debugging)."""
    problem, x, steps = _setup(key, y, operator, denoise_fn, **_with_defaults(kwargs))
    for i in range(steps[0].shape[0]):
        x, _ = _step(problem, x, jax.tree.map(lambda s: s[i], steps))
    return x


def _with_defaults(kwargs):
    defaults = dict(x_init=None, mode="dds", eta=None, cg_iters=10, rho=1.0, chunk_size=8,
                    axis_name=None, slice_ids=None, num_slices=None, slice_mask=None)
    unknown = set(kwargs) - set(defaults) - {"noise", "sigmas"}
    if unknown:
        raise ValueError(f"Unknown arguments {sorted(unknown)} for reconstruct_loop.")
    return {**defaults, **kwargs}

