"""Tests of slice sharding: the mesh helpers, ZBlur, and reconstruct_sharded.

The multi-device comparisons run once, in a subprocess with 4 fake CPU devices
(``tests/parallel_check.py``; XLA_FLAGS must be set before jax is imported, and
this process already imported it with one device). It prints measured numbers;
the tests below assert on them.
"""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from iscs_jax import parallel
from iscs_jax.operators.parallel_beam import ParallelBeam
from iscs_jax.operators.zaxis import ZBlur
from iscs_jax.samplers.sharded import reconstruct_sharded
from device_checks import run_check

CHECK_SCRIPT = "parallel_check.py"
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def multi_device():
    """Runs `parallel_check.py` with 4 fake CPU devices; returns its JSON report."""
    return run_check(CHECK_SCRIPT)


@pytest.mark.slow  # the 4-device subprocess: ~25 s
def test_sharded_reconstruction_matches_one_device(multi_device):
    results = multi_device["samplers"]
    expected = [f"{op}_{kind}_D7_n{n}" for op in ("beam", "zblur") for kind in ("iid", "iscs")
                for n in (2, 4)]
    expected += ["beam_iid_D7_n1", "zblur_iid_D7_n1", "zblur_iscs_D6_n4_warm"]
    for tag in expected:
        assert results[tag] <= TOLERANCE, (tag, results[tag])
        depth = 6 if "D6" in tag else 7
        assert results[tag + "_shape"] == [depth, 16, 16], tag
    # The comparison is not vacuous: the reconstructions differ from the truth.
    assert results["beam_D7_ref_vs_truth"] > 1e-2


@pytest.mark.slow  # the 4-device subprocess: ~25 s
def test_zblur_sharded_operator_matches_unsharded(multi_device):
    results = multi_device["operators"]
    assert len(results) == 2 * 2 * 2 * 2 * 2  # kernels x depths x devices x (A, AT) x (real, pad)
    for tag, diff in results.items():
        assert diff <= 1e-6, (tag, diff)


@pytest.mark.slow  # the 4-device subprocess: ~25 s
@pytest.mark.parametrize("kind", ["iid", "iscs"])
def test_noise_draw_is_local_to_each_device(multi_device, kind):
    report = multi_device["noise_hlo"][kind]
    assert report["collectives"] == []  # no all-gather / all-reduce / collective-permute
    assert report["entry_result"] == "f32[2,16,16]"  # [D / n, H, W] per device
    assert report["image_buffers"] == [2]  # no full-volume [8, 16, 16] buffer anywhere
    assert report["max_diff_vs_full"] <= 1e-6  # the same rows as the one-device draw


@pytest.mark.slow  # the 4-device subprocess: ~25 s
def test_sharded_sampler_communicates_only_scalars_and_halos(multi_device):
    beam, zblur = multi_device["sampler_hlo"]["beam"], multi_device["sampler_hlo"]["zblur"]
    assert beam["collectives"] == [["all-reduce", "f32[]"]]  # CG inner products only
    assert max(beam["image_buffers"]) <= beam["local_slices"]
    kinds = {op: shape for op, shape in zblur["collectives"] if op != "all-reduce"}
    assert kinds == {"collective-permute": "f32[1,16,16]{2,1,0}"}  # one-slice halos
    assert ["all-reduce", "f32[]"] in zblur["collectives"]
    assert max(zblur["image_buffers"]) <= zblur["local_slices"] + 2 * zblur["radius"]


@pytest.mark.parametrize("kernel", [(0.25, 0.5, 0.25), (0.1, 0.3, 0.2, 0.3, 0.1), (1.0,)])
def test_zblur_matches_scipy_zero_boundary_correlation(kernel):
    x = np.random.default_rng(0).normal(size=(5, 4, 3)).astype(np.float32)
    expected = ndimage.correlate1d(x, np.asarray(kernel), axis=0, mode="constant", cval=0.0)
    np.testing.assert_allclose(ZBlur(kernel).A(x), expected, atol=1e-6)


@pytest.mark.parametrize("with_beam", [False, True])
def test_zblur_adjoint_identity(with_beam):
    inner = ParallelBeam((8, 8), (0.0, 0.7, 2.0)) if with_beam else None
    op = ZBlur((0.2, 0.5, 0.3), inner=inner)
    kx, ky = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (5, 8, 8))
    y = jax.random.normal(ky, op.A(x).shape)
    lhs, rhs = jnp.vdot(op.A(x), y), jnp.vdot(x, op.AT(y))
    assert abs(float(lhs - rhs)) <= 1e-4 * abs(float(lhs))


def test_zblur_validates_arguments():
    with pytest.raises(ValueError, match="odd-length"):
        ZBlur((0.5, 0.5))
    with pytest.raises(ValueError, match="slice-wise"):
        ZBlur((1.0,), inner=ZBlur((1.0,)))
    assert not ZBlur().slicewise and hash(ZBlur()) == hash(ZBlur())


def test_padding_helpers():
    assert [parallel.padded_size(d, 4) for d in (1, 4, 6, 7, 8)] == [4, 4, 8, 8, 8]
    x = jnp.ones((7, 2, 2))
    padded = parallel.pad_slices(x, 8)
    assert padded.shape == (8, 2, 2)
    assert float(padded[7].sum()) == 0 and float(padded[:7].min()) == 1
    with pytest.raises(ValueError):
        parallel.pad_slices(x, 6)


def test_shard_slices_pads_and_gathers_back():
    mesh = parallel.make_mesh(1)
    x = np.arange(12, dtype=np.float32).reshape(3, 2, 2)
    placed = parallel.shard_slices(x, mesh, size=4)
    assert placed.sharding == parallel.leading_axis_sharding(mesh)
    expected = np.pad(x, [(0, 1), (0, 0), (0, 0)])
    np.testing.assert_array_equal(parallel.gather_to_host(placed), expected)
    with pytest.raises(ValueError, match="size"):
        parallel.shard_slices(x, mesh, size=2)


def test_make_mesh_rejects_more_devices_than_visible():
    with pytest.raises(ValueError, match="num_devices"):
        parallel.make_mesh(jax.device_count() + 1)
    assert parallel.make_mesh().shape == {"slices": jax.device_count()}


def test_reconstruct_sharded_rejects_bad_arguments():
    mesh, y = parallel.make_mesh(1), jnp.zeros((3, 4, 4))
    identity = lambda x, sigma: x
    with pytest.raises(ValueError, match="layout"):
        reconstruct_sharded(jax.random.key(0), y, ZBlur(), identity, mesh=mesh, noise="iid",
                            sigmas=[1.0], layout=None)
    with pytest.raises(ValueError, match="valid samplers"):
        reconstruct_sharded(jax.random.key(0), y, ZBlur(), identity, mesh=mesh, noise="iid",
                            sigmas=[1.0], sampler="ddim")
    with pytest.raises(ValueError, match="noise is required"):
        reconstruct_sharded(jax.random.key(0), y, ZBlur(), identity, mesh=mesh, sigmas=[1.0])

    class Coupling:  # couples slices and has no sharded form
        coupling = "halo"
        A = AT = staticmethod(lambda v: v)

    with pytest.raises(ValueError, match="A_sharded"):
        reconstruct_sharded(jax.random.key(0), y, Coupling(), identity, mesh=mesh,
                            noise="iid", sigmas=[1.0])


def test_the_runtime_takes_the_denoisers_weights_as_inputs():
    """The runtime places a `Denoiser`'s weights on the mesh once and passes them in: its
    program is a fraction of the one that closes over the same network (weights compiled in
    as constants), with the same result."""
    from iscs_jax import operators, priors, runtime

    prior = priors.load("phantom64")
    mesh = parallel.make_mesh(1)
    op = ParallelBeam((64, 64), operators.sparse_view_angles(8))
    x = np.random.default_rng(0).random((3, 64, 64)).astype(np.float32)
    y = np.asarray(op.A(x))
    sigmas = np.geomspace(1.0, 0.1, 2).astype(np.float32)

    def closure(v, s):  # a plain function: the weights are constants of the program
        return prior.denoise_fn(v, s)

    results, texts = [], []
    for denoise_fn in (prior.denoise_fn, closure):
        recon = runtime.Reconstructor(op, denoise_fn, sigmas=sigmas, mesh=mesh, cg_iters=2)
        texts.append(len(recon.lower(recon.prepare(y)).as_text()))
        results.append(np.asarray(recon.reconstruct(jax.random.key(1), y, noise="iscs")))
    assert texts[0] * 5 < texts[1], texts
    np.testing.assert_allclose(results[0], results[1], atol=1e-5)
