"""Tests of operators.zsr (z super-resolution): adjoint, pseudo-inverse, baselines, sharding."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iscs_jax.operators.zsr import ZSuperResolution, linear_weights
from device_checks import run_check

CHECK_SCRIPT = "zsr_parallel_check.py"


def _dense(op, shape):
    """The matrix of ``op.A`` for volumes of ``shape``, built column by column (float64)."""
    size = int(np.prod(shape))
    cols = [np.asarray(op.A(np.eye(size)[i].reshape(shape))).ravel() for i in range(size)]
    return np.stack(cols, axis=1).astype(np.float64)


@pytest.mark.parametrize("depth, factor, z_axis", [(8, 4, 0), (7, 3, 0), (5, 2, 1), (6, 4, 2)])
def test_forward_is_block_mean_with_partial_last_block(depth, factor, z_axis):
    shape = [3, 4, 5]
    shape[z_axis] = depth
    x = np.random.default_rng(0).normal(size=shape)
    op = ZSuperResolution(factor, tuple(shape[1:]), z_axis, depth=depth if z_axis == 0 else None)
    z = np.moveaxis(x, z_axis, 0)
    expected = np.stack([z[s:s + factor].mean(axis=0) for s in range(0, depth, factor)])
    np.testing.assert_allclose(op.A(x), np.moveaxis(expected, 0, z_axis), atol=1e-6)
    assert op.A(x).shape == op.measurement_shape(shape[0])


@pytest.mark.parametrize("depth, factor, z_axis", [(7, 3, 0), (9, 4, 1)])
def test_adjoint_identity_and_transpose(depth, factor, z_axis):
    shape = [2, 3, 3]
    shape[z_axis] = depth
    op = ZSuperResolution(factor, tuple(shape[1:]), z_axis, depth=depth if z_axis == 0 else None)
    kx, ky = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, shape)
    y = jax.random.normal(ky, op.measurement_shape(shape[0]))
    lhs, rhs = float(jnp.vdot(op.A(x), y)), float(jnp.vdot(x, op.AT(y)))
    assert abs(lhs - rhs) <= 1e-5 * max(1.0, abs(lhs))
    # Against the dense matrix: AT is its transpose, pinv its Moore-Penrose inverse.
    matrix = _dense(op, tuple(shape))
    y_np = np.asarray(y, np.float64).ravel()
    np.testing.assert_allclose(np.asarray(op.AT(y)).ravel(), matrix.T @ y_np, atol=1e-5)
    np.testing.assert_allclose(np.asarray(op.pinv(y)).ravel(), np.linalg.pinv(matrix) @ y_np,
                               atol=1e-5)


def test_pinv_is_repetition_and_right_inverse():
    op = ZSuperResolution(3, (2, 2), depth=7)
    y = jnp.arange(3 * 2 * 2, dtype=jnp.float32).reshape(3, 2, 2)
    x = op.pinv(y)
    np.testing.assert_array_equal(x, np.repeat(np.asarray(y), 3, axis=0)[:7])
    np.testing.assert_allclose(op.A(x), y, atol=1e-6)  # A A^+ y = y


def test_linear_baseline_interpolates_between_centres():
    weights = linear_weights(8, 4)  # centres at 1.5 and 5.5
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(weights[:2], [[1, 0], [1, 0]])  # before the first centre
    np.testing.assert_allclose(weights[3], [0.625, 0.375])  # 3 = 1.5 + 1.5 of 4
    np.testing.assert_allclose(weights[7], [0, 1])
    # A linear ramp along z is reproduced exactly between the first and last centres.
    ramp = np.broadcast_to(np.arange(8.0)[:, None, None], (8, 2, 2))
    op = ZSuperResolution(4, (2, 2))
    np.testing.assert_allclose(op.linear(op.A(ramp))[2:6], ramp[2:6], atol=1e-5)
    assert op.baseline_name == "linear" and op.baseline(op.A(ramp)).shape == (8, 2, 2)


def test_coupling_and_validation():
    along_slices = ZSuperResolution(4, (8, 8), depth=10)
    assert along_slices.coupling == "global" and along_slices.halo == 3
    assert along_slices.volume_shape == (10, 8, 8)
    inplane = ZSuperResolution(4, (8, 8), z_axis=1)
    assert inplane.coupling == "slicewise" and inplane.slicewise and inplane.halo == 0
    assert hash(inplane) == hash(ZSuperResolution(4, [8, 8], z_axis=1))
    with pytest.raises(ValueError, match="factor"):
        ZSuperResolution(0)
    with pytest.raises(ValueError, match="z_axis"):
        ZSuperResolution(2, z_axis=3)
    with pytest.raises(ValueError, match="thick slices"):
        ZSuperResolution(2, (2, 2), depth=7).AT(jnp.zeros((3, 2, 2)))


@pytest.fixture(scope="module")
def multi_device():
    """Runs `zsr_parallel_check.py` with 4 fake CPU devices; returns its JSON report."""
    return run_check(CHECK_SCRIPT)


@pytest.mark.slow  # the 4-device subprocess: ~25 s
def test_sharded_normal_operator_matches_unsharded(multi_device):
    results = multi_device["operator"]
    # depths x factors x devices x (normal operator, A^T y, residual norm)
    assert len(results) == 3 * 2 * 3 * 3
    for tag, diff in results.items():  # max abs differences; relative for the norm
        assert diff <= (1e-4 if tag.endswith("_norm") else 1e-5), (tag, diff)


@pytest.mark.slow  # the 4-device subprocess: ~25 s
def test_every_sharded_sampler_matches_one_device(multi_device):
    from iscs_jax import samplers
    results = multi_device["sampler"]
    assert sorted(results) == sorted(f"{name}_n{n}" for name in samplers.SAMPLERS
                                     for n in (1, 2, 4))
    for tag, diff in results.items():
        assert diff <= 1e-5, (tag, diff)
    assert multi_device["sampler_vs_truth"] > 1e-2  # not vacuous
    assert multi_device["inplane_n4"] <= 1e-5  # z in-plane: slice-wise sharding
