"""Re-noising rules of the DDS family: from a clean estimate back to sigma_next.

Every mode writes the next iterate as

    x_next = x0 + c_det * eps_hat + c_sto * n,

with
  * ``x0``: the *data-consistent* clean estimate (the output of the CG step),
  * ``eps_hat = (x - x0_hat) / sigma``: the current noise estimate, from the
    noisy input ``x`` at level ``sigma`` and the denoiser output ``x0_hat``
    *before* data consistency (= -sigma * score; the published ISCS code
    forms it from the score of ``x``),
  * ``n``: fresh standard noise from the chosen noise control (iid/ISCS/shared).

Coefficients ``(c_det, c_sto)`` per mode:
  * ``ddpm`` / ``dds`` / ``diffpir`` (variance preserving, c_det^2 + c_sto^2 =
    sigma_next^2): c_sto = eta sigma_next, c_det = sqrt(1 - eta^2) sigma_next.
    Default eta: ddpm 1 (x0 + sigma_next n), dds 0.85 (DDS, Chung et al. 2024),
    diffpir 0.5 (DiffPIR's zeta = eta^2 = 0.25). Note: the published ISCS code
    uses c_det = (1 - eta) sigma_next for DiffPIR, i.e. total std
    0.71 sigma_next at eta = 0.5; we keep the variance-preserving form of the
    DiffPIR paper.
  * ``ddim`` (default eta 1): c_sto = min(eta sqrt(sigma^2 - sigma_next^2),
    sigma_next), c_det = sqrt(sigma_next^2 - c_sto^2); the stochastic part is
    the VE reverse-SDE step noise, as in the published code (which does not
    cap c_sto; the cap only matters when sigma > sqrt(2) sigma_next, and keeps
    the variance at sigma_next^2).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

CoefFn = Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]

#: Default stochasticity eta of each mode (configs may override it).
DEFAULT_ETAS: dict[str, float] = {"ddpm": 1.0, "ddim": 1.0, "dds": 0.85, "diffpir": 0.5}


def _variance_preserving(sigma, sigma_next, eta):
    del sigma
    return jnp.sqrt(1 - eta**2) * sigma_next, eta * sigma_next


def _ddim(sigma, sigma_next, eta):
    c_sto = jnp.minimum(eta * jnp.sqrt(jnp.maximum(sigma**2 - sigma_next**2, 0)), sigma_next)
    return jnp.sqrt(jnp.maximum(sigma_next**2 - c_sto**2, 0)), c_sto


RENOISE_MODES: dict[str, CoefFn] = {
    "ddpm": _variance_preserving,
    "ddim": _ddim,
    "dds": _variance_preserving,
    "diffpir": _variance_preserving,
}


def resolve_eta(mode: str, eta: float | None) -> float:
    """``eta`` if given, else the mode's default; validates both."""
    if mode not in RENOISE_MODES:
        raise ValueError(f"Unknown re-noising mode {mode!r}; valid modes: {sorted(RENOISE_MODES)}.")
    eta = DEFAULT_ETAS[mode] if eta is None else eta
    if not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta} (mode {mode!r}).")
    return float(eta)


def renoise(x0: jax.Array, eps_hat: jax.Array, noise: jax.Array, sigma: jax.Array,
            sigma_next: jax.Array, *, mode: str = "dds", eta: float | None = None) -> jax.Array:
    """Brings a clean estimate back to noise level ``sigma_next``.

    Args:
      x0: data-consistent clean estimate ``[D, H, W]``.
      eps_hat: current noise estimate ``(x - x0_hat) / sigma``, ``[D, H, W]``.
      noise: fresh standard noise ``[D, H, W]`` from the noise control.
      sigma: current noise level (scalar).
      sigma_next: target noise level (scalar).
      mode: one of `RENOISE_MODES`.
      eta: stochasticity in [0, 1]; ``None`` uses `DEFAULT_ETAS[mode]`.

    Returns:
      ``x0 + c_det eps_hat + c_sto noise``, ``[D, H, W]``.
    """
    eta = resolve_eta(mode, eta)
    c_det, c_sto = RENOISE_MODES[mode](sigma, sigma_next, jnp.float32(eta))
    return x0 + c_det * eps_hat + c_sto * noise
