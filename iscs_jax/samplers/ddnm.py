"""DDNM: range/null-space decomposition (Wang et al., ICLR 2023) for volumes.

One step at noise level sigma:

  1. x0_hat = denoise(x, sigma);
  2. x0 = x0_hat + A^+ (y - A x0_hat): the range-space part of x0 is replaced by
     the one the measurement fixes, the null-space part comes from the prior;
  3. re-noise (shared core, `core.sample`).

A^+ is the operator's exact pseudo-inverse ``pinv`` when it has one and acts
slice by slice; otherwise ``cg_iters`` CG iterations on the normal equations
A^T A d = A^T (y - A x0_hat) from d = 0 (CG from 0 converges to the
minimum-norm solution, i.e. A^+ applied to the residual). Unlike the reference's
CBCT DDNM, which substitutes SIRT iterations on the ground truth's projections,
this uses the measurement y.
"""

from __future__ import annotations

import dataclasses

import jax

from iscs_jax.samplers import cg, core
from iscs_jax.samplers.layout import coupling, has_pinv


@dataclasses.dataclass(frozen=True)
class Settings:
    """DDNM settings.

    Attributes:
      cg_iters: CG iterations of the normal equations when the operator has no
        exact pseudo-inverse (>= 0).
    """

    cg_iters: int = 30

    def __post_init__(self):
        if int(self.cg_iters) != self.cg_iters or self.cg_iters < 0:
            raise ValueError(f"ddnm: cg_iters must be an integer >= 0, got {self.cg_iters}.")


def uses_exact_pinv(operator) -> bool:
    """Whether DDNM applies ``operator.pinv`` (exact, slice-wise) rather than CG."""
    return has_pinv(operator) and coupling(operator) == "slicewise"


def range_null_projection(ctx: core.Context, x0_hat: jax.Array) -> jax.Array:
    """x0_hat + A^+ (y - A x0_hat), ``[n, H, W]`` (0 on padding slices).

    Without an exact pinv: CG on A^T A x = A^T y from x0_hat, the same iterates as
    x0_hat + CG on A^T A d = A^T (y - A x0_hat) from 0, but its right-hand side does
    not shrink to round-off level as x0_hat becomes data-consistent (where float32 CG
    on the singular normal equations would drift along the null space).
    """
    op, layout = ctx.operator, ctx.layout
    if uses_exact_pinv(op):
        return x0_hat + layout.masked(op.pinv(ctx.y - op.A(x0_hat)))
    return cg.normal_equations(op, ctx.aty, x0_hat, 0.0, ctx.settings.cg_iters,
                               inner=layout.inner, mask=layout.mask[:, None, None])


def step(ctx: core.Context, x, index, sigma):
    """Denoise, then range/null-space data consistency (a `core.StepFn`)."""
    del index
    x0_hat = ctx.denoise(x, sigma)
    return range_null_projection(ctx, x0_hat), (x - x0_hat) / sigma


def reconstruct(key, y, operator, denoise_fn, *, noise, sigmas, cg_iters: int = 30,
                **common) -> jax.Array:
    """Reconstructs a volume with DDNM and a 2D slice-wise diffusion prior.

    Args:
      key, y, operator, denoise_fn, noise, sigmas: as for `core.sample`.
      cg_iters: see `Settings`.
      **common: `core.sample`'s ``x_init``, ``renoise``, ``eta``, ``chunk_size``,
        ``layout``, ``final_denoise``, ``python_loop``, ``window``.

    Returns:
      the reconstruction ``[D, H, W]``.
    """
    return core.sample(step, Settings(cg_iters), key, y, operator, denoise_fn, noise=noise,
                       sigmas=sigmas, **common)
