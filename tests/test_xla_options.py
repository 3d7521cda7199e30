"""The library's XLA compiler options: on CPU, convolutions are compiled by XLA, not YNNPACK."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iscs_jax import priors, xla_options


def ynn_convolutions(compiled_text: str) -> int:
    """How many YNNPACK fusions of a compiled module hold a convolution."""
    called = re.findall(r"calls=(%[\w.\-]+)[^\n]*\"kind\":\"__ynn_fusion\"", compiled_text)
    count = 0
    for name in called:
        body = re.search(re.escape(name) + r" \([^\n]*\{\n(.*?)\n\}", compiled_text, re.S)
        count += bool(body and "convolution(" in body.group(1))
    return count


@pytest.fixture(scope="module")
def denoiser_and_chunk():
    chunk = np.random.default_rng(0).random((2, 64, 64)).astype(np.float32)
    return priors.load("phantom64").denoise_fn, jnp.asarray(chunk)


def test_cpu_options_move_convolutions_off_ynnpack(denoiser_and_chunk):
    denoise_fn, chunk = denoiser_and_chunk
    assert jax.default_backend() == "cpu"
    options = xla_options.compiler_options()
    assert options == {xla_options.YNN_FUSION_TYPES: xla_options.YNN_WITHOUT_CONVOLUTIONS}
    default = jax.jit(denoise_fn).lower(chunk, 0.5).compile()
    ours = xla_options.jit(denoise_fn).lower(chunk, 0.5).compile()
    assert ynn_convolutions(default.as_text()) > 0  # what the option changes on this jaxlib
    assert ynn_convolutions(ours.as_text()) == 0
    assert "__ynn_fusion" in ours.as_text()  # matrix products and reductions stay on YNNPACK
    expected, got = np.asarray(default(chunk, 0.5)), np.asarray(ours(chunk, 0.5))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_options_only_on_cpu_for_narrow_networks_and_never_over_the_users_flags(monkeypatch):
    assert xla_options.compiler_options("gpu") == {}
    assert xla_options.compiler_options("tpu") == {}
    narrow = xla_options.YNN_MIN_CHANNELS - 1
    assert xla_options.compiler_options("cpu", channels=narrow) == xla_options.compiler_options()
    assert xla_options.compiler_options("cpu", channels=xla_options.YNN_MIN_CHANNELS) == {}
    monkeypatch.setenv("XLA_FLAGS", f"--{xla_options.YNN_FUSION_TYPES}=individual_convolution")
    assert xla_options.compiler_options("cpu") == {}


def test_denoisers_are_sized_by_their_widest_spatial_convolution():
    from flax import nnx

    from iscs_jax.convert import score_sde
    from iscs_jax.denoiser import Denoiser
    from iscs_jax.models import ncsnpp

    unet = priors.load("phantom64")  # base width 16, multipliers up to 4
    assert xla_options.conv_channels(unet.denoise_fn.weights) == 64
    assert xla_options.for_denoiser(unet.denoise_fn, "cpu") == xla_options.compiler_options()
    cfg, _ = score_sde.ncsnpp_config("configs/models/ncsnpp_256.py")  # nf 128, up to 2x
    abstract = nnx.state(nnx.eval_shape(lambda: ncsnpp.NCSNpp(cfg, rngs=nnx.Rngs(0))))
    assert xla_options.conv_channels(abstract) == 256
    assert xla_options.for_denoiser(Denoiser(lambda w, x, s: x, abstract), "cpu") == {}
    # 1x1 kernels and plain functions do not count
    assert xla_options.conv_channels({"nin": jnp.zeros((1, 1, 512, 512))}) is None
    assert xla_options.for_denoiser(lambda x, s: x, "cpu") == xla_options.compiler_options()


def test_jit_keeps_the_callers_options_and_arguments():
    opts = {"xla_cpu_enable_fast_math": False}
    jitted = xla_options.jit(lambda x, n: x * n, static_argnums=1, compiler_options=opts)
    assert float(jitted(jnp.float32(2.0), 3)) == 6.0
    assert jitted.lower(jnp.float32(2.0), 3).compile() is not None
    # the caller's value wins over the library's for the same key
    mine = {xla_options.YNN_FUSION_TYPES: "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"}
    x = jnp.zeros((1, 64, 64, 32))
    w = jnp.zeros((3, 3, 32, 32))

    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    text = xla_options.jit(conv, compiler_options=mine).lower(x, w).compile().as_text()
    assert ynn_convolutions(text) == ynn_convolutions(jax.jit(conv).lower(x, w).compile().as_text())


def test_the_runtime_compiles_its_sampler_with_the_options():
    from iscs_jax import operators, runtime

    denoiser = priors.load("phantom64").denoise_fn
    op = operators.ParallelBeam((64, 64), operators.sparse_view_angles(4))
    build = lambda: runtime.Reconstructor(op, denoiser, sigmas=[1.0, 0.5])
    program = build()._program
    assert program is build()._program  # one program per set of options, shared by value
    assert dict(program._jit_info.compiler_options_kvs) == xla_options.compiler_options()


def test_programs_over_several_devices_keep_xlas_defaults(denoiser_and_chunk):
    """Several host devices: no options (with them a 4-device DPS program once gave a
    different volume on every run; `tests/test_runtime.py` runs that case)."""
    denoise_fn, _ = denoiser_and_chunk
    assert xla_options.compiler_options(num_devices=4) == {}
    assert xla_options.for_denoiser(denoise_fn, num_devices=2) == {}
    assert xla_options.for_denoiser(denoise_fn, num_devices=1) == xla_options.compiler_options()
    jitted = xla_options.jit(lambda x: x, denoiser=denoise_fn, num_devices=2)
    assert not dict(jitted._jit_info.compiler_options_kvs or ())


@pytest.mark.slow  # ~20 s
def test_the_training_step_has_no_ynnpack_convolution():
    from iscs_jax import cli, parallel
    from train import loop

    config = cli.load_config("train_phantom.py:smoke", "configs")[0]
    mesh = parallel.make_mesh(1, "batch")
    tx = loop.make_optimizer(config)
    graphdef, state = loop.create_train_state(config, tx)
    r = config.data.resolution
    batch = jnp.zeros((config.train.batch_size, r, r), jnp.float32)
    default = jax.jit(loop.make_train_step(graphdef, tx, config)).lower(state, batch)
    ours = loop.compile_train_step(graphdef, tx, config, mesh).lower(state, batch)
    assert ynn_convolutions(default.compile().as_text()) > 0
    assert ynn_convolutions(ours.compile().as_text()) == 0
