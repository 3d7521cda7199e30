"""VE schedule closed forms and the score <-> denoiser conversion."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iscs_jax import sde


def test_sigma_endpoints_and_geometric_grid():
    schedule = sde.VESDE(sigma_min=0.01, sigma_max=5.0)
    np.testing.assert_allclose(schedule.sigma(0.0), 0.01, rtol=1e-6)
    np.testing.assert_allclose(schedule.sigma(1.0), 5.0, rtol=1e-6)
    sigmas = np.asarray(schedule.sigmas(30, eps=0.0))
    assert sigmas.shape == (30,) and np.all(np.diff(sigmas) < 0)
    ratios = sigmas[1:] / sigmas[:-1]
    np.testing.assert_allclose(ratios, (0.01 / 5.0) ** (1 / 29), rtol=1e-4)
    np.testing.assert_allclose(schedule.time_grid(5, eps=1e-3), np.linspace(1, 1e-3, 5), rtol=1e-6)


def test_prior_sampling_scale():
    samples = sde.VESDE(0.01, 20.0).prior_sampling(jax.random.key(0), (200_000,))
    assert abs(float(jnp.std(samples)) - 20.0) < 0.2


def test_score_denoiser_roundtrip_gaussian():
    """For x0 ~ N(mu, s^2) the score of the noisy marginal is -(x - mu) / (s^2 + sigma^2)."""
    mu, s2 = 0.3, 0.25
    score = lambda x, sigma: -(x - mu) / (s2 + sigma**2)
    denoise = sde.denoiser_from_score(score)
    x, sigma = jnp.linspace(-2, 2, 9), 0.7
    expected = (s2 * x + sigma**2 * mu) / (s2 + sigma**2)  # posterior mean E[x0 | x]
    np.testing.assert_allclose(denoise(x, sigma), expected, rtol=1e-5)
    np.testing.assert_allclose(sde.score_from_denoiser(denoise)(x, sigma), score(x, sigma), rtol=1e-5)


def test_invalid_range():
    with pytest.raises(ValueError, match="sigma_min"):
        sde.VESDE(sigma_min=1.0, sigma_max=0.5)
