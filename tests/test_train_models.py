"""train.models: bfloat16 training of the U-Net, and NCSN++ trained, exported and sampled from.

Both run the shipped ``:smoke`` configs (``train_phantom.py:smoke`` with
``train.dtype=bfloat16``, ``train_ncsnpp256.py:smoke``) through `train.loop.train`.
"""

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import train_ncsnpp256, train_phantom
from sample.cli import parse_args
from sample.prior import load_prior
from train import data, export, loop, models

#: The tests of a trained run: each module fixture compiles a training step and trains
#: (~30-50 s on the busy 2-core CPU).
slow = pytest.mark.slow


def test_ve_objective_is_score_sdes_denoising_score_matching():
    """lambda(sigma) |D - x0|^2 with D = x + sigma^2 s is sigma^2 |s + z / sigma|^2 (any s)."""
    x0, z, score = (jax.random.normal(jax.random.key(i), (3, 8, 8)) for i in range(3))
    sigma = jnp.array([0.01, 1.0, 300.0])
    x = x0 + sigma[:, None, None] * z
    objective = models.Objective("ve_score")
    x0_hat = objective.denoise(lambda x, s: score[..., None], x, sigma)
    ours = objective.weight(sigma) * jnp.sum((x0_hat - x0) ** 2, axis=(1, 2))
    theirs = sigma**2 * jnp.sum((score + z / sigma[:, None, None]) ** 2, axis=(1, 2))
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)


def test_unknown_architecture_and_dtype_name_the_key():
    config = train_phantom.get_config("smoke")
    config.train.dtype = "float16"
    with pytest.raises(ValueError, match="train.dtype='float16'"):
        models.dtype(config)
    config = train_ncsnpp256.get_config("smoke")
    config.model.architecture = "ddpm"
    with pytest.raises(ValueError, match="model.architecture='ddpm'.*ncsnpp"):
        models.architecture(config)


def fixed_loss(config, graphdef, buffers, images, num_keys=8):
    """The training loss averaged over ``num_keys`` fixed (sigma, noise) draws."""
    kw = dict(sigma_min=config.train.sigma_min, sigma_max=config.train.sigma_max)
    keys = jax.random.split(jax.random.key(123), num_keys)
    return lambda p: jnp.mean(jax.vmap(lambda k: models.denoising_loss(
        graphdef, p, buffers, images, k, models.objective(config), **kw))(keys))


def first_batch(config):
    """Batch 0 ``[B, R, R]`` of the config's training images."""
    return jnp.asarray(loop.get_batch(data.load_slices(config), config, 0))


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory):
    """``train_phantom.py:smoke`` in bfloat16, logging every step: (config, initial state,
    final state, graphdef, workdir)."""
    config = train_phantom.get_config("smoke")
    config.train.update(dtype="bfloat16", log_every=1)
    workdir = tmp_path_factory.mktemp("bf16")
    graphdef, initial = loop.create_train_state(config, loop.make_optimizer(config))
    _, final = loop.train(config, str(workdir), progress=False)
    return config, initial, final, graphdef, workdir


@slow
def test_bfloat16_training_decreases_the_loss(bf16_run):
    config, initial, final, graphdef, workdir = bf16_run
    losses = [json.loads(line)["loss"] for line in (workdir / "metrics.jsonl").open()]
    assert len(losses) == config.train.num_steps and np.all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < 0.9 * np.mean(losses[:10])  # 0.72 vs 0.90 measured


@slow
def test_bfloat16_keeps_float32_state_and_runs_convolutions_in_bfloat16(bf16_run):
    config, initial, final, graphdef, _ = bf16_run
    for part in ("params", "opt_state", "ema"):
        floats = {x.dtype for x in jax.tree.leaves(final[part]) if jnp.issubdtype(x.dtype,
                                                                                  jnp.floating)}
        assert floats == {jnp.dtype(jnp.float32)}, part
    images = jnp.zeros((4, 32, 32))
    text = jax.jit(jax.grad(fixed_loss(config, graphdef, {}, images, num_keys=1))).lower(
        initial["params"]).as_text()
    convs = re.findall(r"stablehlo\.convolution.*?: \(([^)]*)\)", text)
    assert convs and all("bf16" in c and "f32" not in c for c in convs)


@pytest.fixture(scope="module")
def ncsnpp_prior(tmp_path_factory):
    """``train_ncsnpp256.py:smoke`` trained 6 steps and exported: (config, graphdef, state,
    stem)."""
    config = train_ncsnpp256.get_config("smoke")
    config.train.update(num_steps=6, warmup_steps=2, log_every=3)
    config.checkpoint.update(every=3)
    workdir = tmp_path_factory.mktemp("ncsnpp") / "work"
    graphdef, state = loop.train(config, str(workdir), progress=False)
    stem = export.export(str(workdir), "ncsnpp_smoke", str(workdir.parent / "priors"))
    return config, graphdef, state, stem


@slow
def test_ncsnpp_trains_only_its_parameters(ncsnpp_prior):
    config, _, state, _ = ncsnpp_prior
    assert int(state["step"]) == 6
    _, fresh = loop.create_train_state(config, loop.make_optimizer(config))
    for got, init in zip(jax.tree.leaves(state["buffers"]), jax.tree.leaves(fresh["buffers"])):
        np.testing.assert_array_equal(got, init)  # the Fourier frequencies and sigmas: fixed
    moved = [float(jnp.max(jnp.abs(a - b))) for a, b in
             zip(jax.tree.leaves(state["params"]), jax.tree.leaves(fresh["params"]))]
    assert max(moved) > 0


@slow
def test_ncsnpp_export_loads_through_the_sampling_cli_and_denoises(ncsnpp_prior):
    config, graphdef, state, stem = ncsnpp_prior
    meta = json.loads(open(stem + ".json").read())
    assert meta["architecture"] == "ncsnpp" and meta["parameterisation"] == {"kind": "ve_score"}
    assert meta["config"]["image_size"] == 32 and meta["sigma_max"] == config.train.sigma_max
    args = parse_args(["--config", "ct.py:smoke", f"--config.prior.path={stem}"])
    prior = load_prior(args.config.prior)
    assert prior.resolution == 32 and prior.metadata["architecture"] == "ncsnpp"
    clean, sigma = first_batch(config), 0.2
    noisy = clean + sigma * jax.random.normal(jax.random.key(0), clean.shape)
    x0_hat = jax.jit(lambda denoise, x: denoise(x, sigma))(prior.denoise_fn, noisy)
    assert x0_hat.shape == clean.shape and x0_hat.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(x0_hat)))
    # The EMA network of the run, buffers included, as the trainer's objective sees it:
    want = jax.jit(models.make_denoise(config, graphdef, state["buffers"]))(
        state["ema"], noisy, sigma)
    np.testing.assert_allclose(x0_hat, want, rtol=1e-5, atol=1e-5)
