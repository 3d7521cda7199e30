"""Tests of operators.measurement: the simulated noise's statistics with fixed seeds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iscs_jax import operators
from iscs_jax.operators import measurement

KEY = jax.random.key(0)


def test_gaussian_noise_has_zero_mean_and_the_given_std():
    y = jnp.linspace(0.0, 20.0, 50_000)
    residual = measurement.add_noise(KEY, y, "gaussian", noise_std=0.5) - y
    assert float(jnp.mean(residual)) == pytest.approx(0.0, abs=0.01)  # 4.5 standard errors
    assert float(jnp.std(residual)) == pytest.approx(0.5, rel=0.01)
    assert residual.dtype == jnp.float32


def test_complex_gaussian_noise_is_circular():
    y = jnp.zeros((200, 250), jnp.complex64)
    n = measurement.add_noise(KEY, y, "gaussian", noise_std=0.2)
    assert n.dtype == jnp.complex64
    assert float(jnp.mean(jnp.abs(n) ** 2)) == pytest.approx(0.04, rel=0.02)  # E|n|^2
    assert float(jnp.var(n.real)) == pytest.approx(float(jnp.var(n.imag)), rel=0.03)
    assert abs(float(jnp.mean(n.real * n.imag))) < 2e-4  # uncorrelated parts


def test_poisson_noise_matches_the_delta_method():
    y = jnp.linspace(0.0, 20.0, 50_000)
    noisy = measurement.add_noise(KEY, y, "poisson", photons=1e4, attenuation=4.0)
    scale = 4.0 / 20.0
    # var(-log(N / I0) / s) = 1 / (s^2 I0 exp(-s y)) for N ~ Poisson(I0 exp(-s y)).
    predicted = 1.0 / (scale**2 * 1e4 * jnp.exp(-scale * y))
    z = (noisy - y) / jnp.sqrt(predicted)
    assert float(jnp.mean(z)) == pytest.approx(0.0, abs=0.02)
    assert float(jnp.std(z)) == pytest.approx(1.0, abs=0.03)


def test_poisson_floor_and_no_noise():
    y = jnp.array([0.0, 50.0])  # the darkest ray keeps exp(-50) of 10 photons: 0 counts
    noisy = measurement.add_noise(KEY, y, "poisson", photons=10.0, attenuation=50.0)
    assert float(noisy[1]) == pytest.approx(-np.log(measurement.MIN_COUNT / 10.0) / 1.0)
    np.testing.assert_array_equal(measurement.add_noise(KEY, y), y)  # kind "none"


def test_simulate_is_the_noisy_forward_projection():
    op = operators.ParallelBeam((8, 8), operators.sparse_view_angles(4))
    x = jnp.ones((2, 8, 8))
    np.testing.assert_array_equal(measurement.simulate(KEY, op, x, "gaussian", noise_std=0.1),
                                  measurement.add_noise(KEY, op.A(x), "gaussian", noise_std=0.1))


@pytest.mark.parametrize("y, kwargs, message", [
    (jnp.ones(3), dict(kind="salt"), "kind='salt'"),
    (jnp.ones(3), dict(kind="gaussian", noise_std=-1.0), "noise_std=-1.0"),
    (jnp.ones(3), dict(kind="poisson", photons=0.0), "photons=0.0"),
    (jnp.ones(3, jnp.complex64), dict(kind="poisson"), "kind='gaussian'"),
])
def test_errors_name_the_argument(y, kwargs, message):
    with pytest.raises(ValueError, match=message):
        measurement.add_noise(KEY, y, **kwargs)
