"""Trainer: loss decreases, exact resume, corrupted checkpoints, smoke run + export + load."""

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.train_phantom import get_config
from iscs_jax import checkpoint, parallel, priors
from train import export, loop
from device_checks import run_python


def tiny_config(num_steps=6):
    config = get_config("smoke")
    config.data.resolution = 16
    config.model.update(base_width=4, channel_mults=(1, 2), attention_resolutions=(8,),
                        norm_groups=2, embedding_dim=8)
    config.train.update(batch_size=4, num_steps=num_steps, warmup_steps=1, log_every=1,
                        learning_rate=1e-2)
    config.checkpoint.update(every=3, keep=3)
    return config


def tiny_slices(n=12, size=16):
    """Piecewise-constant discs ``[n, size, size]`` (fixed seed)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    r = rng.uniform(0.15, 0.4, n)[:, None, None]
    return ((xx**2 + yy**2) < r**2).astype(np.float32) * rng.uniform(0.3, 1, (n, 1, 1))


@pytest.mark.slow  # ~25 s
def test_chains_split_the_batch_without_changing_the_step():
    """train.chains runs the network on parts of the batch: same loss and gradients as one call
    (every layer acts per image), up to float reassociation of the gradient sums."""
    config = tiny_config()
    tx = loop.make_optimizer(config)
    graphdef, state = loop.create_train_state(config, tx)
    batch = jnp.asarray(tiny_slices()[:4])
    kw = dict(sigma_min=0.05, sigma_max=2.0, sigma_data=config.model.sigma_data,
              data_mean=config.model.data_mean)
    grads = {c: jax.jit(jax.value_and_grad(lambda p, c=c: loop.edm_loss(
        graphdef, p, batch, jax.random.key(3), chains=c, **kw)))(state["params"])
        for c in (1, 2, 4)}
    for c in (2, 4):
        np.testing.assert_allclose(grads[c][0], grads[1][0], rtol=1e-6)
        for got, want in zip(jax.tree.leaves(grads[c][1]), jax.tree.leaves(grads[1][1])):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_chains_that_do_not_split_the_batch_are_refused_before_writing(tmp_path):
    config = tiny_config()
    config.train.chains = 3
    with pytest.raises(ValueError, match="train.chains=3"):
        loop.train(config, str(tmp_path / "run"), tiny_slices(), progress=False)
    assert not (tmp_path / "run").exists()


def test_training_on_a_fixed_batch_reduces_the_loss():
    config = tiny_config()
    tx = loop.make_optimizer(config)
    graphdef, state = loop.create_train_state(config, tx)
    step = jax.jit(loop.make_train_step(graphdef, tx, config))
    batch = jnp.asarray(tiny_slices()[:4])
    kw = dict(sigma_min=0.05, sigma_max=2.0, sigma_data=config.model.sigma_data,
              data_mean=config.model.data_mean)
    keys = jax.random.split(jax.random.key(0), 8)
    loss = jax.jit(lambda p: jnp.mean(jax.vmap(
        lambda k: loop.edm_loss(graphdef, p, batch, k, **kw))(keys)))
    before = float(loss(state["params"]))
    for _ in range(8):
        state, metrics = step(state, batch)
    assert np.isfinite(float(metrics["loss"]))
    assert float(loss(state["params"])) < 0.9 * before


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Same tiny run: 6 steps straight, and 3 steps + a fresh process-like resume to 6."""
    config, slices = tiny_config(), tiny_slices()
    straight, resumed = tmp_path_factory.mktemp("straight"), tmp_path_factory.mktemp("resumed")
    _, s_straight = loop.train(config, str(straight), slices, progress=False)
    loop.train(config, str(resumed), slices, num_steps=3, progress=False)
    _, s_resumed = loop.train(config, str(resumed), slices, progress=False)
    return config, s_straight, s_resumed, resumed


def test_kill_and_resume_is_bit_identical(runs):
    _, a, b, _ = runs
    assert int(a["step"]) == int(b["step"]) == 6
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _manager_and_target(config, workdir):
    tx = loop.make_optimizer(config)
    _, target = loop.create_train_state(config, tx)
    target = loop.place_state(target, parallel.make_mesh(1, "batch"))
    manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"), 3, 3)
    return manager, target


def test_corrupted_latest_checkpoint_falls_back_then_errors_clearly(runs):
    config, _, _, workdir = runs
    ckpt = workdir / "checkpoints"
    assert sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit()) == [3, 6]
    for path in (ckpt / "6").rglob("*"):
        if path.is_file():
            path.write_bytes(b"")  # truncate every file of the newest step
    manager, target = _manager_and_target(config, str(workdir))
    state, step = checkpoint.restore_latest(manager, target)
    assert step == 3 and int(state["step"]) == 3
    for path in (ckpt / "3").rglob("*"):
        if path.is_file():
            path.write_bytes(b"")
    with pytest.raises(checkpoint.CheckpointError, match="could be restored"):
        checkpoint.restore_latest(manager, target)


def test_smoke_config_trains_end_to_end_then_exports_and_loads(tmp_path):
    config = get_config("smoke")
    config.train.num_steps = 20  # still saves at 10 and 20
    workdir = tmp_path / "work"
    loop.train(config, str(workdir), progress=False)
    steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [10, 20]
    assert len((workdir / "metrics.jsonl").read_text().splitlines()) == 4
    stem = export.export(str(workdir), "smoke", str(tmp_path / "assets"), command="test")
    prior = priors.load(stem)
    meta = prior.metadata
    assert prior.resolution == 32 and meta["provenance"]["train_steps"] == 20
    assert (meta["architecture"], meta["parameterisation"]["kind"]) == ("unet", "edm")
    assert meta["parameterisation"]["sigma_data"] == config.model.sigma_data
    x = jnp.full((2, 32, 32), 0.3)
    assert prior.denoise_fn(x, 0.5).shape == (2, 32, 32)
    with pytest.raises(ValueError, match="shipped"):
        priors.load("no_such_prior")


def test_resume_refuses_another_model_config_and_trims_metrics(tmp_path):
    config = tiny_config()
    loop.record_config(config, str(tmp_path))
    loop.record_config(config, str(tmp_path))  # same config: fine (a resume)
    changed = tiny_config()
    changed.model.base_width = 8
    with pytest.raises(checkpoint.CheckpointError, match="model config differs"):
        loop.record_config(changed, str(tmp_path))
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(f'{{"step": {s}, "loss": 1.0}}\n' for s in range(1, 7)))
    loop.trim_metrics(str(path), 3)  # a run killed at step 6 resumes from the step-3 checkpoint
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3]


TWO_DEVICE_SCRIPT = """
import sys
import jax, numpy as np
sys.path.insert(0, {tests!r})
from test_train import tiny_config, tiny_slices
from train import loop
assert jax.device_count() == 2
_, state = loop.train(tiny_config(), {workdir!r}, tiny_slices(), progress=False)
np.savez({out!r}, *[np.asarray(x) for x in jax.tree.leaves(state["params"])])
"""


@pytest.mark.slow  # the 2-device subprocess: ~20 s
def test_data_parallel_training_on_two_devices_matches_one(runs, tmp_path):
    """The batch sharded over 2 (fake CPU) devices gives the 1-device parameters."""
    _, straight, _, _ = runs
    out = tmp_path / "params.npz"
    script = TWO_DEVICE_SCRIPT.format(tests=str(Path(__file__).parent),
                                      workdir=str(tmp_path / "work"), out=str(out))
    done = run_python("-c", script, devices=2)
    assert done.returncode == 0, done.stderr[-3000:]
    sharded = np.load(out)
    leaves = jax.tree.leaves(straight["params"])
    assert len(sharded.files) == len(leaves)
    # Equal up to the order of the batch-mean reductions. Adam normalises each coordinate's step,
    # so rounding in a near-zero gradient can move that coordinate by up to ~lr (1e-2) per step:
    # compare per tensor in norm, plus a loose elementwise bound.
    for i, leaf in enumerate(leaves):
        a, b = sharded[f"arr_{i}"], np.asarray(leaf)
        assert np.linalg.norm(a - b) <= 1e-3 * np.linalg.norm(b) + 1e-4
        np.testing.assert_allclose(a, b, atol=1e-4)
