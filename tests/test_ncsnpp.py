"""NCSN++: each layer type against PyTorch's own primitives, the whole tiny model against an
independent PyTorch forward pass, and the 256x256 layout against the published state_dict."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from iscs_jax.convert import layout as layout_lib
from iscs_jax.convert import score_sde
from iscs_jax.models import fir, ncsnpp

REPO = pathlib.Path(__file__).resolve().parents[1]
TSV = REPO / "tests" / "data" / "ncsnpp_256_state_dict_shapes.tsv"  # from shared/reference
MODEL_CONFIG = str(REPO / "configs" / "models" / "ncsnpp_256.py")
KERNEL = (1, 3, 3, 1)
TOL = 1e-5


def rel_err(ours, ref) -> float:
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


def nchw(x):
    """Our NHWC array as a torch NCHW tensor."""
    import torch
    return torch.from_numpy(np.ascontiguousarray(np.transpose(np.asarray(x), (0, 3, 1, 2))))


def nhwc(t):
    return np.transpose(t.detach().numpy(), (0, 2, 3, 1))


def tiny_config(**overrides) -> ncsnpp.NCSNppConfig:
    cfg, _ = score_sde.ncsnpp_config(MODEL_CONFIG + ":tiny")
    return ncsnpp.NCSNppConfig.from_dict({**cfg.to_dict(), **overrides})


def random_state_dict(cfg, seed=0) -> dict:
    """A score_sde-style state_dict (torch names and shapes) of random float32 numpy arrays."""
    abstract = nnx.eval_shape(lambda: ncsnpp.NCSNpp(cfg, rngs=nnx.Rngs(0)))
    shapes = nnx.to_pure_dict(nnx.state(abstract))
    rng = np.random.default_rng(seed)
    sd = {}
    for name, entry in layout_lib.layout(abstract).items():
        leaf = shapes
        for key in entry.path:
            leaf = leaf[key]
        shape = layout_lib.torch_shape(leaf.shape, entry.transform)
        if name == "sigmas":
            value = np.geomspace(cfg.sigma_max, cfg.sigma_min, cfg.num_scales)
        elif name.endswith(".W") and len(shape) == 1:  # Fourier frequencies
            value = cfg.fourier_scale * rng.normal(size=shape)
        elif name.endswith((".weight", ".W")) and len(shape) > 1:
            fan_in = shape[0] if name.endswith(".W") else int(np.prod(shape[1:]))
            value = rng.normal(size=shape) / np.sqrt(fan_in)
        elif "GroupNorm" in name and name.endswith("weight") or len(shape) == 1 and \
                name.endswith("weight"):
            value = 1.0 + 0.1 * rng.normal(size=shape)
        else:
            value = 0.1 * rng.normal(size=shape)
        sd[name] = value.astype(np.float32)
    return sd


# ---------------------------------------------------------------- layers vs torch primitives


@pytest.mark.parametrize("size,cin,cout", [(3, 5, 7), (1, 6, 4)])
def test_conv_matches_torch_conv2d(size, cin, cout):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 9, 8, cin)).astype(np.float32)
    w = rng.normal(size=(cout, cin, size, size)).astype(np.float32)
    b = rng.normal(size=(cout,)).astype(np.float32)
    conv = ncsnpp._conv(cin, cout, size, jnp.float32, nnx.Rngs(0))
    conv.kernel[...] = jnp.asarray(layout_lib.to_ours(w, "conv"))
    conv.bias[...] = jnp.asarray(b)
    ref = F.conv2d(nchw(x), torch.from_numpy(w), torch.from_numpy(b), padding=size // 2)
    assert rel_err(conv(jnp.asarray(x)), nhwc(ref)) <= TOL


def test_group_norm_matches_torch_group_norm():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    rng = np.random.default_rng(1)
    # A large mean: a one-pass variance would lose digits here.
    x = (5.0 + rng.normal(size=(2, 6, 5, 24))).astype(np.float32)
    scale, bias = rng.normal(size=(2, 24)).astype(np.float32)
    norm = ncsnpp._norm(24, jnp.float32, nnx.Rngs(0))
    norm.scale[...], norm.bias[...] = jnp.asarray(scale), jnp.asarray(bias)
    ref = F.group_norm(nchw(x), 6, torch.from_numpy(scale), torch.from_numpy(bias), 1e-6)
    assert rel_err(norm(jnp.asarray(x)), nhwc(ref)) <= TOL


def test_dense_and_nin_match_torch_linear():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 10)).astype(np.float32)
    w, b = rng.normal(size=(6, 10)).astype(np.float32), rng.normal(size=(6,)).astype(np.float32)
    dense = ncsnpp._linear(10, 6, jnp.float32, nnx.Rngs(0))
    dense.kernel[...], dense.bias[...] = jnp.asarray(layout_lib.to_ours(w, "linear")), b
    ref = F.linear(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)).numpy()
    assert rel_err(dense(jnp.asarray(x)), ref) <= TOL
    # NIN stores W as [in, out]: copied as is, y = x W + b.
    nin = ncsnpp._linear(6, 10, jnp.float32, nnx.Rngs(0))
    nin.kernel[...], nin.bias[...] = jnp.asarray(layout_lib.to_ours(w, "copy")), x[0]
    ref = F.linear(torch.from_numpy(ref), torch.from_numpy(w.T.copy()), torch.from_numpy(x[0]))
    assert rel_err(nin(jnp.asarray(dense(jnp.asarray(x)))), ref.numpy()) <= TOL


def test_fir_up_and_down_match_upfirdn_from_its_definition():
    pytest.importorskip("torch")
    import score_sde_reference as ref
    x = np.random.default_rng(3).normal(size=(2, 8, 6, 3)).astype(np.float32)
    up = fir.upsample(jnp.asarray(x), KERNEL)
    down = fir.downsample(jnp.asarray(x), KERNEL)
    assert up.shape == (2, 16, 12, 3) and down.shape == (2, 4, 3, 3)
    assert rel_err(up, nhwc(ref.fir_up(nchw(x), KERNEL))) <= TOL
    assert rel_err(down, nhwc(ref.fir_down(nchw(x), KERNEL))) <= TOL


def test_fir_keeps_constants_away_from_the_border():
    """Normalised kernels: a constant image stays constant where the filter sees no padding."""
    x = jnp.full((1, 8, 8, 2), 3.0)
    np.testing.assert_allclose(fir.upsample(x, KERNEL)[0, 2:-2, 2:-2], 3.0, rtol=1e-6)
    np.testing.assert_allclose(fir.downsample(x, KERNEL)[0, 1:-1, 1:-1], 3.0, rtol=1e-6)


def test_fir_conv_downsample_matches_torch():
    torch = pytest.importorskip("torch")
    import score_sde_reference as ref
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    w, b = rng.normal(size=(5, 3, 3, 3)).astype(np.float32), rng.normal(size=5).astype(np.float32)
    pyramid = ncsnpp.PyramidDown(3, 5, tiny_config(), rngs=nnx.Rngs(0))
    pyramid.conv.kernel[...], pyramid.conv.bias[...] = layout_lib.to_ours(w, "conv"), b
    out = pyramid(jnp.asarray(x))
    assert out.shape == (2, 4, 4, 5)
    expected = ref.conv_down(nchw(x), torch.from_numpy(w), torch.from_numpy(b), KERNEL)
    assert rel_err(out, nhwc(expected)) <= TOL


# ---------------------------------------------------------------- the whole model


@pytest.fixture(scope="module")
def tiny_conversion():
    cfg = tiny_config()
    sd = random_state_dict(cfg)
    score, params = score_sde.from_score_sde({"model": sd}, MODEL_CONFIG + ":tiny",
                                             weights="model")
    return cfg, sd, jax.jit(score), params


def test_converted_tiny_model_matches_an_independent_torch_forward(tiny_conversion):
    torch = pytest.importorskip("torch")
    import score_sde_reference as ref
    cfg, sd, score, _ = tiny_conversion
    rng = np.random.default_rng(5)
    x = rng.uniform(size=(2, 32, 32, 1)).astype(np.float32)
    sigma = np.array([0.05, 7.0], np.float32)
    reference = ref.Reference({k: torch.from_numpy(v) for k, v in sd.items()}, cfg)
    with torch.no_grad():
        expected = nhwc(reference(nchw(x), torch.from_numpy(sigma)))
    assert rel_err(score(jnp.asarray(x), jnp.asarray(sigma)), expected) <= TOL


def test_denoiser_is_tweedie_of_the_score(tiny_conversion):
    cfg, _, score, params = tiny_conversion
    graphdef, state = nnx.split(nnx.eval_shape(lambda: ncsnpp.NCSNpp(cfg, rngs=nnx.Rngs(0))))
    nnx.replace_by_pure_dict(state, params)
    denoise = jax.jit(ncsnpp.make_denoise_fn(graphdef, state))
    x = jax.random.uniform(jax.random.key(0), (3, 32, 32))
    s = score(x[..., None], jnp.full((3,), 2.0))[..., 0]
    np.testing.assert_allclose(denoise(x, 2.0), x + 4.0 * s, rtol=1e-5, atol=1e-5)
    sigmas = jnp.array([0.5, 1.0, 2.0])
    per_sample = denoise(x, sigmas)
    np.testing.assert_allclose(per_sample[2], denoise(x, 2.0)[2], rtol=1e-5, atol=1e-6)


def test_bfloat16_compute_stays_close_to_float32(tiny_conversion):
    """``dtype=bfloat16`` (for GPUs/TPUs): same parameters, float32 output, ~bf16 accuracy."""
    cfg, _, score, params = tiny_conversion
    graphdef, state = nnx.split(nnx.eval_shape(
        lambda: ncsnpp.NCSNpp(cfg, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))))
    nnx.replace_by_pure_dict(state, params)
    x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 1))
    sigma = jnp.array([0.1, 4.0])
    low = jax.jit(ncsnpp.make_score_fn(graphdef, state))(x, sigma)
    assert low.dtype == jnp.float32
    err = rel_err(low, score(x, sigma))
    assert 1e-5 < err < 5e-2  # really computed in bfloat16, and still close


def test_unsupported_variants_name_the_field():
    with pytest.raises(ValueError, match="progressive="):
        tiny_config(progressive="output_skip")
    with pytest.raises(ValueError, match="image_size"):
        tiny_config(image_size=30)


# ---------------------------------------------------------------- the published 256 layout


def test_layout_covers_the_published_256_state_dict_exactly():
    """Every TSV tensor maps to one of our parameters with its shape, in state_dict order, and
    every parameter of our model is covered (shapes only: nothing is materialised)."""
    rows = [line.rstrip("\n").split("\t") for line in TSV.read_text().splitlines()[1:]]
    published = {name: tuple(int(d) for d in shape.split("x")) for name, shape in rows}
    cfg, _ = score_sde.ncsnpp_config(MODEL_CONFIG)
    abstract = nnx.eval_shape(lambda: ncsnpp.NCSNpp(cfg, rngs=nnx.Rngs(0)))
    ours = {path: leaf.shape for path, leaf in
            jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(nnx.state(abstract)))[0]}
    ours = {tuple(k.key for k in path): shape for path, shape in ours.items()}
    table = layout_lib.layout(abstract)
    assert list(table) == [name for name, _ in rows]
    for name, entry in table.items():
        assert layout_lib.torch_shape(ours[entry.path], entry.transform) == published[name], name
    assert sorted(map(str, ours)) == sorted(str(e.path) for e in table.values())
    assert sum(int(np.prod(s)) for s in ours.values()) == 61_435_601
    frozen = [name for name, entry in table.items() if not entry.trainable]
    assert frozen == ["sigmas", "all_modules.0.W"]
