"""The 2D prior of a run: a shipped/trained one (`iscs_jax.priors.load`) or a closed-form Gaussian.

``prior.name="gaussian"`` needs no weights: the MMSE denoiser of a per-pixel
prior N(mean, std^2), x0_hat = (std^2 x + sigma^2 mean) / (std^2 + sigma^2).
It carries no image structure, so reconstructions with it are a regularised
least-squares baseline; tests use it to run the pipeline without the shipped
weights.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

from sample.errors import UserError

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


@functools.lru_cache(maxsize=None)
def gaussian_denoiser(mean: float, std: float) -> Callable:
    """``denoise(x [n, H, W], sigma) -> x0_hat [n, H, W]`` for a N(mean, std^2) pixel prior.

    Cached, so equal settings give the same function and compiled samplers are reused.
    """
    if std <= 0:
        raise UserError(f"prior.gaussian_std must be > 0, got {std}.")

    def denoise_fn(x, sigma):
        return (std**2 * x + sigma**2 * mean) / (std**2 + sigma**2)

    return denoise_fn


def load_prior(prior_config) -> Any:
    """The prior named by ``prior_config.name`` (a shipped name, a path, or "gaussian")."""
    if prior_config.name == "gaussian":
        return GaussianPrior(
            gaussian_denoiser(float(prior_config.gaussian_mean), float(prior_config.gaussian_std)),
            resolution=int(prior_config.resolution),
            metadata={"name": "gaussian", "mean": prior_config.gaussian_mean,
                      "std": prior_config.gaussian_std})
    from iscs_jax import priors

    try:
        return priors.load(prior_config.name)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise UserError(f"Could not load the prior {prior_config.name!r}: {err} Use a shipped "
                        "prior name, the path stem of NAME.json + NAME.msgpack written by "
                        "train/export.py, or --config.prior.name=gaussian to run without a "
                        "learned prior.") from err


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
