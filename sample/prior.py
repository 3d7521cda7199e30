"""The 2D prior of a run: a shipped/trained/converted one (`iscs_jax.priors.load`), a score_sde
``.pth`` converted on load, or a closed-form Gaussian.

``prior.name="gaussian"`` needs no weights: the MMSE denoiser of a per-pixel
prior N(mean, std^2), x0_hat = (std^2 x + sigma^2 mean) / (std^2 + sigma^2).
It carries no image structure, so reconstructions with it are a regularised
least-squares baseline; tests use it to run the pipeline without the shipped
weights.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from iscs_jax.denoiser import GaussianDenoiser
from iscs_jax.models.precision import DTYPES

from . import configs
from .errors import UserError

#: The CT pipeline reconstructs grey-value slices.
CHANNELS = 1


@dataclasses.dataclass(frozen=True)
class GaussianPrior:
    """Same attributes as a loaded prior: ``denoise_fn``, ``resolution``, ``channels``, ..."""
    denoise_fn: Callable
    resolution: int
    channels: int = 1
    sigma_min: float = 0.01
    sigma_max: float = 50.0
    metadata: dict = dataclasses.field(default_factory=dict)


def gaussian_denoiser(mean: float, std: float) -> Callable:
    """`iscs_jax.denoiser.GaussianDenoiser` of ``prior.gaussian_mean`` / ``gaussian_std``
    (equal settings give equal denoisers, so compiled samplers are reused)."""
    try:
        return GaussianDenoiser(float(mean), float(std))
    except ValueError:
        raise UserError(f"prior.gaussian_std must be > 0, got {std}.") from None


#: prior.kind -> the parameterisation it requires (None: whatever the file records).
PRIOR_KINDS = {"auto": None, "edm": "edm", "score_sde": "ve_score"}
CHECKPOINT_SUFFIXES = (".pth", ".pt")
DEFAULT_MODEL_CONFIG = Path(configs.__file__).resolve().parent / "models" / "ncsnpp_256.py"


def prior_source(prior_config) -> str:
    """What the run uses as its prior: ``prior.path`` when set, else ``prior.name``."""
    return str(prior_config.path or prior_config.name)


def _convert_checkpoint(path: str, model_config: str, dtype: str):
    """A `Prior` from a score_sde ``.pth`` file, converted in memory."""
    from iscs_jax import priors
    from iscs_jax.convert import score_sde

    model_config = model_config or str(DEFAULT_MODEL_CONFIG)
    try:
        cfg, intensity, params, _ = score_sde.convert(path, model_config)
    except score_sde.ConversionError as err:
        raise UserError(f"Could not convert the score_sde checkpoint {path!r}: {err} Convert "
                        "it once with python -m iscs_jax.convert and pass the result as "
                        "--config.prior.path.") from err
    meta = score_sde.prior_meta(cfg, intensity, Path(path).stem,
                                {"source": "score_sde", "checkpoint": path, "weights": "ema"})
    return priors.from_meta(meta, params, path, dtype=dtype)


def _load_file_prior(source: str, kind: str, dtype: str):
    from iscs_jax import priors

    try:
        prior = priors.load(source, dtype=dtype)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise UserError(f"Could not load the prior {source!r}: {err} Use a shipped "
                        "prior name, the path stem of NAME.json + NAME.msgpack written by "
                        "train/export.py or python -m iscs_jax.convert, or "
                        "--config.prior.name=gaussian to run without a learned prior.") from err
    wanted, found = PRIOR_KINDS[kind], prior.metadata["parameterisation"]["kind"]
    if wanted is not None and found != wanted:
        raise UserError(f"prior.kind={kind!r} needs a {wanted!r} prior but {source!r} is "
                        f"{found!r}; set --config.prior.kind=auto or choose another prior.")
    return prior


def load_prior(prior_config) -> Any:
    """The prior of ``prior_config``: ``path`` (a prior file or a score_sde ``.pth``), a
    shipped ``name``, or "gaussian"; its network computes in ``prior.dtype`` (the closed-form
    Gaussian has none and ignores it)."""
    kind, source = str(prior_config.kind), prior_source(prior_config)
    if kind not in PRIOR_KINDS:
        raise UserError(f"prior.kind={kind!r} is not one of {sorted(PRIOR_KINDS)}.")
    dtype = str(prior_config.dtype)
    if dtype not in DTYPES:
        raise UserError(f"prior.dtype={dtype!r} is not one of {sorted(DTYPES)}: float32, or "
                        "bfloat16 for a network computing in bfloat16 on a GPU or TPU "
                        "(e.g. --config.prior.dtype=bfloat16).")
    if source == "gaussian":
        return GaussianPrior(
            gaussian_denoiser(float(prior_config.gaussian_mean), float(prior_config.gaussian_std)),
            resolution=int(prior_config.resolution),
            metadata={"name": "gaussian", "mean": prior_config.gaussian_mean,
                      "std": prior_config.gaussian_std})
    if source.endswith(CHECKPOINT_SUFFIXES):
        if kind != "score_sde":
            raise UserError(f"prior.path={source!r} is a PyTorch checkpoint; set "
                            "--config.prior.kind=score_sde to convert it on load (needs "
                            "PyTorch), or convert it once with python -m iscs_jax.convert.")
        return _convert_checkpoint(source, str(prior_config.model_config), dtype)
    return _load_file_prior(source, kind, dtype)


def intensity_note(prior, data_config) -> str | None:
    """A warning when HU input is windowed differently from the prior's training images."""
    window = prior.metadata.get("intensity", {})
    if data_config.path == "" or data_config.intensity != "hu" or window.get("kind") != "hu_window":
        return None
    ours = (float(data_config.hu_min), float(data_config.hu_max))
    theirs = (float(window["hu_min"]), float(window["hu_max"]))
    if ours == theirs:
        return None
    return (f"warning: the prior was trained on HU windowed to {list(theirs)} but data.hu_min/"
            f"hu_max window the input to {list(ours)}; set --config.data.hu_min={theirs[0]} "
            f"--config.data.hu_max={theirs[1]} unless this is intended.")


def check_prior(prior, num_channels: int = CHANNELS, resolution: int | None = None,
                name: str = "the prior") -> None:
    """Checks the prior's channels (and resolution, when the input cannot be resized).

    Args:
      prior: a loaded prior (``channels``, ``resolution`` attributes).
      num_channels: channels the task reconstructs (1 for CT).
      resolution: the in-plane size the data has when it is not resized, else None.
      name: how the message names the prior.

    Raises:
      UserError: on a mismatch, naming both values and the fix.
    """
    if int(prior.channels) != num_channels:
        raise UserError(f"Prior {name!r} models {prior.channels}-channel images but CT slices "
                        f"have {num_channels} channel(s); use a prior trained on single-channel "
                        "(grey-value) slices, e.g. --config.prior.name=phantom64.")
    size = prior.resolution
    size = size if isinstance(size, int) else tuple(size)
    if resolution is not None and size not in (resolution, (resolution, resolution)):
        raise UserError(f"Prior {name!r} works on {size} slices but the input slices are "
                        f"{resolution}x{resolution} and data.resize=False; set "
                        "--config.data.resize=True to resample in-plane to the prior's "
                        "resolution, or use a prior trained at the input resolution.")


def slice_size(prior) -> int:
    """The prior's square in-plane size as an int (``resolution`` may be ``R`` or ``(R, R)``)."""
    size = prior.resolution
    if isinstance(size, int):
        return size
    size = tuple(int(s) for s in size)
    if len(size) != 2 or size[0] != size[1]:
        raise UserError(f"Prior resolution {size} is not square; the CT pipeline needs "
                        "R x R slices.")
    return size[0]


def plane_orientation(prior, prior_config) -> tuple[str, str, str] | None:
    """The axis codes inputs are reoriented to: ``prior.orientation`` when set, else the
    prior's own (its file's ``orientation``); None when neither names one (a prior file
    from before the field, or the closed-form Gaussian): inputs are used as stored."""
    from iscs_jax import orientation

    codes = str(prior_config.get("orientation", "") or "") or \
        prior.metadata.get("orientation", None)
    if not codes:
        return None
    try:
        return orientation.normalize_codes(codes)
    except orientation.OrientationError as err:
        raise UserError(f"prior.orientation={codes!r}: {err} E.g. "
                        "--config.prior.orientation=LAS.") from err
