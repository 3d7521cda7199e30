"""ADMM z-TV: DiffusionMBIR-style data consistency (Chung et al., CVPR 2023) for volumes.

The 2D prior sees slices one at a time; total variation along z (the slice
axis) ties neighbouring slices together. One step at noise level sigma:

  1. x0_hat = denoise(x, sigma);
  2. x0 ~ argmin_x 1/2 ||A x - y||^2 + lam ||D_z x||_1 + rho/2 ||x - x0_hat||^2
     by ``admm_iters`` iterations of scaled ADMM with the split z = D_z x and
     penalty ``mu``, from x = x0_hat, z = D_z x0_hat, u = 0:
       x <- ``cg_iters`` CG iterations on (A^T A + rho I + mu D_z^T D_z) x
            = A^T y + rho x0_hat + mu D_z^T (z - u), from the current x;
       z <- soft_threshold(D_z x + u, lam / mu);   u <- u + D_z x - z;
  3. re-noise (shared core, `core.sample`).

D_z is the forward difference across slices (`layout.SliceLayout.z_diff`); when
the slices are sharded it exchanges one halo slice with each neighbour. The
ADMM variables start afresh at every diffusion step.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from iscs_jax.samplers import cg, core


@dataclasses.dataclass(frozen=True)
class Settings:
    """ADMM z-TV settings.

    Attributes:
      lam: weight of the z total variation ||D_z x||_1 (>= 0).
      rho: weight of the proximity term rho/2 ||x - x0_hat||^2 (>= 0; 0: the
        prior enters only as the starting point, as in DiffusionMBIR).
      mu: ADMM penalty (> 0).
      admm_iters: ADMM iterations per diffusion step (>= 1).
      cg_iters: CG iterations of each x update (>= 0).
    """

    lam: float = 0.5
    rho: float = 0.0
    mu: float = 5.0
    admm_iters: int = 2
    cg_iters: int = 5

    def __post_init__(self):
        if not (self.lam >= 0 and self.rho >= 0 and self.mu > 0 and self.admm_iters >= 1
                and self.cg_iters >= 0):
            raise ValueError(f"admm_tv: need lam >= 0, rho >= 0, mu > 0, admm_iters >= 1 and "
                             f"cg_iters >= 0, got {self}.")


def soft_threshold(v: jax.Array, threshold) -> jax.Array:
    """The proximal map of ``threshold * |.|_1``: sign(v) max(|v| - threshold, 0)."""
    return jnp.sign(v) * jnp.maximum(jnp.abs(v) - threshold, 0.0)


def admm_z_tv(ctx: core.Context, x0_hat: jax.Array) -> jax.Array:
    """Approximately solves the step-2 problem of the module docstring; ``[n, H, W]``."""
    s, op, layout = ctx.settings, ctx.operator, ctx.layout
    normal = lambda v: layout.masked(op.AT(op.A(v)) + s.rho * v
                                     + s.mu * layout.z_diff_adjoint(layout.z_diff(v)))

    def iteration(_, state):
        x, z, u = state
        rhs = layout.masked(ctx.aty + s.rho * x0_hat + s.mu * layout.z_diff_adjoint(z - u))
        x = cg.conjugate_gradient(normal, rhs, x, s.cg_iters, inner=layout.inner)
        dx = layout.z_diff(x)
        z = soft_threshold(dx + u, s.lam / s.mu)
        return x, z, u + dx - z

    start = (x0_hat, layout.z_diff(x0_hat), jnp.zeros_like(x0_hat))
    return jax.lax.fori_loop(0, s.admm_iters, iteration, start)[0]


def step(ctx: core.Context, x, index, sigma):
    """Denoise, then ADMM z-TV data consistency (a `core.StepFn`)."""
    del index
    x0_hat = ctx.denoise(x, sigma)
    return admm_z_tv(ctx, x0_hat), (x - x0_hat) / sigma


def reconstruct(key, y, operator, denoise_fn, *, noise, sigmas, lam: float = 0.5,
                rho: float = 0.0, mu: float = 5.0, admm_iters: int = 2, cg_iters: int = 5,
                **common) -> jax.Array:
    """Reconstructs a volume with ADMM z-TV data consistency and a 2D slice-wise prior.

    Args:
      key, y, operator, denoise_fn, noise, sigmas: as for `core.sample`.
      lam, rho, mu, admm_iters, cg_iters: see `Settings`.
      **common: `core.sample`'s ``x_init``, ``renoise``, ``eta``, ``chunk_size``,
        ``layout``, ``final_denoise``, ``python_loop``, ``window``.

    Returns:
      the reconstruction ``[D, H, W]``.
    """
    settings = Settings(lam, rho, mu, admm_iters, cg_iters)
    return core.sample(step, settings, key, y, operator, denoise_fn, noise=noise, sigmas=sigmas,
                       **common)
