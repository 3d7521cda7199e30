"""DPS: diffusion posterior sampling (Chung et al., ICLR 2023) for volumes.

One step at noise level sigma:

  1. x0_hat = denoise(x, sigma), keeping the pull-back of the denoiser (``jax.vjp``);
  2. g = grad_x ||y - A x0_hat(x)||_2 through the denoiser: the vjp applied to
     A^T (A x0_hat - y) / ||A x0_hat - y|| (the norm is global over the volume);
  3. re-noise x0_hat (shared core) and take the guidance step:
     x_next = renoise(x0_hat) - step_size g.

Step 3 is written as the clean estimate ``x0 = x0_hat - step_size g`` handed to
the core: re-noising adds to x0 with coefficient 1, so this is exactly DPS's
"unconditional update, then gradient step" (the paper's zeta_i = zeta / ||y - A
x0_hat||, with zeta = ``step_size``). The denoiser is slice-wise, so the vjp of
one device's slices needs no communication; only the residual norm is psum'd.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from iscs_jax.samplers import core

_TINY = 1e-12


@dataclasses.dataclass(frozen=True)
class Settings:
    """DPS settings.

    Attributes:
      step_size: zeta, the weight of the normalised likelihood gradient (> 0).
    """

    step_size: float = 0.1

    def __post_init__(self):
        if not float(self.step_size) >= 0:
            raise ValueError(f"dps: step_size must be >= 0, got {self.step_size}.")


def likelihood_gradient(ctx: core.Context, x, sigma):
    """``(x0_hat, grad_x ||y - A x0_hat(x)||)``, both ``[n, H, W]``."""
    op, layout = ctx.operator, ctx.layout
    x0_hat, pullback = jax.vjp(lambda v: ctx.denoise(v, sigma), x)
    residual = op.A(x0_hat) - ctx.y
    norm = jnp.sqrt(layout.inner(residual, residual))
    cotangent = layout.masked(op.AT(residual)) / jnp.maximum(norm, _TINY)
    return x0_hat, pullback(cotangent.astype(x0_hat.dtype))[0]


def step(ctx: core.Context, x, index, sigma):
    """Denoise with the pull-back, then the guidance step (a `core.StepFn`)."""
    del index
    x0_hat, grad = likelihood_gradient(ctx, x, sigma)
    return x0_hat - ctx.settings.step_size * grad, (x - x0_hat) / sigma


def reconstruct(key, y, operator, denoise_fn, *, noise, sigmas, step_size: float = 0.1,
                **common) -> jax.Array:
    """Reconstructs a volume with DPS and a 2D slice-wise diffusion prior.

    Args:
      key, y, operator, denoise_fn, noise, sigmas: as for `core.sample`.
      step_size: see `Settings`.
      **common: `core.sample`'s ``x_init``, ``renoise``, ``eta``, ``chunk_size``,
        ``layout``, ``final_denoise``, ``python_loop``.

    Returns:
      the reconstruction ``[D, H, W]``.
    """
    return core.sample(step, Settings(step_size), key, y, operator, denoise_fn, noise=noise,
                       sigmas=sigmas, **common)
