"""Decomposed Diffusion Sampling (DDS) for volumes, with a 2D slice-wise prior.

One step at noise level sigma (Chung et al., ICLR 2024; Du et al., ICLR 2026):

  1. x0_hat = denoise(x, sigma), every slice, in chunks;
  2. data consistency: ``cg_iters`` CG iterations on
     (A^T A + rho I) x0 = A^T y + rho x0_hat over the whole volume, from x0_hat;
  3. re-noise x0 to the next sigma with fresh noise from the noise control
     (shared core, `core.sample`).

``final_denoise=True`` (a `core.sample` option every sampler has) adds the
reference's optional last Tweedie step: the data-consistent result x0 is
denoised once more at ``sigmas[-1]`` (sigma_min).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from iscs_jax.samplers import cg, core


@dataclasses.dataclass(frozen=True)
class Settings:
    """DDS settings.

    Attributes:
      cg_iters: CG iterations of each data-consistency step (>= 0).
      rho: Tikhonov weight, a scalar or ``[N]`` per step (the published code uses
        ``w / sigmas**2``; 0 is CG on the normal equations from x0_hat, regularised
        by early stopping, as in the published CT setting).
    """

    cg_iters: int = 10
    rho: Any = 1.0

    def __post_init__(self):
        if int(self.cg_iters) != self.cg_iters or self.cg_iters < 0:
            raise ValueError(f"dds: cg_iters must be an integer >= 0, got {self.cg_iters}.")


def data_consistency(operator, aty: jax.Array, x0_hat: jax.Array, rho: jax.Array,
                     cg_iters: int, inner=cg.real_inner, mask: jax.Array | float = 1.0) -> jax.Array:
    """``cg_iters`` CG iterations on (A^T A + rho I) x = A^T y + rho x0_hat, from x0_hat.

    Args:
      operator: has ``A`` and ``AT`` (``AT(A(x))`` maps ``[D, H, W]`` to itself).
      aty: ``A^T y``, ``[D, H, W]``.
      x0_hat: denoised volume ``[D, H, W]``.
      rho: Tikhonov weight (scalar >= 0).
      cg_iters: number of CG iterations.
      inner: CG inner product (psum-reduced when sharded).
      mask: ``[D, 1, 1]`` (or scalar) multiplying every CG vector; padded
        slices (mask 0) stay exactly 0.

    Returns:
      the data-consistent ``x0 [D, H, W]``.
    """
    return cg.normal_equations(operator, aty, x0_hat, rho, cg_iters, inner, mask)


def step(ctx: core.Context, x, index, sigma):
    """Denoise, then CG data consistency (a `core.StepFn`)."""
    s = ctx.settings
    rho = jnp.asarray(s.rho, jnp.float32)
    rho = rho if rho.ndim == 0 else rho[index]
    x0_hat = ctx.denoise(x, sigma)
    mask = ctx.layout.mask[:, None, None]
    x0 = data_consistency(ctx.operator, ctx.aty, x0_hat, rho, s.cg_iters, ctx.layout.inner, mask)
    return x0, (x - x0_hat) / sigma


def reconstruct(key, y, operator, denoise_fn, *, noise, sigmas, cg_iters: int = 10,
                rho=1.0, **common) -> jax.Array:
    """Reconstructs a volume with DDS and a 2D slice-wise diffusion prior.

    Args:
      key, y, operator, denoise_fn, noise, sigmas: as for `core.sample`.
      cg_iters, rho: see `Settings`.
      **common: `core.sample`'s ``x_init``, ``renoise``, ``eta``, ``chunk_size``,
        ``layout``, ``final_denoise``, ``python_loop``, ``window``.

    Returns:
      the data-consistent reconstruction ``[D, H, W]``.
    """
    settings = Settings(cg_iters, rho)
    if jnp.ndim(rho) not in (0, 1) or jnp.ndim(rho) == 1 and jnp.shape(rho) != jnp.shape(sigmas):
        raise ValueError(f"dds: rho must be a scalar or one value per step {jnp.shape(sigmas)}, "
                         f"got shape {jnp.shape(rho)}.")
    return core.sample(step, settings, key, y, operator, denoise_fn, noise=noise, sigmas=sigmas,
                       **common)
