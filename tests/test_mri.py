"""Tests of operators.mri (single-coil Cartesian MRI): FFT, mask, adjoints, pseudo-inverse."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iscs_jax.denoiser import GaussianDenoiser
from iscs_jax.operators.mri import CartesianMRI, cartesian_mask


def _complex_normal(key, shape):
    kr, ki = jax.random.split(key)
    return jax.random.normal(kr, shape) + 1j * jax.random.normal(ki, shape)


def test_fully_sampled_operator_is_the_orthonormal_dft():
    x = np.random.default_rng(0).normal(size=(2, 6, 5))
    op = CartesianMRI((6, 5), acceleration=1.0)
    assert op.lines.tolist() == [0, 1, 2, 3, 4]
    # The 2D DFT as a product of DFT matrices, scaled by 1/sqrt(HW) (independent of jnp.fft).
    dft = lambda n: np.exp(-2j * np.pi * np.outer(np.arange(n), np.arange(n)) / n)
    expected = dft(6) @ x @ dft(5).T / np.sqrt(30)
    np.testing.assert_allclose(op.A(x), expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(op.A(x)), np.linalg.norm(x), rtol=1e-5)  # Parseval
    np.testing.assert_allclose(op.AT(op.A(x)), x, atol=1e-5)  # F^H F = I


def test_mask_has_the_acceleration_the_centre_and_the_seed():
    mask = cartesian_mask(128, 4.0, 0.08, seed=3)
    assert mask.sum() == 32  # 128 / 4 lines
    centre = np.fft.fftshift(mask)[64 - 5:64 + 5]  # round(0.08 * 128) = 10 centre lines
    assert centre.all()
    np.testing.assert_array_equal(mask, cartesian_mask(128, 4.0, 0.08, seed=3))
    assert not np.array_equal(mask, cartesian_mask(128, 4.0, 0.08, seed=4))
    # Variable density: over many seeds, low frequencies are sampled more often.
    freq = np.abs(np.fft.fftfreq(128) * 128)
    rate = np.mean([cartesian_mask(128, 4.0, 0.08, s) for s in range(200)], axis=0)
    assert rate[(freq > 5) & (freq < 20)].mean() > 2 * rate[freq > 45].mean()
    with pytest.raises(ValueError, match="acceleration"):
        cartesian_mask(16, 0.5, 0.1, 0)


def test_complex_adjoint_identity():
    op = CartesianMRI((8, 12), acceleration=3.0, center_fraction=0.2, seed=1)
    kx, ky = jax.random.split(jax.random.key(0))
    x = _complex_normal(kx, (3, 8, 12))
    y = _complex_normal(ky, op.measurement_shape(3))
    lhs, rhs = jnp.vdot(op.A(x), y), jnp.vdot(x, op.AH(y))  # <Ax, y> = <x, A^H y>
    assert abs(complex(lhs - rhs)) <= 1e-4 * abs(complex(lhs))


def test_real_adjoint_is_the_real_part():
    op = CartesianMRI((8, 12), acceleration=3.0, seed=1)
    kx, ky = jax.random.split(jax.random.key(1))
    x = jax.random.normal(kx, (2, 8, 12))
    y = _complex_normal(ky, op.measurement_shape(2))
    lhs = float(jnp.real(jnp.vdot(op.A(x), y)))  # real inner product on C^n = R^2n
    rhs = float(jnp.vdot(x, op.AT(y)))
    assert abs(lhs - rhs) <= 1e-4 * abs(lhs)
    assert op.AT(y).dtype == jnp.float32


def test_complex_pseudo_inverse_is_the_zero_filled_inverse_fft():
    op = CartesianMRI((16, 16), acceleration=4.0, center_fraction=0.125, seed=0)
    y = _complex_normal(jax.random.key(2), op.measurement_shape(2)).astype(jnp.complex64)
    np.testing.assert_allclose(op.A(op.AH(y)), y, atol=1e-5)  # A A^H y = y for every y
    x = jax.random.uniform(jax.random.key(3), (2, 16, 16))
    np.testing.assert_allclose(op.baseline(op.A(x)), jnp.abs(op.AH(op.A(x))), atol=1e-6)
    assert op.baseline_name == "zero_filled" and op.coupling == "slicewise"


def test_pinv_is_the_moore_penrose_inverse_of_the_real_linear_operator():
    """pinv against numpy's pinv of A as a real matrix (real image -> [Re y; Im y])."""
    op = CartesianMRI((4, 6), acceleration=2.0, center_fraction=0.2, seed=1)
    np.testing.assert_array_equal(op.normal_diagonal(), [1, 0.5, 0.5, 0, 0.5, 0.5])  # lone lines
    basis = np.eye(24).reshape(24, 1, 4, 6)
    columns = [np.asarray(op.A(b)).ravel() for b in basis]
    matrix = np.concatenate([np.real(columns), np.imag(columns)], axis=1).T  # [2m, 24]
    y = _complex_normal(jax.random.key(7), op.measurement_shape(1)).astype(jnp.complex64)
    y_real = np.concatenate([np.real(y).ravel(), np.imag(y).ravel()])
    np.testing.assert_allclose(np.asarray(op.pinv(y)).ravel(), np.linalg.pinv(matrix) @ y_real,
                               atol=1e-5)
    x = jax.random.uniform(jax.random.key(8), (1, 4, 6))
    np.testing.assert_allclose(op.A(op.pinv(op.A(x))), op.A(x), atol=1e-5)  # A A^+ y = y
    assert op.pinv(y).dtype == jnp.float32


def test_shapes_and_validation():
    op = CartesianMRI((16, 20), acceleration=4.0)
    assert op.measurement_shape(3) == (3, 16, 5)
    assert hash(op) == hash(CartesianMRI([16, 20], 4, 0.08, 0))
    with pytest.raises(ValueError, match="shape"):
        op.A(jnp.zeros((3, 16, 16)))
    with pytest.raises(ValueError, match="center_fraction"):
        CartesianMRI((16, 16), center_fraction=1.5)


def test_complex_measurements_keep_their_dtype_when_sharded():
    from iscs_jax import parallel
    op = CartesianMRI((8, 8), acceleration=2.0)
    y = op.A(jax.random.uniform(jax.random.key(4), (3, 8, 8)))
    placed = parallel.shard_slices(y, parallel.make_mesh(1), size=4)
    assert placed.dtype == jnp.complex64
    np.testing.assert_array_equal(np.asarray(placed)[:3], np.asarray(y))


def test_data_consistency_converges_to_the_projection_and_stays_there():
    """CG on the singular MRI normal operator (eigenvalues 0, 1/2, 1) from x0 reaches
    x0 + M^+ (A^T y - M x0), computed here in closed form by FFT, and many more iterations
    do not leave it (float32 round-off in the null space once made alpha explode)."""
    from iscs_jax.samplers import dds
    op = CartesianMRI((32, 32), 4.0, 0.08, seed=0)
    truth = jax.random.uniform(jax.random.key(5), (2, 32, 32))
    x0 = jax.random.uniform(jax.random.key(6), (2, 32, 32))
    y = op.A(truth)
    # M = Re(F^H P F) = F^H D F on real images, D = (mask + mirrored mask) / 2 per column.
    cols = op.mask.astype(float)
    mirrored = cols[(-np.arange(32)) % 32]
    d = np.broadcast_to((cols + mirrored) / 2, (32, 32))
    d_pinv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)
    residual = np.asarray(op.AT(y) - op.AT(op.A(x0)), np.float64)
    expected = np.asarray(x0) + np.real(np.fft.ifft2(d_pinv * np.fft.fft2(residual)))
    for iters in (10, 40):
        got = dds.data_consistency(op, op.AT(y), x0, 0.0, iters)
        np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("sampler", ["dds", "ddnm", "dps", "admm_tv"])
def test_every_sampler_runs_on_complex_k_space(sampler):
    """Each sampler of `samplers.SAMPLERS` reconstructs from complex measurements a real,
    finite volume; DDS and DDNM end data-consistent (their last step projects onto A x = y)."""
    from iscs_jax import samplers
    assert sampler in samplers.SAMPLERS
    op = CartesianMRI((16, 16), 2.0, 0.25, seed=0)
    truth = jnp.full((3, 16, 16), 0.5).at[:, 4:12, 6:10].set(0.9)
    y = op.A(truth)
    denoiser = GaussianDenoiser(0.6, 0.05**0.5)  # x ~ N(0.6, 0.05) per pixel
    extra = {"dds": dict(rho=0.0)}.get(sampler, {})  # rho 0: plain consistency, no Tikhonov
    out = samplers.get_sampler(sampler)(jax.random.key(0), y, op, denoiser, noise="iscs",
                                        sigmas=jnp.array([1.0, 0.3, 0.1]), x_init=op.baseline(y),
                                        **extra)
    assert out.shape == truth.shape and out.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(out)))
    if sampler in ("dds", "ddnm"):
        residual = float(jnp.linalg.norm(op.A(out) - y) / jnp.linalg.norm(y))
        assert residual < 1e-3, residual
