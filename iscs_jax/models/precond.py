"""EDM preconditioning (Karras et al. 2022) and the `DenoiseFn` built from a U-Net.

D(x, sigma) = mu + c_skip (x - mu) + c_out F(c_in (x - mu), c_noise), with
  c_skip  = s^2 / (sigma^2 + s^2),
  c_out   = sigma s / sqrt(sigma^2 + s^2),
  c_in    = 1 / sqrt(sigma^2 + s^2),
  c_noise = log(sigma) / 4,
where s = sigma_data and mu = data_mean (a constant shift that centres the
data; 0 gives the plain EDM form). The scalings are float32 whatever the network computes
in (a bfloat16 U-Net takes and returns float32).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import chex
import jax
import jax.numpy as jnp
from flax import nnx

from iscs_jax.denoiser import Denoiser
from iscs_jax.models import precision

NetFn = Callable[[jax.Array, jax.Array], jax.Array]  # F(x [B,H,W], c_noise [B]) -> [B,H,W]


def edm_scalings(sigma: jax.Array, sigma_data: float):
    """``(c_skip, c_out, c_in, c_noise)``, each shaped like ``sigma``."""
    sigma = jnp.asarray(sigma, jnp.float32)
    s2 = sigma**2 + sigma_data**2
    return sigma_data**2 / s2, sigma * sigma_data / jnp.sqrt(s2), 1.0 / jnp.sqrt(s2), jnp.log(sigma) / 4


def edm_loss_weight(sigma: jax.Array, sigma_data: float) -> jax.Array:
    """lambda(sigma) = (sigma^2 + s^2) / (sigma s)^2 (= 1 / c_out^2)."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def precondition(net: NetFn, x: jax.Array, sigma: jax.Array, sigma_data: float,
                 data_mean: float = 0.0) -> jax.Array:
    """Preconditioned denoiser D(x, sigma).

    Args:
      net: raw network F(x [B, H, W], c_noise [B]) -> [B, H, W].
      x: noisy images ``[B, H, W]``.
      sigma: noise level, a scalar or ``[B]``.
      sigma_data: data standard deviation s.
      data_mean: constant mu subtracted before and added after.

    Returns:
      x0_hat ``[B, H, W]``.
    """
    chex.assert_rank(x, 3)
    sigma = jnp.broadcast_to(jnp.asarray(sigma, jnp.float32), x.shape[:1])
    c_skip, c_out, c_in, c_noise = edm_scalings(sigma, sigma_data)
    xc = x - data_mean
    f = net(c_in[:, None, None] * xc, c_noise)
    return data_mean + c_skip[:, None, None] * xc + c_out[:, None, None] * f


def make_denoise_fn(graphdef: nnx.GraphDef, state: nnx.State, sigma_data: float,
                    data_mean: float = 0.0) -> Denoiser:
    """A pure, jit-able ``DenoiseFn(x [n, H, W], sigma scalar or [n]) -> x0_hat [n, H, W]``.

    A `iscs_jax.denoiser.Denoiser` (its weights are pytree leaves: passed to ``jax.jit`` as
    an argument they stay runtime inputs instead of constants compiled into the program).
    The network computes in its own ``dtype`` (``UNet(..., dtype=jnp.bfloat16)``), its
    parameters cast to it here, once (`iscs_jax.models.precision.cast_to_network`); the
    preconditioning, the input and the output stay float32.

    Args:
      graphdef: the U-Net's graph definition (from ``nnx.split``).
      state: its parameters (e.g. the EMA parameters).
      sigma_data, data_mean: the preconditioning constants used in training.
    """
    return Denoiser(_EDMApply(graphdef, float(sigma_data), float(data_mean)),
                    precision.cast_to_network(graphdef, state))


@dataclasses.dataclass(frozen=True)
class _EDMApply:
    """``apply(state, x, sigma)`` of `make_denoise_fn` (static: architecture and constants)."""

    graphdef: nnx.GraphDef
    sigma_data: float
    data_mean: float

    def __call__(self, state: nnx.State, x: jax.Array, sigma: jax.Array) -> jax.Array:
        model = nnx.merge(self.graphdef, state)
        return precondition(model, x, sigma, self.sigma_data, self.data_mean)
