"""The 2D prior of a run: the ``prior`` section as keyword arguments of
`iscs_jax.priors.sources.load_source`, its errors naming the config keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iscs_jax.priors import sources

from . import configs
from .errors import UserError, config_keys

#: The CT pipeline reconstructs grey-value slices.
CHANNELS = 1
CHECKPOINT_SUFFIXES = sources.CHECKPOINT_SUFFIXES
DEFAULT_MODEL_CONFIG = Path(configs.__file__).resolve().parent / "models" / "ncsnpp_256.py"
#: `sources` arguments -> ``prior`` keys.
PRIOR_KEYS = {name: f"prior.{name}" for name in ("kind", "dtype", "name", "path", "gaussian_std",
                                                 "orientation")}


def prior_source(prior_config) -> str:
    """What the run uses as its prior: ``prior.path`` when set, else ``prior.name``."""
    return str(prior_config.path or prior_config.name)


def load_prior(prior_config) -> Any:
    """The prior of ``prior_config``: ``path`` (a prior file or a score_sde ``.pth``), a
    shipped ``name``, or "gaussian"; its network computes in ``prior.dtype``."""
    with config_keys(**PRIOR_KEYS):
        return sources.load_source(
            prior_source(prior_config), kind=str(prior_config.kind),
            dtype=str(prior_config.dtype),
            model_config=str(prior_config.model_config or DEFAULT_MODEL_CONFIG),
            gaussian_mean=float(prior_config.gaussian_mean),
            gaussian_std=float(prior_config.gaussian_std),
            resolution=int(prior_config.resolution))


def prior_files(prior_config) -> list[Path]:
    """The files the run's prior was loaded from (`sources.source_files`)."""
    return sources.source_files(prior_source(prior_config))


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
    """Checks the prior's channels (and ``resolution``, the input's in-plane size when it is
    not resized); raises `UserError` naming both values and the fix."""
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
    """`sources.slice_size` (the prior's square in-plane size)."""
    with config_keys():
        return sources.slice_size(prior)


def plane_orientation(prior, prior_config) -> tuple[str, str, str] | None:
    """`sources.orientation_codes` of ``prior.orientation`` (else the prior's own)."""
    with config_keys(**PRIOR_KEYS):
        return sources.orientation_codes(prior, str(prior_config.get("orientation", "") or ""))
