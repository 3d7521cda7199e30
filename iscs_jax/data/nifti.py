"""Every NIfTI volume of a folder as 2D slices: `io.read_nifti` + `prepare.prepare_planes`.

``load_nifti_slices(folder, resolution=64, plane="axial", window="ct")`` reads each
``.nii`` / ``.nii.gz`` file of ``folder`` (sorted by name) with `iscs_jax.io.read_nifti`
(``[D, H, W]``, the reader of the CLI and the trainer) and prepares its planes with
`iscs_jax.data.prepare.prepare_planes` (the same preparation), so slices from here,
from the trainer and from the CLI of one file are the same images.
"""

from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np

from iscs_jax import io
from iscs_jax.data import prepare

CT_HU_RANGE = prepare.CT_HU_RANGE
#: Window names accepted here: ``"ct"`` is the ``"range"`` window with ``hu_range``.
WINDOWS = ("ct", "minmax")


def list_volumes(folder) -> list[pathlib.Path]:
    """Sorted ``.nii`` / ``.nii.gz`` files directly inside ``folder``.

    Raises:
      ValueError: if ``folder`` does not exist, is not a directory or holds no NIfTI file.
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise ValueError(f"NIfTI folder {str(folder)!r} does not exist or is not a directory; "
                         "pass the folder that holds the .nii / .nii.gz volumes.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and io.is_nifti(p))
    if not files:
        raise ValueError(f"No .nii or .nii.gz files in {str(folder)!r}; add volumes there "
                         "or point the data folder elsewhere.")
    return files


def load_nifti_slices(folder, *, resolution=64, plane: str = "axial", window: str = "ct",
                      hu_range: Sequence[float] = CT_HU_RANGE, square: bool = True) -> np.ndarray:
    """All planes of all NIfTI volumes in ``folder``, windowed and resized.

    Args:
      folder: directory with ``.nii`` / ``.nii.gz`` files (read in sorted order).
      resolution: model resolution, int or ``(H, W)``.
      plane: ``"axial"`` (slices of ``[D, H, W]``), ``"coronal"`` or ``"sagittal"``.
      window: ``"ct"`` (``hu_range`` -> [0, 1], clipped) or ``"minmax"`` (per volume).
      hu_range: ``(low, high)`` HU of the CT window.
      square: pad each plane to a square before resizing (keeps the aspect ratio).

    Returns:
      float32 ``[N, H, W]`` in [0, 1], N the total number of planes.
    """
    if window not in WINDOWS:
        raise ValueError(f"Unknown window {window!r}; valid windows: {sorted(WINDOWS)}.")
    parts = []
    for path in list_volumes(folder):
        volume, _ = io.read_nifti(path)
        parts.append(prepare.prepare_planes(
            volume, plane=plane, resolution=resolution, square=square,
            window="range" if window == "ct" else "minmax", window_range=hu_range))
    return np.concatenate(parts, axis=0)
