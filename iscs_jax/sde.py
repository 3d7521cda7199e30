"""Variance-exploding (VE) noise schedule and score <-> denoiser conversion.

sigma(t) = sigma_min (sigma_max / sigma_min)^t is defined once, here. Samplers
only ever see a `DenoiseFn(x, sigma) -> x0_hat` and an array of sigmas.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Protocol

import jax
import jax.numpy as jnp


class DenoiseFn(Protocol):
    """``denoise(x [n, H, W], sigma scalar) -> x0_hat [n, H, W]`` (Tweedie estimate)."""

    def __call__(self, x: jax.Array, sigma: jax.Array) -> jax.Array: ...


ScoreFn = Callable[[jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class VESDE:
    """VE SDE with a geometric noise schedule.

    Attributes:
      sigma_min: noise level at t = 0.
      sigma_max: noise level at t = 1.
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def __post_init__(self):
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(
                f"Need 0 < sigma_min < sigma_max, got sigma_min={self.sigma_min}, "
                f"sigma_max={self.sigma_max}.")

    def sigma(self, t: jax.Array) -> jax.Array:
        """Noise level at time ``t`` in [0, 1]."""
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** jnp.asarray(t, jnp.float32)

    def time_grid(self, num_steps: int, eps: float = 1e-5) -> jax.Array:
        """``[num_steps]`` times t_i = linspace(1, eps, num_steps)."""
        return jnp.linspace(1.0, eps, num_steps)

    def sigmas(self, num_steps: int, eps: float = 1e-5) -> jax.Array:
        """``[num_steps]`` decreasing noise levels sigma(t_i) for a sampler."""
        return self.sigma(self.time_grid(num_steps, eps))

    def prior_sampling(self, key: jax.Array, shape) -> jax.Array:
        """A draw from the terminal distribution N(0, sigma_max^2 I)."""
        return self.sigma_max * jax.random.normal(key, shape)


def denoiser_from_score(score_fn: ScoreFn) -> DenoiseFn:
    """Tweedie: x0_hat = x + sigma^2 score(x, sigma)."""
    return lambda x, sigma: x + sigma**2 * score_fn(x, sigma)


def score_from_denoiser(denoise_fn: DenoiseFn) -> ScoreFn:
    """Inverse of `denoiser_from_score`: score = (x0_hat - x) / sigma^2."""
    return lambda x, sigma: (denoise_fn(x, sigma) - x) / sigma**2
