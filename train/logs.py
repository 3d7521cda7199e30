"""Training logs: ``metrics.jsonl``, TensorBoard events, held-out validation and sample images.

`RunLog` writes every logged record as one line of ``workdir/metrics.jsonl`` and as scalars of
TensorBoard event files in ``workdir/tensorboard/`` (``tensorboard --logdir W/tensorboard``);
only process 0 of a multi-host run writes (the others' `RunLog` is a no-op). On resume the
lines and events after the checkpoint's step are dropped (`trim_metrics`, tensorboardX's
``purge_step``), so a resumed run leaves one record per step.

TensorBoard files come from tensorboardX rather than CLU's ``metric_writers``: tensorboardX is
one small pure-Python package (numpy and protobuf) that writes event files itself, while CLU
writes them through TensorFlow (``tf.summary``), a multi-hundred-megabyte dependency that the
trainer needs for nothing else.

`make_validation` builds the held-out check run every ``train.eval_every`` steps on the
EMA parameters (the ones exported as the prior): on fixed validation planes ``[K, R, R]``
(`train.dataset.FolderSource.validation`), with noise drawn from fixed keys, the
training objective's weighted denoising loss (EDM's weighting for the U-Net) at each of ``train.val_sigmas``: a deterministic number per
sigma (``val/loss_sigma_<s>``) and their mean (``val/loss``). Every
``train.sample_every`` steps the first ``train.num_samples`` planes, noised at
``train.sample_sigma`` and denoised by the EMA model in one step, go to TensorBoard as
images (rows: clean, noisy, denoised): a cheap look at what the prior has learned, instead
of full reverse-diffusion samples.
"""

from __future__ import annotations

import json
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from iscs_jax import parallel

#: ``denoise(params, noisy [K, R, R], sigma [K]) -> x0_hat [K, R, R]``.
DenoiseWithParams = Callable[[object, jax.Array, jax.Array], jax.Array]


def trim_metrics(path: str, step: int) -> None:
    """Drops metric lines after ``step`` (logged after the checkpoint a run resumes from)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
    with open(path, "w") as f:
        f.writelines(lines)


def append_metrics(path: str, record: dict) -> None:
    """Appends one JSON line to ``path``."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


class RunLog:
    """``metrics.jsonl`` and TensorBoard events of one run, from step ``start`` on.

    Args:
      workdir: the run's folder.
      start: the step the run (re)starts from; later records of an earlier run are dropped.
      write: False on every process but 0: nothing is written.
    """

    def __init__(self, workdir: str, start: int, write: bool = True):
        self.write = write
        self.metrics_path = os.path.join(workdir, "metrics.jsonl")
        self._writer = None
        if write:
            from tensorboardX import SummaryWriter

            trim_metrics(self.metrics_path, start)
            self._writer = SummaryWriter(os.path.join(workdir, "tensorboard"),
                                         purge_step=start + 1, flush_secs=30)

    def scalars(self, step: int, record: dict) -> None:
        """One ``metrics.jsonl`` line ``{"step": step, **record}`` and its numbers as scalars
        (``train/<key>``, ``val/...`` keys as they are)."""
        if not self.write:
            return
        append_metrics(self.metrics_path, {"step": int(step), **record})
        for key, value in record.items():
            if key != "time":
                tag = key.replace("val_", "val/") if key.startswith("val_") else f"train/{key}"
                self._writer.add_scalar(tag, float(value), int(step))

    def images(self, step: int, tag: str, images: np.ndarray) -> None:
        """Grey images ``[N, H, W]`` in [0, 1] as one TensorBoard image grid per image."""
        if self.write:
            grid = np.clip(np.asarray(images, np.float32), 0.0, 1.0)[:, None]
            self._writer.add_images(tag, grid, int(step), dataformats="NCHW")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def validation_losses(denoise: DenoiseWithParams, params, planes: jax.Array, key: jax.Array,
                      sigmas: tuple[float, ...], weight: Callable) -> jax.Array:
    """Weighted denoising loss ``[len(sigmas)]`` on ``planes [K, R, R]``: the training
    objective's ``weight(sigma) * mean |D(x + sigma n, sigma) - x|^2``.

    The noise at sigma number ``i`` is ``normal(fold_in(key, i))``: the same every call.
    """
    losses = []
    for i, sigma in enumerate(sigmas):
        noise = jax.random.normal(jax.random.fold_in(key, i), planes.shape, planes.dtype)
        sigma_k = jnp.full((planes.shape[0],), sigma, planes.dtype)
        x0_hat = denoise(params, planes + sigma * noise, sigma_k)
        lam = weight(jnp.asarray(sigma, jnp.float32))
        losses.append(lam * jnp.mean((x0_hat.astype(jnp.float32) - planes) ** 2))
    return jnp.stack(losses)


def make_validation(denoise: DenoiseWithParams, planes: np.ndarray, mesh, *,
                    sigmas, weight: Callable, sample_sigma: float, num_samples: int,
                    seed: int = 0):
    """``(evaluate(params) -> {"val_loss", "val_loss_sigma_<s>"}, samples(params) -> [3N, R, R])``.

    Both are jitted once on replicated inputs, so every process of a multi-host run runs the
    same program on its copy of the EMA parameters.

    Args:
      denoise: the model's denoiser with explicit parameters.
      planes: fixed validation planes ``[K, R, R]`` in [0, 1].
      mesh: the training mesh (inputs are replicated on it).
      sigmas: noise levels of the loss; weight: its ``lambda(sigma)`` (the objective's:
        EDM's for the U-Net, ``1 / sigma^2`` for NCSN++'s VE score matching).
      sample_sigma, num_samples: noise level and count of the sample images.
      seed: key of the fixed noise.
    """
    rep = parallel.replicated(mesh)
    planes = np.asarray(planes, np.float32)
    placed = jax.make_array_from_callback(planes.shape, rep, lambda index: planes[index])
    sigmas = tuple(float(s) for s in sigmas)
    key = jax.random.key(seed)
    losses = jax.jit(lambda p, x: validation_losses(denoise, p, x, key, sigmas, weight),
                     out_shardings=rep)

    def denoised(p, x):
        x = x[:num_samples]
        noisy = x + sample_sigma * jax.random.normal(jax.random.fold_in(key, 10_000), x.shape)
        x0_hat = denoise(p, noisy, jnp.full((x.shape[0],), sample_sigma, x.dtype))
        return jnp.concatenate([x, noisy, x0_hat.astype(x.dtype)])

    sample_fn = jax.jit(denoised, out_shardings=rep)

    def evaluate(params) -> dict:
        values = [float(v) for v in np.asarray(losses(params, placed))]
        record = {f"val_loss_sigma_{s:g}": v for s, v in zip(sigmas, values)}
        return {"val_loss": float(np.mean(values)), **record}

    def samples(params) -> np.ndarray:
        return np.asarray(sample_fn(params, placed))

    return evaluate, samples
