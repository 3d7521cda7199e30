"""score_sde PyTorch checkpoints -> our NCSN++ parameters, score function and prior files.

A score_sde checkpoint is the dict ``{"model": state_dict, "ema": {"decay", "num_updates",
"shadow_params": [...]}, "optimizer": ..., "step": ...}``; names may carry the ``module.``
prefix of ``torch.nn.DataParallel``. The EMA is a plain list with one tensor per *trainable*
parameter in ``model.parameters()`` order, i.e. the ``state_dict`` order without the
``sigmas`` buffer and the Fourier frequencies ``all_modules.0.W`` (``requires_grad=False``),
which therefore always come from ``model``. PyTorch is imported only to read a file.

A checkpoint does not say how its training images were oriented, so a converted prior
records `DEFAULT_ORIENTATION` (the prior format's ``orientation``) unless told otherwise
(``orientation=``, the converter's ``--orientation``; at sampling time
``prior.orientation`` overrides it too).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Mapping

import numpy as np
from flax import nnx

from iscs_jax.convert import layout as layout_lib
from iscs_jax.models import ncsnpp
from iscs_jax.priors import format as prior_format

WEIGHTS = ("ema", "model")
#: Axis codes (NIfTI (i, j, k), `iscs_jax.orientation`) recorded for a converted prior:
#: DICOM's stored pixel order, anterior at the top of each image and the patient's right
#: on its left (LPS), in which CT slices exported from scanners (e.g. the AAPM challenge
#: data of the published score_sde CT priors) are usually stored; an assumption, which
#: ``orientation=`` replaces.
DEFAULT_ORIENTATION = "LPS"
_SHOWN = 12  # names listed in an error before "... and N more"


class ConversionError(ValueError):
    """A checkpoint or config that cannot be converted; the message lists what is wrong."""


def _listing(names: list[str]) -> str:
    more = f" ... and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def load_model_config(model_config) -> Any:
    """A model config from a ConfigDict / mapping, or a config file ``path[:arg]``."""
    if not isinstance(model_config, (str, os.PathLike)):
        return model_config
    path, _, arg = os.fspath(model_config).partition(":")
    if not os.path.isfile(path):
        raise ConversionError(f"Model config file {path!r} not found; pass e.g. "
                              "configs/models/ncsnpp_256.py.")
    spec = importlib.util.spec_from_file_location("_model_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConversionError(f"Model config file {path!r} defines no get_config(arg=None).")
    return module.get_config(arg or None)


def _plain(value):
    """ConfigDicts and mappings as plain dicts."""
    value = value.to_dict() if hasattr(value, "to_dict") else value
    return {k: _plain(v) for k, v in value.items()} if isinstance(value, Mapping) else value


def ncsnpp_config(model_config) -> tuple[ncsnpp.NCSNppConfig, dict]:
    """``(NCSNppConfig, intensity dict)`` of a model config (see configs/models/ncsnpp_256.py)."""
    config = _plain(load_model_config(model_config))
    if config.get("architecture", "ncsnpp") != "ncsnpp" or "model" not in config:
        raise ConversionError("The model config must have architecture='ncsnpp' and a 'model' "
                              "section (see configs/models/ncsnpp_256.py).")
    try:
        cfg = ncsnpp.NCSNppConfig.from_dict(config["model"])
    except (TypeError, ValueError) as err:
        raise ConversionError(f"Model config: {err}") from err
    intensity = config.get("intensity", {"kind": "hu_window", "hu_min": -1000.0,
                                         "hu_max": 1600.0})
    return cfg, dict(intensity)


def read_checkpoint(path: str) -> dict:
    """``torch.load`` of a score_sde ``.pth`` file on the CPU (tensors only, no code)."""
    if not os.path.isfile(path):
        raise ConversionError(f"Checkpoint {path!r} not found.")
    try:
        import torch
    except ImportError as err:
        raise ConversionError("Reading a PyTorch checkpoint needs PyTorch: "
                              "pip install 'iscs-jax[convert]'.") from err
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle and zip errors have many types
        raise ConversionError(f"Could not read {path!r} as a PyTorch checkpoint: {err}") from err


def _numpy(tensor) -> np.ndarray:
    if hasattr(tensor, "detach"):
        tensor = tensor.detach().cpu().float().numpy()
    return np.asarray(tensor, np.float32)


def _strip(state_dict: Mapping) -> dict[str, Any]:
    return {(k[len("module."):] if k.startswith("module.") else k): v
            for k, v in state_dict.items()}


def select_tensors(checkpoint: Mapping, table: dict, weights: str = "ema") -> dict[str, Any]:
    """torch name -> tensor, taking trainable tensors from the EMA list when ``weights="ema"``.

    ``checkpoint`` is a score_sde checkpoint dict or a bare ``state_dict``.
    """
    if weights not in WEIGHTS:
        raise ConversionError(f"weights={weights!r} is not one of {WEIGHTS}.")
    model = _strip(checkpoint["model"] if "model" in checkpoint else checkpoint)
    if weights == "model":
        return model
    if "ema" not in checkpoint:
        raise ConversionError("The checkpoint has no 'ema' entry (a bare state_dict?); convert "
                              "its raw weights with --weights model.")
    shadow = list(checkpoint["ema"]["shadow_params"])
    trainable = [name for name, entry in table.items() if entry.trainable]
    if len(shadow) != len(trainable):
        raise ConversionError(f"The EMA holds {len(shadow)} tensors but this model config has "
                              f"{len(trainable)} trainable parameters; the config does not "
                              "match the checkpoint (or use --weights model).")
    return {**model, **dict(zip(trainable, shadow))}  # sigmas, Fourier W: from model


def map_tensors(tensors: Mapping[str, Any], table: dict, abstract_state: dict) -> dict:
    """Our pure parameter dict from torch tensors; every mismatch in one `ConversionError`.

    Args:
      tensors: torch name -> tensor (or array).
      table: `layout.layout` of the model.
      abstract_state: ``nnx.to_pure_dict`` of the abstract model (shapes).
    """
    missing = [n for n in table if n not in tensors]
    unmapped = [n for n in tensors if n not in table]
    wrong = []
    for name, entry in table.items():
        if name in tensors:
            want = layout_lib.torch_shape(_at(abstract_state, entry.path).shape, entry.transform)
            got = tuple(np.shape(tensors[name]))
            wrong += [f"{name} {got} (expected {want})"] if got != want else []
    if missing or unmapped or wrong:
        parts = [f"{len(missing)} missing: {_listing(missing)}" if missing else "",
                 f"{len(unmapped)} unmapped: {_listing(unmapped)}" if unmapped else "",
                 f"{len(wrong)} with the wrong shape: {_listing(wrong)}" if wrong else ""]
        raise ConversionError("The checkpoint does not match the model config: "
                              + "; ".join(p for p in parts if p)
                              + ". Check --model-config against the checkpoint's training config.")
    params: dict = {}
    for name, entry in table.items():
        _put(params, entry.path, layout_lib.to_ours(_numpy(tensors[name]), entry.transform))
    return params


def _at(tree: dict, path: tuple):
    for key in path:
        tree = tree[key]
    return tree


def _put(tree: dict, path: tuple, value) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _abstract_model(cfg: ncsnpp.NCSNppConfig):
    return nnx.eval_shape(lambda: ncsnpp.NCSNpp(cfg, rngs=nnx.Rngs(0)))


def convert(checkpoint, model_config, weights: str = "ema"):
    """``(NCSNppConfig, intensity, params pure dict, checkpoint dict)`` (see `from_score_sde`)."""
    cfg, intensity = ncsnpp_config(model_config)
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = read_checkpoint(os.fspath(checkpoint))
    abstract = _abstract_model(cfg)
    table = layout_lib.layout(abstract)
    tensors = select_tensors(checkpoint, table, weights)
    params = map_tensors(tensors, table, nnx.to_pure_dict(nnx.state(abstract)))
    return cfg, intensity, params, checkpoint


def from_score_sde(checkpoint, model_config, weights: str = "ema"):
    """Converts a score_sde NCSN++ checkpoint.

    Args:
      checkpoint: the dict ``torch.load`` returns (tensors or numpy arrays), or a ``.pth`` path.
      model_config: a ConfigDict / dict like ``configs/models/ncsnpp_256.py`` builds, or the
        path of such a file (``path[:arg]``).
      weights: "ema" (default) or "model" (the raw trained weights).

    Returns:
      ``(score, params)``: ``score(x [N, H, W, C], sigma [N]) -> [N, H, W, C]``, the same as
      the PyTorch model called as ``model(x_nchw, sigma)`` (transposed to NHWC), pure and
      jit-able; ``params`` the pure parameter dict (what `to_prior` saves).

    Raises:
      ConversionError: unreadable checkpoint, or tensors missing, unmapped or mis-shaped
        (all listed).
    """
    cfg, _, params, _ = convert(checkpoint, model_config, weights)
    graphdef, state = nnx.split(_abstract_model(cfg))
    nnx.replace_by_pure_dict(state, params)
    return ncsnpp.make_score_fn(graphdef, state), params


def prior_meta(cfg: ncsnpp.NCSNppConfig, intensity: dict, name: str, provenance: dict,
               orientation: str = DEFAULT_ORIENTATION) -> prior_format.PriorMeta:
    """The prior metadata of a converted VE score model; ``orientation``: the axis codes of
    its training images (`DEFAULT_ORIENTATION` unless known)."""
    return prior_format.PriorMeta(
        name=name, architecture="ncsnpp", config=cfg.to_dict(),
        parameterisation={"kind": "ve_score"}, resolution=cfg.image_size,
        channels=cfg.num_channels, intensity=intensity, sigma_min=cfg.sigma_min,
        sigma_max=cfg.sigma_max, provenance=provenance, orientation=orientation)


def to_prior(checkpoint, model_config, out: str, weights: str = "ema",
             orientation: str = DEFAULT_ORIENTATION) -> str:
    """Converts a checkpoint and writes ``out.json`` + ``out.msgpack``; returns ``out``.

    ``orientation``: axis codes of the training images (e.g. ``"LAS"``), recorded in the
    prior (`DEFAULT_ORIENTATION` unless known)."""
    source = os.fspath(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else None
    cfg, intensity, params, ckpt = convert(checkpoint, model_config, weights)
    step = ckpt.get("step")
    provenance = {"source": "score_sde", "checkpoint": source, "weights": weights,
                  "step": None if step is None else int(step)}
    try:
        meta = prior_meta(cfg, intensity, os.path.basename(out), provenance, orientation)
    except prior_format.PriorFormatError as err:
        raise ConversionError(f"{err} (orientation={orientation!r})") from err
    return prior_format.write(out, meta, params)
