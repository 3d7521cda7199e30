"""Tests of `iscs_jax.runtime`: the reconstruction runtime the CLI, tests and benchmarks use.

One device here (the suite's process); 4 fake devices in a subprocess (`runtime_check.py`):
every sampler on a slice-wise, a globally coupled and a z-coupled operator with one slice
per device, padding and several slices per device, against one device.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iscs_jax import operators, runtime, samplers
from iscs_jax.denoiser import GaussianDenoiser
from iscs_jax.samplers import core
from device_checks import run_check

SIGMAS = np.array([5.0, 1.0, 0.2], np.float32)
SETTINGS = {"dds": dict(cg_iters=3), "ddnm": dict(cg_iters=3), "dps": dict(step_size=0.5),
            "admm_tv": dict(lam=0.05, admm_iters=2, cg_iters=2)}
DENOISER = GaussianDenoiser(0.5, 0.3)


def problem(depth: int = 5):
    op = operators.ParallelBeam((12, 12), tuple(np.linspace(0.1, 3.0, 6)))
    x = np.random.default_rng(0).random((depth, 12, 12)).astype(np.float32)
    return op, x, np.asarray(op.A(x))


@pytest.mark.parametrize("name", sorted(samplers.SAMPLERS))
def test_the_runtime_equals_the_plain_sampler(name):
    """In pieces, with the set-up computed once, on a one-device mesh: the whole-scan run."""
    op, x, y = problem()
    kwargs = dict(chunk_size=2, final_denoise=True, **SETTINGS[name])
    ref = jax.jit(lambda k: samplers.get_sampler(name)(
        k, y, op, DENOISER, noise="iscs", sigmas=SIGMAS, x_init=0.5 * x, **kwargs))(
            jax.random.key(3))
    recon = runtime.Reconstructor(op, DENOISER, sigmas=SIGMAS, sampler=name, **kwargs)
    steps = []
    got = recon.reconstruct(jax.random.key(3), y, x_init=0.5 * x, on_step=steps.append)
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), atol=2e-5)
    assert steps == [0, 1, 2]
    assert float(jnp.abs(ref - x).max()) > 1e-2  # not vacuous


def test_every_noise_control_runs_in_one_program():
    """The noise control is an input: iid and ISCS differ, each equals its own one-control
    runtime."""
    op, _, y = problem()
    both = runtime.Reconstructor(op, DENOISER, sigmas=SIGMAS, noises=("iid", "iscs"),
                                 cg_iters=2)
    run = both.prepare(y)
    for kind in ("iid", "iscs"):
        alone = runtime.Reconstructor(op, DENOISER, sigmas=SIGMAS, noises=(kind,), cg_iters=2)
        np.testing.assert_allclose(np.asarray(both.reconstruct(jax.random.key(0), run, noise=kind)),
                                   np.asarray(alone.reconstruct(jax.random.key(0), y, noise=kind)),
                                   atol=1e-5)
    iid, iscs = (np.asarray(both.reconstruct(jax.random.key(0), run, noise=k))
                 for k in ("iid", "iscs"))
    assert np.abs(iid - iscs).max() > 1e-2
    with pytest.raises(ValueError, match="shared"):
        both.reconstruct(jax.random.key(0), run, noise="shared")


def test_the_steps_read_the_set_up_they_are_given():
    """The run's set-up (A^T y, DPS's ||A||^2) is an input of every step, not recomputed
    there: a different one changes the result."""
    op, _, y = problem()
    for name, change in (("dps", lambda s: s._replace(prepared=4 * s.prepared)),
                         ("dds", lambda s: s._replace(aty=0 * s.aty))):
        recon = runtime.Reconstructor(op, DENOISER, sigmas=SIGMAS, sampler=name,
                                      **SETTINGS[name])
        run = recon.prepare(y)
        same = recon.reconstruct(jax.random.key(0), run)
        changed = recon.reconstruct(jax.random.key(0), run._replace(setup=change(run.setup)))
        assert float(jnp.abs(same - changed).max()) > 1e-3, name


def test_equal_settings_share_compiled_programs():
    """Programs are keyed by value: a second Reconstructor of equal settings (a new but
    equal GaussianDenoiser) compiles nothing."""
    op, _, y = problem()
    build = lambda: runtime.Reconstructor(op, GaussianDenoiser(0.5, 0.3), sigmas=SIGMAS,
                                          cg_iters=2)
    first = build()
    first.reconstruct(jax.random.key(1), y)
    size = first._program._cache_size()
    second = build()
    second.reconstruct(jax.random.key(0), y)
    assert second._program._cache_size() == size


def test_bad_arguments_are_refused():
    op, _, y = problem()
    with pytest.raises(ValueError, match="valid samplers"):
        runtime.Reconstructor(op, DENOISER, sigmas=SIGMAS, sampler="ddim")
    with pytest.raises(ValueError, match="layout"):
        runtime.Reconstructor(op, DENOISER, sigmas=SIGMAS, layout=None)
    with pytest.raises(ValueError, match="cg_iters"):
        runtime.Reconstructor(op, DENOISER, sigmas=SIGMAS, cg_iters=-1)
    with pytest.raises(ValueError, match="noise kind"):
        runtime.Reconstructor(op, DENOISER, sigmas=SIGMAS, noises=("pink",))
    recon = runtime.Reconstructor(op, DENOISER, sigmas=SIGMAS)
    with pytest.raises(ValueError, match="x_init"):
        recon.prepare(y, x_init=np.zeros((2, 12, 12)))


def test_a_window_piece_equals_the_same_steps_of_the_run():
    op, _, y = problem()
    recon = runtime.Reconstructor(op, DENOISER, sigmas=SIGMAS, noises=("iscs",))
    run, key = recon.prepare(y), jax.random.key(2)
    pieces = core.run_in_pieces(lambda w: recon.piece(key, run, w, noise="iscs"), 3)
    np.testing.assert_array_equal(np.asarray(pieces), np.asarray(recon.reconstruct(key, run)))


@pytest.mark.slow
def test_four_devices_equal_one_on_every_sampler_and_operator():
    """One slice per device (D=4); padding and several slices per device (D=9)."""
    four_devices = run_check("runtime_check.py", "ops", timeout=900)
    tags = [t for t in four_devices if not t.endswith("/range")]
    assert len(tags) == len(samplers.SAMPLERS) * 5
    for tag in tags:
        assert four_devices[tag] <= 1e-5, (tag, four_devices[tag])
        assert four_devices[tag + "/range"] > 1e-2, tag


@pytest.mark.slow
def test_four_devices_equal_one_with_a_unet_and_one_slice_per_device():
    four_devices = run_check("runtime_check.py", "unet", timeout=900)
    tags = [t for t in four_devices if not t.endswith("/range")]
    assert len(tags) == 2
    for tag in tags:
        assert four_devices[tag] <= 1e-5, (tag, four_devices[tag])
        assert four_devices[tag + "/range"] > 1e-2, tag


@pytest.mark.parametrize("sigmas, message", [
    ([1.0, 2.0, 0.5], "increase at step 1"),
    ([1.0, 0.0], "<= 0"),
    ([1.0, -0.1], "<= 0"),
    ([1.0, float("nan")], "NaN"),
    ([], "non-empty"),
])
def test_bad_schedules_are_refused_at_the_library_boundary(sigmas, message):
    """Finite, positive, non-increasing: the runtime and every plain sampler check it."""
    op, _, y = problem()
    with pytest.raises(ValueError, match=message):
        runtime.Reconstructor(op, DENOISER, sigmas=sigmas)
    for name in samplers.SAMPLERS:
        with pytest.raises(ValueError, match=message):
            samplers.get_sampler(name)(jax.random.key(0), y, op, DENOISER, noise="iscs",
                                       sigmas=np.asarray(sigmas, np.float32))


def test_baseline_is_the_operators_own():
    op, x, y = problem()
    volume, seconds = runtime.baseline(op, y)
    np.testing.assert_allclose(volume, np.asarray(op.baseline(y)), atol=1e-6)
    assert volume.shape == x.shape and seconds >= 0
