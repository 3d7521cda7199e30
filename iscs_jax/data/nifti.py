"""NIfTI volumes as 2D training slices: list, read, window, slice, resize.

The pipeline is ``load_nifti_slices(folder, resolution=64, axis=2, window="ct")``:
every ``.nii`` / ``.nii.gz`` file of ``folder`` (sorted by name) is read with
nibabel, mapped to [0, 1] by an intensity window, cut into 2D slices along
``axis`` of the stored array (nibabel arrays are usually ``[X, Y, Z]``, so
``axis=2`` gives axial slices of a typical CT) and resized in-plane to the model
resolution. Random flips belong to the batches (`iscs_jax.data.batches`).
"""

from __future__ import annotations

import pathlib
from typing import Callable, Sequence

import chex
import jax
import jax.numpy as jnp
import nibabel as nib
import numpy as np

#: Default CT window in Hounsfield units, mapped to [0, 1].
CT_HU_RANGE = (-1000.0, 1600.0)
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def list_volumes(folder) -> list[pathlib.Path]:
    """Sorted ``.nii`` / ``.nii.gz`` files directly inside ``folder``.

    Raises:
      ValueError: if ``folder`` does not exist, is not a directory or holds no NIfTI file.
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise ValueError(f"NIfTI folder {str(folder)!r} does not exist or is not a directory; "
                         "pass the folder that holds the .nii / .nii.gz volumes.")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.name.lower().endswith(NIFTI_SUFFIXES))
    if not files:
        raise ValueError(f"No .nii or .nii.gz files in {str(folder)!r}; add volumes there "
                         "or point the data folder elsewhere.")
    return files


def read_volume(path) -> np.ndarray:
    """Read one NIfTI file as float32 ``[X, Y, Z]`` (scale/intercept applied).

    Trailing singleton dimensions (e.g. a 4D file with one frame) are dropped.

    Raises:
      ValueError: if the data is not 3D after that.
    """
    data = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32))
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"{path}: expected a 3D volume, got shape {data.shape}.")
    return data


def ct_window(volume: np.ndarray, hu_range: Sequence[float] = CT_HU_RANGE) -> np.ndarray:
    """Map HU ``[low, high]`` linearly to [0, 1], clipping outside. Same shape, float32."""
    low, high = (float(v) for v in hu_range)
    if not high > low:
        raise ValueError(f"hu_range must be (low, high) with high > low, got {hu_range}.")
    return np.clip((volume - low) / (high - low), 0.0, 1.0).astype(np.float32)


def minmax_window(volume: np.ndarray, hu_range=None) -> np.ndarray:
    """Per-volume min-max scaling to [0, 1] (MRI); a constant volume maps to 0."""
    del hu_range  # unused: the window comes from the volume itself
    low, high = float(np.min(volume)), float(np.max(volume))
    scale = high - low if high > low else 1.0
    return ((volume - low) / scale).astype(np.float32)


WINDOWS: dict[str, Callable[..., np.ndarray]] = {"ct": ct_window, "minmax": minmax_window}


def apply_window(volume: np.ndarray, window: str = "ct",
                 hu_range: Sequence[float] = CT_HU_RANGE) -> np.ndarray:
    """Intensity window by name (`WINDOWS`): ``"ct"`` (uses ``hu_range``) or ``"minmax"``."""
    if window not in WINDOWS:
        raise ValueError(f"Unknown window {window!r}; valid windows: {sorted(WINDOWS)}.")
    return WINDOWS[window](volume, hu_range)


def _resolution(resolution) -> tuple[int, int]:
    size = (resolution, resolution) if np.isscalar(resolution) else tuple(resolution)
    if len(size) != 2 or min(int(s) for s in size) < 1:
        raise ValueError(f"resolution must be an int or (H, W) of positive ints, got "
                         f"{resolution}.")
    return int(size[0]), int(size[1])


def resize_slices(slices: np.ndarray, resolution) -> np.ndarray:
    """Bilinear (antialiased when shrinking) in-plane resize with `jax.image.resize`.

    Args:
      slices: ``[N, h, w]``.
      resolution: int or ``(H, W)``.

    Returns:
      float32 numpy ``[N, H, W]``.
    """
    chex.assert_rank(slices, 3)
    height, width = _resolution(resolution)
    if slices.shape[1:] == (height, width):
        return np.asarray(slices, np.float32)
    out = jax.image.resize(jnp.asarray(slices, jnp.float32),
                           (slices.shape[0], height, width), method="linear")
    return np.asarray(out)


def volume_slices(volume: np.ndarray, axis: int, resolution) -> np.ndarray:
    """2D slices of a ``[X, Y, Z]`` volume along ``axis``, resized: ``[n, H, W]`` float32."""
    chex.assert_rank(volume, 3)
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}.")
    return resize_slices(np.moveaxis(volume, axis, 0), resolution)


def load_nifti_slices(folder, *, resolution=64, axis: int = 2, window: str = "ct",
                      hu_range: Sequence[float] = CT_HU_RANGE) -> np.ndarray:
    """All slices of all NIfTI volumes in ``folder``, windowed and resized.

    Args:
      folder: directory with ``.nii`` / ``.nii.gz`` files (read in sorted order).
      resolution: model resolution, int or ``(H, W)``.
      axis: axis of the stored array to slice along (0, 1 or 2).
      window: ``"ct"`` (``hu_range`` -> [0, 1], clipped) or ``"minmax"`` (per volume).
      hu_range: ``(low, high)`` HU of the CT window.

    Returns:
      float32 ``[N, H, W]`` in [0, 1], N the total number of slices.
    """
    if window not in WINDOWS:
        raise ValueError(f"Unknown window {window!r}; valid windows: {sorted(WINDOWS)}.")
    parts = [volume_slices(apply_window(read_volume(path), window, hu_range), axis, resolution)
             for path in list_volumes(folder)]
    return np.clip(np.concatenate(parts, axis=0), 0.0, 1.0)  # resize rounding
