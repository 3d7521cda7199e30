"""Pretrained priors: ``load("phantom64")`` or ``load("priors/aapm256")`` gives a `DenoiseFn`.

A prior is two files, ``NAME.json`` + ``NAME.msgpack``, in the format owned by
`iscs_jax.priors.format` (written by ``train/export.py`` and by
``python -m iscs_jax.convert``). `load` builds the network its architecture
names (``unet``: the EDM U-Net of `iscs_jax.models.unet`; ``ncsnpp``: the
score_sde NCSN++ of `iscs_jax.models.ncsnpp`) and wraps it into a denoiser
according to its parameterisation (EDM preconditioning, or Tweedie's
x0_hat = x + sigma^2 score for a VE score model). ``load(name, dtype="bfloat16")`` builds
the network in bfloat16 and casts its weights once (`iscs_jax.models.precision`): the
denoiser still takes and returns float32 ``[n, H, W]``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, NamedTuple

from flax import nnx

from iscs_jax.models import UNet, UNetConfig, make_denoise_fn, ncsnpp, precision
from iscs_jax.priors import format
from iscs_jax.sde import DenoiseFn

ASSETS_DIR = os.path.join(os.path.dirname(__file__), "assets")


class Prior(NamedTuple):
    """A loaded prior.

    Attributes:
      denoise_fn: ``DenoiseFn(x [n, H, W], sigma) -> x0_hat [n, H, W]`` (pure, jit-able).
      resolution: H = W the model was trained at.
      channels: image channels (1).
      sigma_min, sigma_max: the noise range it was trained on.
      metadata: the JSON document of `iscs_jax.priors.format` (architecture, config,
        parameterisation, intensity convention, provenance).
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


def resolve(name_or_path: str) -> str:
    """Path stem ``.../NAME`` of a shipped name, a ``.json``/``.msgpack`` path, or a stem."""
    stem = os.fspath(name_or_path)
    for ext in (".json", ".msgpack"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
    if os.path.exists(stem + ".json") and os.path.exists(stem + ".msgpack"):
        return stem
    shipped = os.path.join(ASSETS_DIR, stem)
    if os.path.exists(shipped + ".json") and os.path.exists(shipped + ".msgpack"):
        return shipped
    raise ValueError(f"Unknown prior {name_or_path!r}: not a shipped name (shipped: "
                     f"{available()}) nor a path to NAME.json + NAME.msgpack.")


def _restore(abstract: nnx.Module, params: dict, stem: str):
    """``(graphdef, state)`` of ``abstract`` with ``params`` filled in."""
    graphdef, state = nnx.split(abstract)
    try:
        nnx.replace_by_pure_dict(state, params)
    except (KeyError, ValueError) as err:
        raise ValueError(f"Parameters in {stem}.msgpack do not match the model config in "
                         f"{stem}.json: {err}") from err
    return graphdef, state


def _check_parameterisation(meta: format.PriorMeta, kind: str, stem: str) -> None:
    if meta.parameterisation["kind"] != kind:
        raise ValueError(f"{stem}.json: a {meta.architecture!r} prior must have parameterisation "
                         f"{kind!r}, not {meta.parameterisation['kind']!r}.")


def _unet_denoiser(meta: format.PriorMeta, params: dict, stem: str, dtype) -> DenoiseFn:
    _check_parameterisation(meta, "edm", stem)
    cfg = UNetConfig.from_dict(meta.config)
    abstract = nnx.eval_shape(lambda: UNet(cfg, meta.resolution, dtype=dtype,
                                           rngs=nnx.Rngs(0)))
    graphdef, state = _restore(abstract, params, stem)
    p = meta.parameterisation
    return make_denoise_fn(graphdef, state, p["sigma_data"], p["data_mean"])


def _ncsnpp_denoiser(meta: format.PriorMeta, params: dict, stem: str, dtype) -> DenoiseFn:
    _check_parameterisation(meta, "ve_score", stem)
    cfg = ncsnpp.NCSNppConfig.from_dict(meta.config)
    abstract = nnx.eval_shape(lambda: ncsnpp.NCSNpp(cfg, dtype=dtype, rngs=nnx.Rngs(0)))
    return ncsnpp.make_denoise_fn(*_restore(abstract, params, stem))


#: architecture -> (meta, params, stem, dtype) -> DenoiseFn computing in dtype.
BUILDERS: dict[str, Callable[[format.PriorMeta, dict, str, Any], DenoiseFn]] = {
    "unet": _unet_denoiser, "ncsnpp": _ncsnpp_denoiser}


def from_meta(meta: format.PriorMeta, params: dict, stem: str = "<memory>", *,
              dtype="float32") -> Prior:
    """A `Prior` from metadata and parameters (e.g. a conversion not written to disk);
    ``dtype`` as for `load`."""
    dtype = precision.network_dtype(dtype)
    denoise = BUILDERS[meta.architecture](meta, params, stem, dtype)
    return Prior(denoise, meta.resolution, meta.channels, meta.sigma_min, meta.sigma_max,
                 meta.to_json())


def load(name_or_path: str, *, dtype="float32") -> Prior:
    """Loads a prior by shipped name (e.g. ``"phantom64"``) or by file path stem.

    Args:
      name_or_path: a shipped name or the stem of ``NAME.json`` + ``NAME.msgpack``.
      dtype: what the network computes in, a name of `iscs_jax.models.precision.DTYPES`
        (``"float32"``, or ``"bfloat16"`` for GPUs and TPUs) or the dtype; the weights are cast
        to it once, here, and the denoiser takes and returns float32 either way.

    Raises:
      ValueError: unknown name or dtype, unreadable files (`format.PriorFormatError`), or
        weights that do not match the config.
    """
    dtype = precision.network_dtype(dtype)
    stem = resolve(name_or_path)
    meta, params = format.read(stem)
    return from_meta(meta, params, stem, dtype=dtype)
