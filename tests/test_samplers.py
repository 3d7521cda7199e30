"""Tests of the CG solver, the re-noising rules and the DDS sampler (the contract every sampler
meets is in test_sampler_contract.py).

Operators are small dense matrices applied per slice (`fixtures.DenseSlices`, so these
tests do not depend on the CT operator). The prior is Gaussian, x ~ N(mu, s^2 I)
per voxel, whose exact denoiser is x0_hat = (s^2 x + sigma^2 mu) / (s^2 + sigma^2)
(`fixtures.gaussian_prior`).
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iscs_jax import samplers
from iscs_jax.samplers import SliceLayout, cg, dds, renoise
from fixtures import (DEPTH, SIGMAS, H, W, DenseSlices, gaussian_prior, prior_mean, problem,
                      well_conditioned, zero_noise)


@functools.partial(jax.jit, static_argnames=("noise", "renoise", "chunk_size"))
def sample(key, y, op, sigmas=SIGMAS, x_init=None, *, noise="iid", renoise="dds",
           chunk_size=DEPTH, layout=None):
    """DDS with the Gaussian-prior denoiser; one jit cache shared by the tests (compiles are
    the cost here: operator and sigmas are traced arguments)."""
    return dds.reconstruct(key, y, op, gaussian_prior(), noise=noise, sigmas=sigmas,
                           x_init=x_init, renoise=renoise, rho=1e-2, chunk_size=chunk_size,
                           layout=layout)


KEY = jax.random.key(0)


# --- conjugate gradient -------------------------------------------------------

def spd(seed, n):
    a = jax.random.normal(jax.random.key(seed), (n, n))
    return a @ a.T + n * jnp.eye(n)


def test_cg_matches_linalg_solve():
    m, b = spd(0, 12), jax.random.normal(jax.random.key(1), (12,))
    x = cg.conjugate_gradient(lambda v: m @ v, b, jnp.zeros(12), 12)
    np.testing.assert_allclose(x, jnp.linalg.solve(m, b), rtol=1e-4, atol=1e-5)


def test_cg_exact_start_and_extra_iterations_stay_finite():
    m = spd(2, 6)
    x_star = jnp.arange(6.0)
    x = cg.conjugate_gradient(lambda v: m @ v, m @ x_star, x_star, 5)  # residual 0 from the start
    np.testing.assert_array_equal(x, x_star)
    x = cg.conjugate_gradient(lambda v: m @ v, m @ x_star, jnp.zeros(6), 40)  # converges, then r=0
    assert np.all(np.isfinite(x))
    np.testing.assert_allclose(x, x_star, rtol=1e-4, atol=1e-4)


def test_cg_zero_iterations_returns_start():
    x0 = jnp.ones(4)
    np.testing.assert_array_equal(cg.conjugate_gradient(lambda v: 2 * v, jnp.zeros(4), x0, 0), x0)


def test_cg_psum_inner_over_shards_equals_full_solve():
    """Block-diagonal system split in two shards; psum'd inner products = one global CG."""
    blocks = jnp.stack([spd(3, 5), spd(4, 5)])
    b = jax.random.normal(jax.random.key(5), (2, 5))
    full_m = jax.scipy.linalg.block_diag(*blocks)
    full = cg.conjugate_gradient(lambda v: full_m @ v, b.ravel(), jnp.zeros(10), 6)
    inner = lambda u, v: jax.lax.psum(cg.real_inner(u, v), "shard")
    shard_cg = lambda mb, bb: cg.conjugate_gradient(lambda v: mb @ v, bb, jnp.zeros(5), 6, inner)
    sharded = jax.vmap(shard_cg, axis_name="shard")(blocks, b)
    np.testing.assert_allclose(sharded.ravel(), full, rtol=1e-5, atol=1e-5)


# --- re-noising -----------------------------------------------------------------

def test_renoise_ddpm_is_x0_plus_fresh_noise():
    x0, eps, n = jnp.ones(3), jnp.full(3, 5.0), jnp.arange(3.0)
    np.testing.assert_allclose(renoise.renoise(x0, eps, n, 2.0, 0.5, mode="ddpm"), x0 + 0.5 * n)


@pytest.mark.parametrize("mode", ["dds", "diffpir", "ddim"])
def test_renoise_preserves_variance_and_uses_eta(mode):
    """x0 = 0 and eps_hat, n independent N(0,1): Var(x_next) = sigma_next^2 in every mode."""
    eps, n = jax.random.normal(jax.random.key(0), (2, 200_000))
    x_next = renoise.renoise(jnp.zeros_like(eps), eps, n, 1.2, 1.0, mode=mode)
    assert abs(float(jnp.var(x_next)) - 1.0) < 0.02
    eta = renoise.DEFAULT_ETAS[mode]
    stochastic = float(jnp.mean(x_next * n))  # = c_sto
    expected = eta * np.sqrt(1.2**2 - 1.0) if mode == "ddim" else eta
    assert abs(stochastic - expected) < 0.01


def test_renoise_eta_override_and_errors():
    eps, n = jnp.ones(2), jnp.full(2, 3.0)
    out = renoise.renoise(jnp.zeros(2), eps, n, 1.0, 1.0, mode="dds", eta=0.0)
    np.testing.assert_allclose(out, eps)  # eta = 0: fully deterministic
    with pytest.raises(ValueError, match="valid modes"):
        renoise.renoise(eps, eps, n, 1.0, 0.5, mode="ddnm")
    with pytest.raises(ValueError, match="eta"):
        renoise.renoise(eps, eps, n, 1.0, 0.5, mode="dds", eta=1.5)


# --- DDS sampler ------------------------------------------------------------------

PUBLISHED_SIGMAS = jnp.geomspace(5.0, 0.01, 30)  # published CT setting: sigma_max 5, 30 steps


def test_posterior_mean_of_gaussian_prior():
    """8 measurements of 16 pixels, noise-free: posterior mean mu + A^T (A A^T)^{-1} (y - A mu).

    All D slices see the same y, so they are D independent posterior samples (A has singular
    values in [1, 2] and rho = 1e-2, so 10 CG iterations at condition number <= 4 converge to
    2 (1/3)^10 ~ 3e-5 and the global inner products do not couple the slices). Checks:
      * the expected output (the sampler run with zero fresh noise: each step is affine in the
        noise) is within 5e-3 of the posterior mean. Its only error is the discretisation
        bias of the 30-step schedule in the null space of A: the initial offset mu (|mu| <= 1)
        shrinks by prod_i (s^2 + c_det_i sigma_i) / (s^2 + sigma_i^2) ~ 1e-3, plus the
        Tikhonov pull rho / (1 + rho) x (last denoiser error) in the range of A.
      * the mean of the D stochastic samples is within 5 standard errors (std over slices
        / sqrt(D)) plus that 5e-3 of the posterior mean;
      * every sample fits the data, |A x - y| < 1e-3, and varies in the null space.
    """
    depth, op = 128, DenseSlices(well_conditioned(0, 8))
    x_true = prior_mean() + jax.random.normal(jax.random.key(1), (1, H, W))
    y = jnp.broadcast_to(op.A(x_true), (depth, 8))
    m, mu = op.matrix, prior_mean().ravel()
    posterior_mean = mu + m.T @ jnp.linalg.solve(m @ m.T, y[0] - m @ mu)
    expected = sample(KEY, y, op, PUBLISHED_SIGMAS, noise=zero_noise, chunk_size=64)
    np.testing.assert_allclose(expected.reshape(depth, -1)[0], posterior_mean, atol=5e-3)
    xs = sample(KEY, y, op, PUBLISHED_SIGMAS, chunk_size=64).reshape(depth, -1)
    standard_error = xs.std(0) / np.sqrt(depth)
    assert np.all(np.abs(xs.mean(0) - posterior_mean) < 5 * standard_error + 5e-3)
    assert float(jnp.max(jnp.abs(xs @ m.T - y))) < 1e-3
    assert float(jnp.min(xs.std(0))) > 0.1


def test_scan_equals_loop():
    op, y, _ = problem()
    kwargs = dict(noise="iid", sigmas=SIGMAS[:3], rho=1e-2, chunk_size=4, renoise="diffpir")
    args = (jax.random.key(7), y, op, gaussian_prior())
    scan = jax.jit(lambda k: dds.reconstruct(k, *args[1:], **kwargs))(args[0])
    loop = jax.jit(lambda k: dds.reconstruct(k, *args[1:], python_loop=True, **kwargs))(args[0])
    np.testing.assert_allclose(scan, loop, rtol=1e-4, atol=1e-4)


def test_same_key_same_result_and_traced_once():
    op, y, _ = problem()
    run = jax.jit(chex.assert_max_traces(
        lambda k, y: dds.reconstruct(k, y, op, gaussian_prior(), noise="shared",
                                     sigmas=SIGMAS[:2], rho=1e-2), n=1))
    first, again, other = run(KEY, y), run(KEY, y), run(jax.random.key(2), 2 * y)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_noise_kinds_give_different_results():
    op, y, _ = problem()
    results = {kind: sample(KEY, y, op, noise=kind) for kind in ("iid", "iscs", "shared")}
    for a, b in [("iid", "iscs"), ("iid", "shared"), ("iscs", "shared")]:
        assert float(jnp.max(jnp.abs(results[a] - results[b]))) > 1e-2, (a, b)


def test_warm_start_from_init_volume():
    """Underdetermined A, low sigmas: a warm start at x_true keeps its null-space part
    (error ~ a few sigma_max = 0.05), a cold start from pure noise cannot (error ~ prior std)."""
    op, y, x_true = problem()
    low = jnp.geomspace(0.05, 0.01, SIGMAS.shape[0])
    warm_error = float(jnp.max(jnp.abs(sample(KEY, y, op, low, x_true) - x_true)))
    cold_error = float(jnp.max(jnp.abs(sample(KEY, y, op, low) - x_true)))
    assert warm_error < 0.25 < 0.5 < cold_error


def test_chunk_size_does_not_change_the_result():
    op, y, _ = problem()
    np.testing.assert_allclose(sample(KEY, y, op, chunk_size=1), sample(KEY, y, op),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("noise", ["iid", "iscs"])
def test_padded_masked_slices_do_not_change_real_slices(noise):
    """Volume of 6 padded to 8 (and chunks of 3, padded to 9); padded ids 6, 7 get any noise."""
    padded = DEPTH + 2
    op, y, _ = problem()
    reference = sample(KEY, y, op, noise=noise)
    mask = (jnp.arange(padded) < DEPTH).astype(jnp.float32)
    layout = SliceLayout(jnp.arange(padded), mask, DEPTH)
    x = sample(KEY, jnp.pad(y, [(0, 2), (0, 0)]), op, noise=noise, chunk_size=3, layout=layout)
    np.testing.assert_allclose(x[:DEPTH], reference, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(x[DEPTH:], 0.0)


def test_sharded_over_a_named_axis_equals_unsharded():
    """Two shards of 3 slices under vmap(axis_name=...): psum'd CG and global slice ids."""
    op, y, _ = problem()
    reference = sample(KEY, y, op, noise="iscs")
    shard = lambda ys, ids: dds.reconstruct(
        KEY, ys, op, gaussian_prior(), noise="iscs", sigmas=SIGMAS, rho=1e-2,
        chunk_size=3, layout=SliceLayout(ids, jnp.ones(3), DEPTH, "shards"))
    x = jax.jit(jax.vmap(shard, axis_name="shards"))(y.reshape(2, 3, -1),
                                                      jnp.arange(DEPTH).reshape(2, 3))
    np.testing.assert_allclose(x.reshape(DEPTH, H, W), reference, rtol=1e-4, atol=1e-4)


def test_argument_errors():
    op, y, _ = problem()
    den = gaussian_prior()
    call = lambda **kw: dds.reconstruct(KEY, y, op, den, **{"noise": "iid", "sigmas": SIGMAS, **kw})
    with pytest.raises(ValueError, match="valid modes"):
        call(renoise="ddnm")
    with pytest.raises(ValueError, match="valid kinds"):
        call(noise="pink")
    with pytest.raises(ValueError, match="A_sharded"):
        dds.reconstruct(KEY, y, DenseSlices(op.matrix, slicewise=False), den, noise="iid",
                        sigmas=SIGMAS, layout=SliceLayout(jnp.arange(DEPTH), jnp.ones(DEPTH),
                                                          DEPTH, "shards"))
    with pytest.raises(ValueError, match="rho"):
        call(rho=jnp.ones(2))
    with pytest.raises(ValueError, match="cg_iters"):
        call(cg_iters=-1)
    with pytest.raises(ValueError, match="valid samplers"):
        samplers.get_sampler("ddpm")
    assert samplers.get_sampler("dds") is dds.reconstruct


def test_final_denoise_is_one_tweedie_step_at_sigma_min():
    op, y, _ = problem()
    den = gaussian_prior()
    run = lambda final: dds.reconstruct(KEY, y, op, den, noise="iid", sigmas=SIGMAS, rho=1e-2,
                                        final_denoise=final)
    np.testing.assert_allclose(run(True), den(run(False), SIGMAS[-1]), rtol=1e-6, atol=1e-6)
