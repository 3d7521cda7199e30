"""EDM denoising score matching: train state, train step, resumable loop.

The train state is a plain pytree ``{"step", "params", "opt_state", "ema",
"rng"}`` (params as pure dicts), so Orbax saves and restores it exactly. Every
step's randomness is ``fold_in(rng, step)`` and its batch is
``batch_at(slices, data_seed, step, batch_size)``, so a run killed at step k and
resumed from its checkpoint is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from iscs_jax import checkpoint, parallel, xla_options
from . import dataset, logs, models

log = logging.getLogger(__name__)


def model_config(config: ml_collections.ConfigDict):
    """The `UNetConfig` (or, with ``model.architecture="ncsnpp"``, the ``NCSNppConfig``) from
    ``config.model`` (`train.models.model_config`; extra keys such as sigma_data ignored)."""
    return models.model_config(config)


def make_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
    """Linear warm-up to ``train.learning_rate``, then cosine decay to ``train.num_steps``."""
    t = config.train
    return optax.warmup_cosine_decay_schedule(
        0.0, t.learning_rate, t.warmup_steps, max(t.num_steps, t.warmup_steps + 1),
        end_value=t.learning_rate * t.final_lr_fraction)


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """AdamW on `make_schedule` with global-norm clipping."""
    t = config.train
    return optax.chain(optax.clip_by_global_norm(t.grad_clip),
                       optax.adamw(make_schedule(config), weight_decay=t.weight_decay))


def create_train_state(config: ml_collections.ConfigDict, tx: optax.GradientTransformation):
    """Initial ``(graphdef, state)``; ``state`` is the checkpointed pytree.

    ``state["params"]`` holds the trainable `nnx.Param` values (float32 whatever
    ``train.dtype``); a network with other variables (NCSN++'s fixed `Buffer`s) also has
    ``state["buffers"]``, which are neither optimised nor averaged (`train.models.split`).
    """
    graphdef, params, buffers = models.split(models.build(config, config.train.seed))
    state = {
        "step": jnp.zeros((), jnp.int32),
        "params": params,
        "opt_state": tx.init(params),
        "ema": jax.tree.map(jnp.copy, params),
        "rng": jax.random.key_data(jax.random.key(config.train.seed + 1)),
    }
    if buffers:  # absent for the U-Net: its checkpoints keep their structure
        state["buffers"] = buffers
    return graphdef, state


def edm_loss(graphdef, params, batch: jax.Array, key: jax.Array, *, sigma_min: float,
             sigma_max: float, sigma_data: float, data_mean: float,
             chains: int = 1) -> jax.Array:
    """EDM-weighted denoising loss of a U-Net (`train.models.denoising_loss` with the EDM
    `train.models.Objective`), sigma log-uniform in [sigma_min, sigma_max].

    Args:
      batch: clean images ``[B, H, W]``.
      chains: the network runs on ``chains`` equal parts of the batch, as independent calls
        (the same maths: every layer acts per image), which XLA:CPU runs side by side
        together with their backward passes.
    Returns:
      scalar mean of lambda(sigma) |D(x + sigma n, sigma) - x|^2 per pixel.
    """
    return models.denoising_loss(graphdef, params, {}, batch, key,
                                 models.Objective("edm", sigma_data, data_mean),
                                 sigma_min=sigma_min, sigma_max=sigma_max, chains=chains)


def chains(config: ml_collections.ConfigDict) -> int:
    """``train.chains`` (1 for configs written before it existed)."""
    return int(config.train.get("chains", 1))


def check_batch(config: ml_collections.ConfigDict, num_devices: int) -> None:
    """Clear errors for a batch that the devices or ``train.chains`` cannot split evenly."""
    size, parts = config.train.batch_size, chains(config)
    if size % num_devices:
        raise ValueError(f"train.batch_size={size} must be a multiple of the {num_devices} "
                         "devices.")
    if parts < 1 or size % (num_devices * parts):
        raise ValueError(f"train.chains={parts} must be >= 1 and split each device's "
                         f"{size // num_devices} images evenly; set --config.train.chains=1.")


def make_train_step(graphdef, tx: optax.GradientTransformation,
                    config: ml_collections.ConfigDict) -> Callable:
    """``train_step(state, batch [B, H, W]) -> (state, metrics)``, pure (jit it).

    The objective is the architecture's (`train.models.objective`: EDM for the U-Net, VE
    denoising score matching for NCSN++); the network computes in ``train.dtype``.
    """
    loss_kw = dict(sigma_min=config.train.sigma_min, sigma_max=config.train.sigma_max,
                   chains=chains(config))
    objective = models.objective(config)
    ema_decay = config.train.ema_decay

    def train_step(state, batch):
        step = state["step"]
        key = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), step)
        buffers = state.get("buffers", {})
        loss, grads = jax.value_and_grad(lambda p: models.denoising_loss(
            graphdef, p, buffers, batch, key, objective, **loss_kw))(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        decay = jnp.minimum(ema_decay, (1.0 + step) / (10.0 + step))
        ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, state["ema"], params)
        new = dict(state, step=step + 1, params=params, opt_state=opt_state, ema=ema)
        return new, {"loss": loss, "grad_norm": optax.tree.norm(grads)}

    return train_step


def get_batch(slices: np.ndarray, config: ml_collections.ConfigDict, index: int) -> np.ndarray:
    """Batch number ``index`` ``[B, H, W]``, a pure function of (data seed, index)."""
    from iscs_jax.data.batches import batch_at
    return np.asarray(batch_at(slices, config.data.seed, index, config.train.batch_size,
                               flips=config.data.flips))


def place_state(state, mesh):
    """Replicates every array of the train state on the mesh."""
    return jax.device_put(state, parallel.replicated(mesh))


def compile_train_step(graphdef, tx, config, mesh):
    """The jitted train step: state replicated, batch sharded on its leading axis, compiled
    with `iscs_jax.xla_options` for the network's widest convolution."""
    step_fn = make_train_step(graphdef, tx, config)
    rep = parallel.replicated(mesh)
    widest = models.widest_channels(config)
    return xla_options.jit(step_fn, channels=widest, num_devices=mesh.size, donate_argnums=0,
                           in_shardings=(rep, parallel.leading_axis_sharding(mesh)),
                           out_shardings=(rep, rep))


def init_or_restore(config, workdir: str, tx, mesh):
    """``(graphdef, state, manager)``: fresh state, or the newest readable checkpoint.

    Step directories that cannot be read, and those a killed save left half-written, are
    moved into ``checkpoints/damaged/`` (`iscs_jax.checkpoint.restore_or_set_aside`), each
    named in a printed line, and the run resumes from the newest readable step.
    """
    graphdef, state = create_train_state(config, tx)
    state = place_state(state, mesh)
    directory = os.path.join(workdir, "checkpoints")
    moved = checkpoint.set_aside_partial(directory) if jax.process_index() == 0 else []
    manager = checkpoint.make_manager(directory, config.checkpoint.every,
                                      config.checkpoint.keep)
    restored, step, unreadable = checkpoint.restore_or_set_aside(manager, state)
    for record in moved + unreadable:
        print(f"Set aside {record.describe()}", flush=True)
    if restored is not None:
        print(f"Resumed from checkpoint step {step} in {workdir}", flush=True)
        state = restored
    return graphdef, state, manager


def record_config(config: ml_collections.ConfigDict, workdir: str, write: bool = True) -> None:
    """Writes ``workdir/config.json`` (when ``write``: process 0), or checks a resumed run
    keeps its model and data.

    Raises:
      checkpoint.CheckpointError: the workdir holds a run with another ``model``/``data``
        section (its checkpoints would not fit, and an export would describe the wrong model).
    """
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        new = json.loads(config.to_json())
        changed = [k for k in ("model", "data") if saved.get(k) != new.get(k)]
        if changed:
            raise checkpoint.CheckpointError(
                f"{workdir} holds a run whose {' and '.join(changed)} config differs from this "
                f"one (see {path}). Use a new --workdir, or the same config to resume.")
    if write:
        with open(path, "w") as f:
            f.write(config.to_json(indent=2))


trim_metrics, append_metrics = logs.trim_metrics, logs.append_metrics


def train(config: ml_collections.ConfigDict, workdir: str, slices: np.ndarray | None = None,
          num_steps: int | None = None, progress: bool = True):
    """Trains (or resumes) until ``num_steps`` (default ``config.train.num_steps``).

    Args:
      config: the training config (see ``configs/train_phantom.py``, ``train_folder.py``).
      workdir: output folder: ``checkpoints/``, ``metrics.jsonl``, ``tensorboard/``,
        ``config.json`` and, for a folder source, ``split.json`` (process 0 writes them).
      slices: training images ``[N, H, W]``; default ``config.data``
        (`train.dataset.training_data`).
      num_steps: stop after this many steps in total (for tests / interruption).
      progress: show a tqdm progress bar (process 0).

    Returns:
      ``(graphdef, state)`` after the last step.
    """
    mesh = parallel.make_mesh(config.parallel.num_devices, "batch")
    check_batch(config, mesh.size)  # before anything is written
    write = jax.process_index() == 0
    batches, val_planes = dataset.training_data(config, workdir, mesh, slices, write)
    record_config(config, workdir, write)
    num_steps = config.train.num_steps if num_steps is None else num_steps
    tx = make_optimizer(config)
    graphdef, state, manager = init_or_restore(config, workdir, tx, mesh)
    step_fn = compile_train_step(graphdef, tx, config, mesh)
    validation = None
    if val_planes is not None and int(config.train.get("eval_every", 0)) > 0:
        t = config.train
        validation = logs.make_validation(
            models.make_denoise(config, graphdef, state.get("buffers")), val_planes, mesh,
            sigmas=t.get("val_sigmas", (0.1, 0.5, 2.0)), weight=models.objective(config).weight,
            sample_sigma=t.get("sample_sigma", 0.5), num_samples=t.get("num_samples", 4))
    state = _run(state, step_fn, manager, batches, validation, config, workdir, num_steps,
                 progress)
    manager.close()
    return graphdef, state


def _run(state, step_fn, manager, batches, validation, config, workdir, num_steps, progress):
    """The loop body: step, log every ``train.log_every``, validate every
    ``train.eval_every``, sample images every ``train.sample_every``, checkpoint when due."""
    from tqdm import tqdm
    start = int(state["step"])
    log = logs.RunLog(workdir, start, write=jax.process_index() == 0)
    t = config.train
    eval_every, sample_every = int(t.get("eval_every", 0)), int(t.get("sample_every", 0))
    bar = tqdm(range(start, num_steps), initial=start, total=num_steps,
               disable=not (progress and log.write), mininterval=5.0)
    t0, n0, postfix = time.perf_counter(), start, {}
    for step, batch in zip(bar, batches(start, num_steps)):
        state, metrics = step_fn(state, batch)
        done, record = step + 1, {}
        if done % t.log_every == 0 or done == num_steps:
            loss = float(metrics["loss"])
            rate = (done - n0) / (time.perf_counter() - t0)
            t0, n0 = time.perf_counter(), done
            record.update(loss=loss, grad_norm=float(metrics["grad_norm"]),
                          lr=float(make_schedule(config)(done)), steps_per_s=rate)
            postfix.update(loss=f"{loss:.4f}", steps_s=f"{rate:.2f}")
        if validation and eval_every and (done % eval_every == 0 or done == num_steps):
            record.update(validation[0](state["ema"]))
            postfix["val"] = f"{record['val_loss']:.4f}"
        if validation and sample_every and (done % sample_every == 0 or done == num_steps):
            log.images(done, "samples/clean_noisy_denoised", validation[1](state["ema"]))
        if record:
            log.scalars(done, {**record, "time": time.time()})
            bar.set_postfix(postfix)
        if done % config.checkpoint.every == 0 or done == num_steps:
            checkpoint.save(manager, done, state, force=True)
    log.close()
    return state
