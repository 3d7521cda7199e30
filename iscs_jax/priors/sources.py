"""A prior from any source: a shipped name or prior file (`iscs_jax.priors.load`), a score_sde
``.pth`` converted on load, or the closed-form Gaussian.

``"gaussian"`` needs no weights: the MMSE denoiser of a per-pixel prior N(mean, std^2),
x0_hat = (std^2 x + sigma^2 mean) / (std^2 + sigma^2). It carries no image structure, so
reconstructions with it are a regularised least-squares baseline; tests use it to run the
pipeline without the shipped weights. Errors are ValueErrors naming the argument
(``kind=``, ``dtype=``, ``name=``, ``path=``, ``gaussian_std=``, ``orientation=``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from iscs_jax import orientation as orientation_lib
from iscs_jax.denoiser import GaussianDenoiser
from iscs_jax.models.precision import DTYPES

#: kind -> the parameterisation it requires (None: whatever the file records).
PRIOR_KINDS = {"auto": None, "edm": "edm", "score_sde": "ve_score"}
CHECKPOINT_SUFFIXES = (".pth", ".pt")


@dataclasses.dataclass(frozen=True)
class GaussianPrior:
    """Same attributes as a loaded `iscs_jax.priors.Prior`: ``denoise_fn``, ``resolution``,
    ``channels``, ``sigma_min``, ``sigma_max``, ``metadata``."""
    denoise_fn: Callable
    resolution: int
    channels: int = 1
    sigma_min: float = 0.01
    sigma_max: float = 50.0
    metadata: dict = dataclasses.field(default_factory=dict)


def gaussian_prior(mean: float, std: float, resolution: int) -> GaussianPrior:
    """The closed-form prior N(mean, std^2) per pixel at ``resolution`` x ``resolution``
    (`GaussianDenoiser`: equal settings give equal denoisers, so compiled samplers are reused).

    Raises:
      ValueError: ``std`` <= 0.
    """
    try:
        denoise = GaussianDenoiser(float(mean), float(std))
    except ValueError:
        raise ValueError(f"gaussian_std={std} must be > 0.") from None
    return GaussianPrior(denoise, resolution=int(resolution),
                         metadata={"name": "gaussian", "mean": mean, "std": std})


def _convert_checkpoint(path: str, model_config: str, dtype: str):
    """A `Prior` from a score_sde ``.pth`` file, converted in memory."""
    from iscs_jax import priors
    from iscs_jax.convert import score_sde

    try:
        cfg, intensity, params, _ = score_sde.convert(path, model_config)
    except score_sde.ConversionError as err:
        raise ValueError(f"Could not convert the score_sde checkpoint {path!r}: {err} Convert "
                         "it once with python -m iscs_jax.convert and pass the result as "
                         "path=.") from err
    meta = score_sde.prior_meta(cfg, intensity, Path(path).stem,
                                {"source": "score_sde", "checkpoint": path, "weights": "ema"})
    return priors.from_meta(meta, params, path, dtype=dtype)


def _load_file_prior(source: str, kind: str, dtype: str):
    from iscs_jax import priors

    try:
        prior = priors.load(source, dtype=dtype)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise ValueError(f"Could not load the prior {source!r}: {err} Use a shipped "
                         "prior name, the path stem of NAME.json + NAME.msgpack written by "
                         "train/export.py or python -m iscs_jax.convert, or "
                         "name=gaussian to run without a learned prior.") from err
    wanted, found = PRIOR_KINDS[kind], prior.metadata["parameterisation"]["kind"]
    if wanted is not None and found != wanted:
        raise ValueError(f"kind={kind!r} needs a {wanted!r} prior but {source!r} is "
                         f"{found!r}; set kind=auto or choose another prior.")
    return prior


def load_source(source: str, *, kind: str = "auto", dtype: str = "float32",
                model_config: str = "", gaussian_mean: float = 0.5, gaussian_std: float = 0.25,
                resolution: int = 64):
    """The prior of ``source``.

    Args:
      source: ``"gaussian"``, a shipped prior name or ``NAME.json`` + ``NAME.msgpack`` path
        stem, or a score_sde ``.pth`` / ``.pt`` file (converted on load; needs PyTorch).
      kind: one of `PRIOR_KINDS`: the parameterisation the prior must have (``"score_sde"``
        also allows a ``.pth`` source).
      dtype: what the network computes in (`DTYPES`; the Gaussian ignores it).
      model_config: the score_sde model config file of a ``.pth`` source.
      gaussian_mean, gaussian_std, resolution: the Gaussian's settings.

    Returns:
      a `iscs_jax.priors.Prior` or a `GaussianPrior`.

    Raises:
      ValueError: naming the argument and the fix.
    """
    if kind not in PRIOR_KINDS:
        raise ValueError(f"kind={kind!r} is not one of {sorted(PRIOR_KINDS)}.")
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is not one of {sorted(DTYPES)}: float32, or "
                         "bfloat16 for a network computing in bfloat16 on a GPU or TPU "
                         "(e.g. dtype=bfloat16).")
    if source == "gaussian":
        return gaussian_prior(gaussian_mean, gaussian_std, resolution)
    if source.endswith(CHECKPOINT_SUFFIXES):
        if kind != "score_sde":
            raise ValueError(f"path={source!r} is a PyTorch checkpoint; set "
                             "kind=score_sde to convert it on load (needs "
                             "PyTorch), or convert it once with python -m iscs_jax.convert.")
        return _convert_checkpoint(source, model_config, dtype)
    return _load_file_prior(source, kind, dtype)


def source_files(source: str) -> list[Path]:
    """The files a prior of ``source`` (as for `load_source`) is read from: ``NAME.json`` +
    ``NAME.msgpack``, or the ``.pth`` itself; none for ``"gaussian"``."""
    from iscs_jax import priors

    if source == "gaussian":
        return []
    if source.endswith(CHECKPOINT_SUFFIXES):
        return [Path(source)]
    stem = priors.resolve(source)
    return [Path(stem + ".json"), Path(stem + ".msgpack")]


def slice_size(prior) -> int:
    """The prior's square in-plane size R (``resolution`` may be ``R`` or ``(R, R)``).

    Raises:
      ValueError: a resolution that is not square.
    """
    size = prior.resolution
    if isinstance(size, int):
        return size
    size = tuple(int(s) for s in size)
    if len(size) != 2 or size[0] != size[1]:
        raise ValueError(f"Prior resolution {size} is not square; the CT pipeline needs "
                         "R x R slices.")
    return size[0]


def orientation_codes(prior, orientation: str = "") -> tuple[str, str, str] | None:
    """The axis codes inputs are reoriented to.

    Args:
      prior: a loaded prior (its ``metadata["orientation"]``, when recorded).
      orientation: codes that override the prior's own (e.g. ``"LAS"``), or ``""``.

    Returns:
      ``orientation`` when set, else the prior's own; None when neither names one (a prior
      file from before the field, or the closed-form Gaussian): inputs are used as stored.

    Raises:
      ValueError: codes that are not three distinct axis letters.
    """
    codes = str(orientation or "") or prior.metadata.get("orientation", None)
    if not codes:
        return None
    try:
        return orientation_lib.normalize_codes(codes)
    except orientation_lib.OrientationError as err:
        raise ValueError(f"orientation={codes!r}: {err} E.g. orientation=LAS.") from err
