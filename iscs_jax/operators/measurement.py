"""Simulated measurement noise on clean measurements ``y = A(x)`` (`NOISE_KINDS`).

* ``"gaussian"``: ``y + noise_std * n``, ``n ~ N(0, 1)``; for complex ``y`` (MRI k-space)
  circular complex Gaussian noise with ``E|n|^2 = noise_std^2``.
* ``"poisson"``: CT photon counts. With ``s = attenuation / max(y)``,
  ``counts ~ Poisson(photons exp(-s y))`` and ``y_noisy = -log(max(counts, MIN_COUNT) /
  photons) / s``: the most attenuating ray keeps ``exp(-attenuation)`` of its photons.
  By the delta method ``var(y_noisy) ~ 1 / (s^2 photons exp(-s y))``.
* ``"none"``: ``y`` unchanged.

Errors name the offending argument as ``name=value``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

#: Noise models of `add_noise`.
NOISE_KINDS = ("none", "gaussian", "poisson")
#: Photon counts of 0 are raised to this before the log of the Poisson model.
MIN_COUNT = 0.5


def _gaussian(key: jax.Array, y: jax.Array, noise_std: float) -> jax.Array:
    if noise_std < 0:
        raise ValueError(f"noise_std={noise_std} must be >= 0.")
    if jnp.iscomplexobj(y):  # circular complex Gaussian, E|n|^2 = noise_std^2
        parts = jax.random.normal(key, (2,) + y.shape) * (noise_std / np.sqrt(2.0))
        return y + (parts[0] + 1j * parts[1]).astype(y.dtype)
    return y + noise_std * jax.random.normal(key, y.shape)


def _poisson(key: jax.Array, y: jax.Array, photons: float, attenuation: float) -> jax.Array:
    if jnp.iscomplexobj(y):
        raise ValueError("kind='poisson' models CT photon counts; complex measurements (MRI "
                         "k-space) take kind='gaussian' (complex Gaussian).")
    if photons <= 0 or attenuation <= 0:
        raise ValueError(f"photons={photons} and attenuation={attenuation} must be > 0.")
    scale = attenuation / jnp.maximum(jnp.max(y), 1e-12)
    counts = jax.random.poisson(key, photons * jnp.exp(-scale * y)).astype(jnp.float32)
    return -jnp.log(jnp.maximum(counts, MIN_COUNT) / photons) / scale


def add_noise(key: jax.Array, y: jax.Array, kind: str = "none", *, noise_std: float = 0.0,
              photons: float = 1e5, attenuation: float = 4.0) -> jax.Array:
    """``y`` with simulated measurement noise of ``kind`` (see the module docstring).

    Args:
      key: a `jax.random.key`.
      y: clean measurements, any shape; real, or complex for ``"gaussian"``.
      kind: one of `NOISE_KINDS`.
      noise_std: the Gaussian standard deviation, in the units of ``y`` (>= 0).
      photons: Poisson: incident photons per ray (> 0).
      attenuation: Poisson: ``s max(y)``, the log attenuation of the darkest ray (> 0).

    Returns:
      the noisy measurements, the shape of ``y`` (float32, or ``y``'s complex dtype).
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind={kind!r} is not one of {NOISE_KINDS}.")
    y = jnp.asarray(y)
    if kind == "gaussian":
        return _gaussian(key, y, noise_std)
    if kind == "poisson":
        return _poisson(key, y, photons, attenuation)
    return y


def simulate(key: jax.Array, operator, x, kind: str = "none", **noise) -> jax.Array:
    """``add_noise(key, operator.A(x), kind, **noise)``: a simulated measurement of ``x``."""
    return add_noise(key, operator.A(jnp.asarray(x)), kind, **noise)
