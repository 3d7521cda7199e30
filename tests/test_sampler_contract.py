"""The contract every sampler of `samplers.SAMPLERS` meets (registering one puts it under all).

Shape, determinism, scan == Python loop, chunk-size invariance, padding, and 1/2/4 fake devices
(with a slice-wise and a slice-coupling operator; one subprocess, `tests/sampler_check.py`) for
every sampler; closed-form Gaussian-prior oracles where one exists, and one-step checks of each
algorithm's data consistency against an independent computation.

Operators are small dense matrices per slice and the prior is Gaussian (`fixtures`).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iscs_jax import samplers
from iscs_jax.samplers import SliceLayout, admm_tv, ddnm, dps
from fixtures import (DEPTH, SIGMAS, H, W, DenseSlices, gaussian_prior, prior_mean, problem,
                      zero_noise)
from device_checks import run_check

NAMES = sorted(samplers.SAMPLERS)
#: Small settings so the tests stay fast; a sampler missing here runs with its defaults.
FAST_SETTINGS = {
    "dds": dict(cg_iters=5, rho=1e-2),
    "ddnm": dict(cg_iters=8),
    "dps": dict(step_size=0.5),
    "admm_tv": dict(lam=0.05, mu=1.0, admm_iters=2, cg_iters=3),
}
KEY = jax.random.key(0)


@functools.partial(jax.tree_util.register_dataclass, data_fields=["matrix"],
                   meta_fields=["slicewise"])
@dataclasses.dataclass(frozen=True)
class DensePinv(DenseSlices):
    """`DenseSlices` with its exact pseudo-inverse (DDNM uses it instead of CG)."""

    def pinv(self, y):
        return (y @ jnp.linalg.pinv(self.matrix).T).reshape(y.shape[0], H, W)


@functools.partial(jax.jit, static_argnames=("name", "noise", "chunk_size", "python_loop"))
def run(name, key, y, op, *, noise="iscs", chunk_size=DEPTH, python_loop=False, layout=None):
    return samplers.get_sampler(name)(
        key, y, op, gaussian_prior(), noise=noise, sigmas=SIGMAS[:4],
        chunk_size=chunk_size, python_loop=python_loop, layout=layout,
        **FAST_SETTINGS.get(name, {}))


@pytest.mark.parametrize("name", NAMES)
def test_shape_determinism_and_keys(name):
    op, y, _ = problem()
    first, again = run(name, KEY, y, op), run(name, KEY, y, op)
    assert first.shape == (DEPTH, H, W) and bool(jnp.all(jnp.isfinite(first)))
    np.testing.assert_array_equal(first, again)
    assert float(jnp.max(jnp.abs(first - run(name, jax.random.key(1), y, op)))) > 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_scan_equals_python_loop(name):
    op, y, _ = problem()
    np.testing.assert_allclose(run(name, KEY, y, op), run(name, KEY, y, op, python_loop=True),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_chunk_size_does_not_change_the_result(name):
    op, y, _ = problem()
    np.testing.assert_allclose(run(name, KEY, y, op, chunk_size=4), run(name, KEY, y, op),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_padding_slices_change_nothing(name):
    """6 slices padded to 8 with a mask (the layout of a sharded volume): same real slices."""
    op, y, _ = problem()
    layout = SliceLayout(jnp.arange(DEPTH + 2), (jnp.arange(DEPTH + 2) < DEPTH) * 1.0, DEPTH)
    x = run(name, KEY, jnp.pad(y, [(0, 2), (0, 0)]), op, layout=layout)
    np.testing.assert_allclose(x[:DEPTH], run(name, KEY, y, op), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(x[DEPTH:], 0.0)


@pytest.mark.parametrize("name", NAMES)
def test_a_run_in_pieces_equals_the_whole_run(name):
    """`core.run_in_pieces` (initial draw, one jitted step per piece, final step): the result
    of one scan, with the final Tweedie step, and one compiled step program for all steps."""
    op, y, _ = problem()
    kwargs = dict(noise="iscs", sigmas=SIGMAS[:4], chunk_size=DEPTH, final_denoise=True,
                  **FAST_SETTINGS.get(name, {}))
    sampler = samplers.get_sampler(name)
    denoise_fn = gaussian_prior()
    whole = jax.jit(lambda key: sampler(key, y, op, denoise_fn, **kwargs))(KEY)
    piece = jax.jit(lambda x, first, count, final: sampler(
        KEY, y, op, denoise_fn, window=samplers.core.Window(x, first, count, final), **kwargs),
        static_argnums=(2, 3))
    steps = []
    pieces = samplers.core.run_in_pieces(lambda w: piece(w.x, jnp.int32(w.first), w.count,
                                                         w.final), 4, final_denoise=True,
                                         on_step=steps.append)
    assert steps == [0, 1, 2, 3]
    assert piece._cache_size() == 3  # initial draw, every step, final step
    np.testing.assert_allclose(pieces, whole, rtol=1e-5, atol=1e-5)


# --- 1, 2 and 4 fake devices -------------------------------------------------------------

CHECK_SCRIPT = "sampler_check.py"


@pytest.fixture(scope="module")
def multi_device():
    """Runs `sampler_check.py` with 4 fake CPU devices; returns its JSON report."""
    return run_check(CHECK_SCRIPT, timeout=900)


@pytest.mark.slow  # the 4-device subprocess: ~35 s
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("operator", ["beam", "zblur"])
def test_one_two_four_devices_agree(multi_device, name, operator):
    """7 slices (padded on 2 and 4 devices) against the plain one-device sampler; slice-wise
    ParallelBeam and halo-coupled ZBlur. (The sharded path on one device is covered by
    test_parallel.py.)"""
    for n in (2, 4):
        tag = f"{name}_{operator}_n{n}"
        assert multi_device[tag] <= 1e-5, (tag, multi_device[tag])
        assert multi_device[tag + "_shape"] == [7, 16, 16]
    assert multi_device[f"{name}_{operator}_pieces_n4"] <= 1e-5  # step by step, as the CLI
    assert multi_device[f"{name}_{operator}_ref_vs_truth"] > 1e-2  # not vacuous


# --- closed-form oracles --------------------------------------------------------------------

PUBLISHED_SIGMAS = jnp.geomspace(5.0, 0.01, 30)
#: Settings under which the sampler's expected output is the Gaussian posterior mean.
ORACLE_SETTINGS = {
    "dds": dict(cg_iters=10, rho=1e-2),
    "ddnm": dict(cg_iters=20),
    "admm_tv": dict(lam=0.0, rho=1e-2, mu=1e-2, admm_iters=2, cg_iters=10),
}
#: Samplers without one, and why (each sampler is in exactly one of the two).
NO_ORACLE = {"dps": "an approximate posterior sampler: its fixed point is not the posterior "
                    "mean (its own step is checked in test_dps_step_is_the_closed_form_gradient)"}


def test_every_sampler_has_an_oracle_or_a_reason():
    assert set(ORACLE_SETTINGS) | set(NO_ORACLE) == set(NAMES)
    assert not set(ORACLE_SETTINGS) & set(NO_ORACLE)


@pytest.mark.parametrize("name,operator", [(n, DenseSlices) for n in ORACLE_SETTINGS]
                         + [("ddnm", DensePinv)])
def test_expected_output_is_the_gaussian_posterior_mean(name, operator):
    """Noise-free y = A x, x ~ N(mu, I): posterior mean mu + A^T (A A^T)^{-1} (y - A mu).

    With zero fresh noise each step is affine in the noise, so the output is the sampler's
    expected output; its error is the 30-step discretisation bias (see test_samplers.py).
    """
    op = operator(problem()[0].matrix)
    x_true = prior_mean() + jax.random.normal(jax.random.key(1), (1, H, W))
    y = jnp.broadcast_to(op.A(x_true), (4, op.matrix.shape[0]))
    m, mu = op.matrix, prior_mean().ravel()
    posterior_mean = mu + m.T @ jnp.linalg.solve(m @ m.T, y[0] - m @ mu)
    out = jax.jit(lambda k: samplers.get_sampler(name)(
        k, y, op, gaussian_prior(), noise=zero_noise, sigmas=PUBLISHED_SIGMAS,
        **ORACLE_SETTINGS[name]))(KEY)
    for row in out.reshape(4, -1):
        np.testing.assert_allclose(row, posterior_mean, atol=5e-3)


# --- one step of each algorithm against an independent computation ------------------------

def one_step(name, op, y, x, sigma, **settings):
    """A single step from x (zero fresh noise, sigma_next = 0): the step's clean estimate."""
    return samplers.get_sampler(name)(KEY, y, op, gaussian_prior(), noise=zero_noise,
                                      sigmas=jnp.array([sigma]), x_init=x, **settings)


def test_ddnm_step_uses_the_exact_pinv_or_converged_cg():
    op, y, _ = problem()
    x = jax.random.normal(jax.random.key(3), (DEPTH, H, W))
    x0_hat = gaussian_prior()(x, 0.7)
    m = np.asarray(op.matrix, np.float64)
    residual = np.asarray(y - op.A(x0_hat), np.float64)
    expected = np.asarray(x0_hat) + (residual @ np.linalg.pinv(m).T).reshape(DEPTH, H, W)
    exact = one_step("ddnm", DensePinv(op.matrix), y, x, 0.7, cg_iters=0)
    assert ddnm.uses_exact_pinv(DensePinv(op.matrix)) and not ddnm.uses_exact_pinv(op)
    np.testing.assert_allclose(exact, expected, atol=1e-4)
    np.testing.assert_allclose(one_step("ddnm", op, y, x, 0.7, cg_iters=16), expected, atol=1e-3)


def test_dps_step_is_the_closed_form_gradient():
    """Gaussian denoiser: d x0_hat / dx = s^2 / (s^2 + sigma^2) I, so the step is
    x0_hat - zeta / ||A||^2 s^2 / (s^2 + sigma^2) A^T (A x0_hat - y)."""
    op, y, _ = problem()
    x, sigma, zeta = jax.random.normal(jax.random.key(4), (DEPTH, H, W)), 0.7, 0.3
    x0_hat = np.asarray(gaussian_prior()(x, sigma), np.float64)
    m = np.asarray(op.matrix, np.float64)
    residual = x0_hat.reshape(DEPTH, -1) @ m.T - np.asarray(y, np.float64)
    grad = (residual @ m).reshape(DEPTH, H, W) / (1 + sigma**2)
    got = one_step("dps", op, y, x, sigma, step_size=zeta, start_sigma=10.0, power_iters=500)
    np.testing.assert_allclose(got, x0_hat - zeta / np.linalg.norm(m, 2) ** 2 * grad,
                               atol=1e-4)
    assert dps.Settings().step_size > 0


def test_dps_operator_norm_is_the_largest_singular_value_squared():
    op, y, _ = problem()
    layout = SliceLayout(jnp.arange(DEPTH + 2), (jnp.arange(DEPTH + 2) < DEPTH) * 1.0, DEPTH)
    ctx = samplers.core._setup(KEY, jnp.pad(y, [(0, 2), (0, 0)]), op, None,
                               dps.Settings(power_iters=500), sigmas=SIGMAS, chunk_size=1,
                               layout=layout)
    np.testing.assert_allclose(dps.operator_norm_squared(ctx),
                               np.linalg.norm(np.asarray(op.matrix, np.float64), 2) ** 2,
                               rtol=1e-4)


def test_dps_start_schedule_restricts_and_respaces():
    sigmas = jnp.geomspace(5.0, 0.01, 30)
    np.testing.assert_allclose(dps.start_schedule(sigmas, 0.1), jnp.geomspace(0.1, 0.01, 30),
                               rtol=1e-4)
    np.testing.assert_allclose(dps.start_schedule(sigmas, 7.0), sigmas, rtol=1e-5)
    uneven = jnp.array([4.0, 2.0, 0.5, 0.1])  # log sigma piecewise linear in the step index
    # sigma 1 sits at index 1.5; four steps at indices 1.5, 2, 2.5, 3
    np.testing.assert_allclose(dps.start_schedule(uneven, 1.0), [1.0, 0.5, 0.05**0.5, 0.1],
                               rtol=1e-4)


def _admm_objective(op, y, x, x0_hat, lam, rho):
    dz = x[1:] - x[:-1]
    return (0.5 * jnp.sum((op.A(x) - y) ** 2) + lam * jnp.sum(jnp.abs(dz))
            + 0.5 * rho * jnp.sum((x - x0_hat) ** 2))


def test_admm_tv_step_minimises_its_objective():
    """Many ADMM iterations: no random perturbation of the result lowers the convex objective,
    and a larger lam lowers the z total variation."""
    op, y, _ = problem()
    x, sigma, lam, rho = jax.random.normal(jax.random.key(5), (DEPTH, H, W)), 0.7, 0.5, 0.1
    x0_hat = gaussian_prior()(x, sigma)
    settings = dict(rho=rho, mu=1.0, admm_iters=300, cg_iters=10)
    got = one_step("admm_tv", op, y, x, sigma, lam=lam, **settings)
    best = _admm_objective(op, y, got, x0_hat, lam, rho)
    for k in range(50):
        step = 1e-3 * jax.random.normal(jax.random.key(100 + k), got.shape)
        assert _admm_objective(op, y, got + step, x0_hat, lam, rho) >= best - 1e-4
    tv = lambda v: float(jnp.sum(jnp.abs(v[1:] - v[:-1])))
    assert tv(one_step("admm_tv", op, y, x, sigma, lam=5 * lam, **settings)) < 0.8 * tv(got)


def test_z_differences_and_their_adjoint():
    layout = SliceLayout(jnp.arange(6), (jnp.arange(6) < 5) * 1.0, 5)  # 5 real + 1 padding
    x = jax.random.normal(jax.random.key(6), (6, 2, 3)) * layout.mask[:, None, None]
    w = jax.random.normal(jax.random.key(7), (6, 2, 3))
    dx = layout.z_diff(x)
    np.testing.assert_allclose(dx[:4], x[1:5] - x[:4], atol=1e-6)
    np.testing.assert_array_equal(dx[4:], 0.0)
    np.testing.assert_allclose(jnp.vdot(dx, w), jnp.vdot(x, layout.z_diff_adjoint(w)), rtol=1e-5)
    np.testing.assert_allclose(admm_tv.soft_threshold(jnp.array([-2.0, 0.5, 3.0]), 1.0),
                               [-1.0, 0.0, 2.0])


@pytest.mark.parametrize("name", NAMES)
def test_settings_are_validated(name):
    bad = {"dds": dict(cg_iters=-1), "ddnm": dict(cg_iters=-1), "dps": dict(start_sigma=0.0),
           "admm_tv": dict(mu=0.0)}[name]
    with pytest.raises(ValueError, match=name):
        samplers.SETTINGS[name](**bad)
