"""bfloat16 inference: ``priors.load(name, dtype="bfloat16")`` and ``--config.prior.dtype``.

The network computes in bfloat16 with its weights cast once at load (bfloat16 pytree leaves of
the `Denoiser`); the denoiser takes and returns float32. Its output differs from float32's by
about bfloat16's rounding: 8 significand bits, a unit roundoff of 2^-9 = 2.0e-3, and relative
L2 errors of 0.6e-3 to 2.7e-3 measured on ``phantom64`` and ``chest128`` at sigma 0.05 to 20
(the DPS input gradient 0.6e-3 to 1.4e-2). `CLOSE` leaves a few times that; `DIFFERENT` is
far above float32 reassociation (the float32 path is bit-identical to the model before
bfloat16 existed).
"""

import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import nibabel as nib
import numpy as np
import pytest
from flax import nnx

from iscs_jax import priors
from iscs_jax.denoiser import Denoiser
from iscs_jax.models import precision
from sample.__main__ import main

CLOSE = 2e-2  # relative L2, bf16 vs f32 (measured <= 2.7e-3 on the denoiser, see above)
RANDOM_CLOSE = 5e-2  # a random tiny NCSN++ (0.8e-2 to 2.7e-2 measured; test_ncsnpp's bound)
GRAD_CLOSE = 5e-2  # the DPS gradient (measured <= 1.4e-2)
DIFFERENT = 1e-4  # float32 reassociation is ~1e-7
SIGMAS = (0.05, 1.0, 20.0)


def rel_l2(ours, ref) -> float:
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


@pytest.fixture(scope="module")
def phantom_pair():
    """``phantom64`` in float32 and bfloat16, and noisy images ``[3, 64, 64]`` per sigma."""
    low, high = priors.load("phantom64", dtype="bfloat16"), priors.load("phantom64")
    x = jax.random.uniform(jax.random.key(0), (3, 64, 64))
    noise = jax.random.normal(jax.random.key(1), x.shape)
    return low.denoise_fn, high.denoise_fn, {s: x + s * noise for s in SIGMAS}


@jax.jit
def denoise(denoiser, x, sigma):
    return denoiser(x, sigma)


def hlo(denoiser, x, sigma=1.0) -> str:
    return jax.jit(lambda d, x: d(x, sigma)).lower(denoiser, x).as_text()


def operand_types(text: str, op: str) -> list[str]:
    """The element types of each ``stablehlo.<op>``'s operands, e.g. ``["bf16,bf16", ...]``."""
    found = re.findall(rf"stablehlo\.{op}\b.*?: \(([^)]*)\)", text)
    return [",".join(re.findall(r"x([a-z]+\d+)>", types)) for types in found]


def test_weights_are_cast_once_to_bfloat16_leaves(phantom_pair):
    low, high, _ = phantom_pair
    assert {leaf.dtype for leaf in jax.tree.leaves(low)} == {jnp.dtype(jnp.bfloat16)}
    assert {leaf.dtype for leaf in jax.tree.leaves(high)} == {jnp.dtype(jnp.float32)}
    assert len(jax.tree.leaves(low)) == len(jax.tree.leaves(high))
    assert low.apply != high.apply  # the architecture (static) knows its dtype


def test_output_is_float32_close_to_float32_and_not_identical(phantom_pair):
    low, high, noisy = phantom_pair
    for sigma, x in noisy.items():
        out, ref = denoise(low, x, sigma), denoise(high, x, sigma)
        assert out.dtype == jnp.float32 and out.shape == x.shape
        assert DIFFERENT < rel_l2(out, ref) < CLOSE, sigma


def test_dps_gradient_through_bfloat16_is_float32_and_close(phantom_pair):
    low, high, noisy = phantom_pair
    grad = jax.jit(jax.grad(lambda x, d: jnp.sum(d(x, 1.0) ** 2)))
    g_low, g_high = grad(noisy[1.0], low), grad(noisy[1.0], high)
    assert g_low.dtype == jnp.float32
    assert DIFFERENT < rel_l2(g_low, g_high) < GRAD_CLOSE


def test_the_network_computes_in_bfloat16(phantom_pair):
    """Every convolution of the bf16 program takes bf16 operands, and the dense layers are bf16
    products; the program's inputs and result are float32 images."""
    low, high, noisy = phantom_pair
    text = hlo(low, noisy[1.0])
    convs, dots = operand_types(text, "convolution"), operand_types(text, "dot_general")
    assert convs and all(types == "bf16,bf16" for types in convs), convs
    assert "bf16,bf16" in dots
    assert "tensor<3x64x64xf32>" in text.splitlines()[1]  # main's signature
    assert all(types == "f32,f32" for types in operand_types(hlo(high, noisy[1.0]),
                                                             "convolution"))


@pytest.fixture(scope="module")
def converted_ncsnpp(tmp_path_factory):
    """A (random, tiny 32x32) NCSN++ converted from a score_sde-style checkpoint."""
    from iscs_jax.convert import score_sde
    from test_ncsnpp import MODEL_CONFIG, random_state_dict, tiny_config

    out = tmp_path_factory.mktemp("priors") / "tiny_ncsnpp"
    return score_sde.to_prior({"model": random_state_dict(tiny_config())},
                              MODEL_CONFIG + ":tiny", str(out), weights="model")


def test_converted_score_sde_prior_in_bfloat16(converted_ncsnpp):
    """Parameters bf16, `Buffer`s (the Fourier frequencies, the sigma table) float32; the
    Tweedie denoiser float32, close to float32's, and equal to the network casting its float32
    parameters in every layer (``NCSNpp(dtype=bfloat16)`` as benchmarks/ncsnpp.py runs it)."""
    low = priors.load(converted_ncsnpp, dtype=jnp.bfloat16).denoise_fn
    high = priors.load(converted_ncsnpp).denoise_fn
    per_call = Denoiser(low.apply, high.weights)  # float32 leaves, cast inside each layer
    variables = jax.tree.leaves(low.weights, is_leaf=lambda v: isinstance(v, nnx.Variable))
    buffers = {v.get_value().dtype for v in variables if not isinstance(v, nnx.Param)}
    params = {v.get_value().dtype for v in variables if isinstance(v, nnx.Param)}
    assert buffers == {jnp.dtype(jnp.float32)} and params == {jnp.dtype(jnp.bfloat16)}
    x = jax.random.uniform(jax.random.key(2), (2, 32, 32))
    for sigma in (0.1, 4.0):
        noisy = x + sigma * jax.random.normal(jax.random.key(3), x.shape)
        out, ref = denoise(low, noisy, sigma), denoise(high, noisy, sigma)
        assert out.dtype == jnp.float32
        # Tweedie's x + sigma^2 score: compare the network's part, not the noisy input.
        assert DIFFERENT < rel_l2(out - noisy, ref - noisy) < RANDOM_CLOSE, sigma
        np.testing.assert_array_equal(out, denoise(per_call, noisy, sigma))
    convs = operand_types(hlo(low, x), "convolution")
    assert convs and all(types == "bf16,bf16" for types in convs), convs


def test_unknown_dtypes_are_value_errors_listing_the_valid_ones():
    for bad in ("float16", "bf16", "float64"):
        with pytest.raises(ValueError, match=r"\['bfloat16', 'float32'\]"):
            priors.load("phantom64", dtype=bad)
    assert precision.network_dtype("bfloat16") == jnp.bfloat16
    assert precision.network_dtype(jnp.float32) == jnp.float32


def test_cast_params_keeps_float32_values_uncopied(phantom_pair):
    _, high, _ = phantom_pair
    same = precision.cast_params(high.weights, "float32")
    assert all(a is b for a, b in zip(jax.tree.leaves(same), jax.tree.leaves(high.weights)))


def prior_config(**settings):
    from configs import sample_base
    config = sample_base.prior_config()
    config.update(settings)
    return config


def test_cli_prior_dtype_reaches_shipped_and_converted_priors(tmp_path):
    """``prior.dtype`` for a shipped name and for a score_sde ``.pth`` converted on load."""
    from sample import prior
    torch = pytest.importorskip("torch")
    from test_ncsnpp import MODEL_CONFIG, random_state_dict, tiny_config

    shipped = prior.load_prior(prior_config(name="phantom64", dtype="bfloat16"))
    assert {leaf.dtype for leaf in jax.tree.leaves(shipped.denoise_fn)} == {
        jnp.dtype(jnp.bfloat16)}
    from iscs_jax.convert import layout
    from iscs_jax.models import ncsnpp

    tensors = {k: torch.from_numpy(v) for k, v in random_state_dict(tiny_config()).items()}
    table = layout.layout(nnx.eval_shape(lambda: ncsnpp.NCSNpp(tiny_config(), rngs=nnx.Rngs(0))))
    shadow = [tensors[name] for name, entry in table.items() if entry.trainable]
    checkpoint = tmp_path / "tiny.pth"
    torch.save({"model": tensors, "ema": {"shadow_params": shadow}}, checkpoint)
    converted = prior.load_prior(prior_config(path=str(checkpoint), kind="score_sde",
                                              model_config=MODEL_CONFIG + ":tiny",
                                              dtype="bfloat16"))
    assert {leaf.dtype for leaf in jax.tree.leaves(converted.denoise_fn)} == {
        jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float32)}  # parameters, `Buffer`s


def read_volume(path: Path) -> np.ndarray:
    image = nib.load(path)
    assert image.get_data_dtype() == np.float32, path
    return np.asarray(image.dataobj)


def run_cli(workdir: Path, *extra) -> Path:
    argv = ["--config", "ct.py:smoke", "--config.compare=iscs", "--workdir", str(workdir),
            *extra]
    assert main(argv) == 0
    return max((workdir / "ct").iterdir())


@pytest.mark.slow
def test_cli_bfloat16_on_ct_smoke_writes_float32_volumes(tmp_path, capsys):
    """``ct.py:smoke`` (the shipped chest128 prior) with ``--config.prior.dtype=bfloat16``:
    float32 NIfTI volumes close to, and not equal to, the float32 run's."""
    low = run_cli(tmp_path / "bf16", "--config.prior.dtype=bfloat16")
    high = run_cli(tmp_path / "f32")
    capsys.readouterr()
    recon_low, recon_high = (read_volume(f / "recon_iscs.nii.gz") for f in (low, high))
    assert np.all(np.isfinite(recon_low))
    assert DIFFERENT < rel_l2(recon_low, recon_high) < CLOSE
    assert json.loads((low / "config.json").read_text())["prior"]["dtype"] == "bfloat16"
    psnr = [json.loads((f / "metrics.json").read_text()) for f in (low, high)]
    assert psnr[0] != psnr[1]


def test_bad_dtype_is_one_paragraph_naming_the_key(tmp_path, capsys):
    assert main(["--config", "ct.py:smoke", "--config.prior.dtype=float16", "--workdir",
                 str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: prior.dtype='float16' is not one of ['bfloat16', 'float32']")
    assert "Traceback" not in err and err.strip().count("\n") == 0
    assert not any(tmp_path.iterdir())
