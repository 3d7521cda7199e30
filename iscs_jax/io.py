"""Volume file I/O: NIfTI read/write with the affine, DICOM series read, validation.

The only module of the library (besides checkpoints) that touches files.

Axis convention. In memory a volume is ``[D, H, W]``: D axial slices, each an
``[H, W]`` image (rows, columns). On disk a NIfTI array is indexed ``(i, j, k)``
with ``k`` the slice index, ``j`` the row and ``i`` the column, so
``volume = data.transpose(2, 1, 0)``. Affines are always kept in the NIfTI
``(i, j, k)`` voxel convention (RAS+ world coordinates, millimetres), so an
affine read from a file can be written back unchanged.

A DICOM series (one file per slice) is read the same way (`iscs_jax.dicom`): a
slice's pixel array is ``[rows, columns] = [j, i]`` and slices are sorted along
the slice normal; the LPS patient coordinates of DICOM become RAS by negating x and y.

Volumes are returned in their stored orientation; `iscs_jax.orientation` names it (axis
codes of ``(i, j, k)``, e.g. a standard DICOM series is LPS) and reorients it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: File name endings read as NIfTI.
NIFTI_SUFFIXES = (".nii", ".nii.gz")


class VolumeError(ValueError):
    """A volume file or array that cannot be reconstructed; the message says how to fix it."""


def is_nifti(path: str | os.PathLike) -> bool:
    """True when ``path`` ends in ``.nii`` or ``.nii.gz``."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def validate_volume(volume: np.ndarray, name: str = "volume") -> np.ndarray:
    """Checks that ``volume`` is a usable 3D image and returns it as float32.

    Args:
      volume: array, expected ``[D, H, W]``.
      name: how the error message refers to it (e.g. the file name).

    Returns:
      ``volume`` as float32 ``[D, H, W]``.

    Raises:
      VolumeError: not 3D, empty, non-finite voxels, or constant.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        hint = ("a 2D image is one slice; stack at least one slice into a [D, H, W] volume"
                if volume.ndim == 2 else
                "select one 3D volume (e.g. the first time point/channel) before reconstructing")
        raise VolumeError(f"{name} has {volume.ndim} dimension(s) with shape {volume.shape}, "
                          f"but a 3D volume [slices, rows, columns] is needed: {hint}.")
    if volume.size == 0:
        raise VolumeError(f"{name} is empty (shape {volume.shape}); give a volume with at least "
                          "one voxel along every axis (check the range of slices selected).")
    if not np.issubdtype(volume.dtype, np.number) or np.iscomplexobj(volume):
        raise VolumeError(f"{name} has dtype {volume.dtype}; give a real-valued image volume.")
    bad = int(np.size(volume) - np.count_nonzero(np.isfinite(volume)))
    if bad:
        raise VolumeError(f"{name} has {bad} NaN or infinite voxel(s); fill them (e.g. with the "
                          "background value via numpy.nan_to_num) and save the volume again.")
    if float(volume.max()) == float(volume.min()):
        raise VolumeError(f"{name} is constant (every voxel = {float(volume.min()):g}); it holds "
                          "no image to reconstruct. Check that the right file or series was given.")
    return volume.astype(np.float32)


def _require_file(path: Path, what: str) -> None:
    if not path.exists():
        raise VolumeError(f"{what} {str(path)!r} does not exist; check the path (relative paths "
                          f"are resolved from the current directory {os.getcwd()!r}).")


def read_nifti(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Reads a NIfTI volume (scaling applied).

    Args:
      path: a ``.nii`` or ``.nii.gz`` file.

    Returns:
      ``(volume float32 [D, H, W], affine float64 [4, 4])``; the affine maps
      NIfTI voxel indices ``(i, j, k, 1)`` to world millimetres.

    Raises:
      VolumeError: missing or unreadable file, or not a valid 3D volume.
    """
    import nibabel as nib

    path = Path(path)
    _require_file(path, "NIfTI file")
    try:
        image = nib.load(str(path))
        data = np.asarray(image.dataobj, dtype=np.float64)
    except Exception as err:  # nibabel raises many types for corrupt files
        raise VolumeError(f"Could not read {str(path)!r} as NIfTI ({err}); check that the file "
                          "is a complete .nii/.nii.gz image.") from err
    if data.ndim != 3:
        validate_volume(data, name=f"NIfTI file {path.name!r}")
    volume = validate_volume(data.transpose(2, 1, 0), name=f"NIfTI file {path.name!r}")
    return volume, np.asarray(image.affine, dtype=np.float64)


def read_affine(path: str | os.PathLike) -> np.ndarray:
    """The ``[4, 4]`` NIfTI affine of ``path`` (the header only; the voxels are not read).

    Raises:
      VolumeError: missing or unreadable file.
    """
    import nibabel as nib

    path = Path(path)
    _require_file(path, "NIfTI file")
    try:
        return np.asarray(nib.load(str(path)).affine, dtype=np.float64)
    except Exception as err:  # nibabel raises many types for corrupt files
        raise VolumeError(f"Could not read {str(path)!r} as NIfTI ({err}); check that the file "
                          "is a complete .nii/.nii.gz image.") from err


def write_nifti(path: str | os.PathLike, volume: np.ndarray, affine: np.ndarray) -> None:
    """Writes ``volume [D, H, W]`` as a float32 NIfTI file with ``affine`` ``[4, 4]``."""
    import nibabel as nib

    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3 or np.shape(affine) != (4, 4):
        raise ValueError(f"write_nifti needs volume [D, H, W] and affine [4, 4], got "
                         f"{volume.shape} and {np.shape(affine)}.")
    image = nib.Nifti1Image(volume.transpose(2, 1, 0), np.asarray(affine, np.float64))
    image.header.set_xyzt_units("mm")
    nib.save(image, str(path))


def voxel_spacing(affine: np.ndarray) -> np.ndarray:
    """Voxel sizes ``[3]`` along ``(i, j, k)``: the column norms of the affine."""
    return np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)


def read_dicom_series(folder: str | os.PathLike, *, series: str | None = None,
                      resample: bool = False, notes: list | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Reads one series of a DICOM folder (one slice per file) in its rescaled units (HU).

    `iscs_jax.dicom.read_series` does the work: files grouped by SeriesInstanceUID,
    localizers and images of another orientation left out, slices sorted along the slice
    normal, uneven spacing an error (or resampled), RescaleSlope/Intercept per file.

    Args:
      folder: directory holding the series' files (other files are skipped).
      series: SeriesInstanceUID or SeriesDescription of the series, when there are several.
      resample: resample unevenly spaced slices to uniform spacing instead of an error.
      notes: a list that receives the reader's notes (images left out, resampling).

    Returns:
      ``(volume float32 [D, H, W], affine [4, 4])`` with the NIfTI ``(i, j, k)`` voxel
      convention and RAS+ world millimetres.

    Raises:
      VolumeError: missing folder, no slices, several series, uneven spacing, bad values.
    """
    from iscs_jax import dicom

    folder = Path(folder)
    _require_file(folder, "DICOM folder")
    if not folder.is_dir():
        raise VolumeError(f"{str(folder)!r} is a file, not a DICOM series folder; give the folder "
                          "that holds one .dcm file per slice (or a .nii/.nii.gz file).")
    result = dicom.read_series(folder, series=series, resample=resample)
    if notes is not None:
        notes.extend(f"DICOM {folder.name!r}: {note}" for note in result.notes)
    return validate_volume(result.volume, name=f"DICOM {folder.name!r}"), result.affine


def read_dicom_file(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Reads one DICOM image as a one-slice volume ``[1, H, W]`` in HU, with its affine.

    Raises:
      VolumeError: not a DICOM image with pixel data and ImagePositionPatient.
    """
    from iscs_jax import dicom

    result = dicom.read_file(path)
    return validate_volume(result.volume, name=f"DICOM {Path(path).name!r}"), result.affine


def read_volume(path: str | os.PathLike, *, series: str | None = None, resample: bool = False,
                notes: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reads a NIfTI file, a DICOM series folder or a single DICOM file (dispatch on the path).

    Args:
      path: the file or folder.
      series, resample, notes: for a DICOM folder, as for `read_dicom_series`.

    Returns:
      ``(volume float32 [D, H, W], affine [4, 4])``; ``D == 1`` for a single DICOM image.
    """
    path = Path(path)
    if is_nifti(path):
        return read_nifti(path)
    if path.is_dir():
        return read_dicom_series(path, series=series, resample=resample, notes=notes)
    _require_file(path, "Input")
    return read_dicom_file(path)


def read_sinogram(path: str | os.PathLike, expected_shape) -> np.ndarray:
    """Reads a measured sinogram ``.npy`` and checks its shape.

    Args:
      path: ``.npy`` file holding ``[D, num_angles, num_detectors]``.
      expected_shape: the shape the geometry produces, ``(D, angles, detectors)``;
        ``D`` may be ``None`` (any number of slices).

    Returns:
      float32 array of ``expected_shape``.

    Raises:
      VolumeError: missing file, wrong shape, or non-finite values.
    """
    path = Path(path)
    _require_file(path, "Sinogram file")
    try:
        sinogram = np.load(str(path), allow_pickle=False)
    except Exception as err:
        raise VolumeError(f"Could not read {str(path)!r} as a .npy array ({err}).") from err
    want = tuple(expected_shape)
    fits = sinogram.ndim == 3 and all(w is None or w == s for w, s in zip(want, sinogram.shape))
    if not fits:
        raise VolumeError(f"Sinogram {path.name!r} has shape {sinogram.shape}, but the operator's "
                          f"geometry needs [slices, angles, detectors] = {want} (None: any). Build "
                          "the operator with the num_views / num_detectors / range_degrees it "
                          "was measured with.")
    if not np.all(np.isfinite(sinogram)):
        raise VolumeError(f"Sinogram {path.name!r} has NaN or infinite values; fill them first.")
    return sinogram.astype(np.float32)
