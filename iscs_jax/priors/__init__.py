"""Shipped pretrained priors: ``load("phantom64")`` returns a ready `DenoiseFn`.

A prior is two files in ``assets/`` (or any folder): ``NAME.msgpack`` (the EMA
parameters of the U-Net, a flax msgpack of a pure dict) and ``NAME.json``
(model config, preconditioning constants, sigma range, resolution, training
provenance). ``train/export.py`` writes them.
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

from flax import nnx, serialization

from iscs_jax.models import UNet, UNetConfig, make_denoise_fn
from iscs_jax.sde import DenoiseFn

ASSETS_DIR = os.path.join(os.path.dirname(__file__), "assets")


class Prior(NamedTuple):
    """A loaded prior.

    Attributes:
      denoise_fn: ``DenoiseFn(x [n, H, W], sigma) -> x0_hat [n, H, W]`` (pure, jit-able).
      resolution: H = W the model was trained at.
      channels: image channels (1).
      sigma_min, sigma_max: the noise range it was trained on.
      metadata: the full JSON metadata (config, steps, final loss, command).
    """

    denoise_fn: DenoiseFn
    resolution: int
    channels: int
    sigma_min: float
    sigma_max: float
    metadata: dict[str, Any]


def available() -> list[str]:
    """Names of the priors shipped in ``iscs_jax/priors/assets``."""
    if not os.path.isdir(ASSETS_DIR):
        return []
    return sorted(f[:-5] for f in os.listdir(ASSETS_DIR)
                  if f.endswith(".json") and os.path.exists(os.path.join(ASSETS_DIR, f[:-5] + ".msgpack")))


def _resolve(name_or_path: str) -> str:
    """Path stem ``.../NAME`` of a shipped name, a ``.json``/``.msgpack`` path, or a stem."""
    stem = name_or_path
    for ext in (".json", ".msgpack"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
    if os.path.exists(stem + ".json") and os.path.exists(stem + ".msgpack"):
        return stem
    shipped = os.path.join(ASSETS_DIR, name_or_path)
    if os.path.exists(shipped + ".json") and os.path.exists(shipped + ".msgpack"):
        return shipped
    raise ValueError(f"Unknown prior {name_or_path!r}: not a shipped name (shipped: "
                     f"{available()}) nor a path to NAME.json + NAME.msgpack.")


def load(name_or_path: str) -> Prior:
    """Loads a prior by shipped name (e.g. ``"phantom64"``) or by file path stem.

    Raises:
      ValueError: unknown name, or files that do not match the model config.
    """
    stem = _resolve(name_or_path)
    with open(stem + ".json") as f:
        meta = json.load(f)
    cfg = UNetConfig.from_dict(meta["model"])
    abstract = nnx.eval_shape(lambda: UNet(cfg, meta["resolution"], rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(abstract)
    with open(stem + ".msgpack", "rb") as f:
        params = serialization.msgpack_restore(f.read())
    try:
        nnx.replace_by_pure_dict(state, params)
    except (KeyError, ValueError) as err:
        raise ValueError(f"Parameters in {stem}.msgpack do not match the model config in "
                         f"{stem}.json: {err}") from err
    denoise = make_denoise_fn(graphdef, state, meta["sigma_data"], meta["data_mean"])
    return Prior(denoise, meta["resolution"], cfg.channels, meta["sigma_min"],
                 meta["sigma_max"], meta)
