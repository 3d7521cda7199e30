"""Volume orientation: axis codes of an affine, reorienting a volume to given codes and back.

Convention. Axis codes (e.g. ``("L", "A", "S")``) always describe the NIfTI voxel axes
``(i, j, k)`` of the affine, as ``nibabel.aff2axcodes`` gives them: each letter is the
world direction (RAS+ millimetres) that index increases towards. In memory a volume is
``[D, H, W]`` = the NIfTI array transposed ``(2, 1, 0)`` (`iscs_jax.io`), so array axis
``a`` of ``[D, H, W]`` is NIfTI axis ``2 - a``: the codes ``LAS`` mean columns (W, i)
run towards the patient's left, rows (H, j) towards anterior and slices (D, k) towards
superior. A DICOM series as scanners write it (rows top to bottom going posterior) is
``LPS``.

`reorient` puts a ``[D, H, W]`` volume in target codes with a world-consistent affine
(every voxel keeps its world position, ``affine @ (i, j, k, 1)``); `restore` is the way
back to the input's own codes. Both are `nibabel.orientations` (``io_orientation``,
``ornt_transform``, ``apply_orientation``, ``inv_ornt_aff``), which only permute and flip
axes: no resampling. An affine whose voxel axes are more than `MAX_OBLIQUITY_DEGREES`
from the nearest world axis (``nibabel.affines.obliquity``) has no clear slice axis and
is refused (`OrientationError`); a smaller tilt is reoriented to the nearest axes with a
note (`check_obliquity`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from iscs_jax.io import VolumeError

#: A voxel axis further than this from every world axis makes the orientation ambiguous.
MAX_OBLIQUITY_DEGREES = 30.0
#: Obliquity below this (degrees) counts as axis-aligned (no note).
ALIGNED_DEGREES = 1e-3
#: Opposite ends of the three world axes, as nibabel labels them.
_PAIRS = (("L", "R"), ("P", "A"), ("I", "S"))
_AXIS_NAMES = ("i (columns, W)", "j (rows, H)", "k (slices, D)")


class OrientationError(VolumeError):
    """An affine or axis codes that do not give one clear orientation; the message says why."""


def normalize_codes(codes: str | Sequence[str]) -> tuple[str, str, str]:
    """``"las"`` or ``("L", "A", "S")`` -> ``("L", "A", "S")``, checked.

    Raises:
      OrientationError: not three letters, one of each pair L/R, A/P, S/I.
    """
    letters = tuple(str(c).upper() for c in codes)
    axes = sorted(next((n for n, pair in enumerate(_PAIRS) if c in pair), -1) for c in letters)
    if len(letters) != 3 or axes != [0, 1, 2]:
        raise OrientationError(f"codes={''.join(map(str, codes))!r} are not axis codes: give "
                               "three letters, one of each pair L/R, A/P, S/I (e.g. 'LAS', "
                               "'RAS' or 'LPS'), for the NIfTI axes (i, j, k).")
    return letters  # type: ignore[return-value]


def check_obliquity(affine: np.ndarray,
                    max_degrees: float = MAX_OBLIQUITY_DEGREES) -> list[str]:
    """Whether the voxel axes of ``affine`` are close enough to world axes to be reoriented.

    Args:
      affine: ``[4, 4]`` NIfTI affine.
      max_degrees: the largest tilt of a voxel axis from its nearest world axis.

    Returns:
      notes (one sentence per tilted axis), empty when the affine is axis-aligned.

    Raises:
      OrientationError: a degenerate affine, or an axis tilted beyond ``max_degrees``.
    """
    import nibabel.affines

    affine = np.asarray(affine, np.float64)
    linear = affine[:3, :3]
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)) or \
            abs(np.linalg.det(linear)) < 1e-12:
        raise OrientationError(f"The affine {affine.tolist()} is degenerate (non-finite or "
                               "singular): its voxel axes have no orientation. Check the file's "
                               "header (sform/qform, or DICOM ImageOrientationPatient).")
    degrees = np.degrees(nibabel.affines.obliquity(affine))
    worst = int(np.argmax(degrees))
    if degrees[worst] > max_degrees:
        raise OrientationError(
            f"The volume is oblique: its axis {_AXIS_NAMES[worst]} is {degrees[worst]:.1f} "
            f"degrees from the nearest world axis (more than {max_degrees:g}), so which axis "
            "its slices are stacked along is ambiguous. Resample it to an axis-aligned grid "
            "first (e.g. 3D Slicer's 'Harden transform' + resample, or dcm2niix / nibabel "
            "resample_to_output), then run again.")
    return [f"axis {_AXIS_NAMES[n]} is oblique by {degrees[n]:.2g} degrees; taken along "
            "its nearest world axis (no resampling)"
            for n in range(3) if degrees[n] > ALIGNED_DEGREES]


def axis_codes(affine: np.ndarray) -> tuple[str, str, str]:
    """The axis codes of the NIfTI axes ``(i, j, k)`` of ``affine`` (``nibabel.aff2axcodes``).

    Raises:
      OrientationError: a degenerate or too oblique affine (`check_obliquity`).
    """
    import nibabel.orientations as orientations

    check_obliquity(affine)
    return tuple(orientations.aff2axcodes(np.asarray(affine, np.float64)))  # type: ignore


def transform(source: str | Sequence[str], target: str | Sequence[str]) -> np.ndarray:
    """The nibabel orientation transform ``[3, 2]`` from ``source`` codes to ``target``."""
    import nibabel.orientations as orientations

    return orientations.ornt_transform(orientations.axcodes2ornt(normalize_codes(source)),
                                       orientations.axcodes2ornt(normalize_codes(target)))


def _apply(volume: np.ndarray, affine: np.ndarray, ornt: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    import nibabel.orientations as orientations

    volume = np.asarray(volume)
    if volume.ndim != 3 or np.shape(affine) != (4, 4):
        raise ValueError(f"reorient needs volume [D, H, W] and affine [4, 4], got "
                         f"{volume.shape} and {np.shape(affine)}.")
    data = volume.transpose(2, 1, 0)  # (i, j, k)
    moved = orientations.apply_orientation(data, ornt)
    new_affine = np.asarray(affine, np.float64) @ orientations.inv_ornt_aff(ornt, data.shape)
    return np.ascontiguousarray(moved.transpose(2, 1, 0)), new_affine


def reorient(volume: np.ndarray, affine: np.ndarray, codes: str | Sequence[str]
             ) -> tuple[np.ndarray, np.ndarray]:
    """``volume`` in the axis ``codes`` (of the NIfTI axes ``(i, j, k)``), world-consistent.

    Axes are only permuted and flipped (no interpolation): the voxel at index ``n`` of
    the result is the input voxel at the same world position ``affine @ n``.

    Args:
      volume: ``[D, H, W]`` (the NIfTI array transposed ``(2, 1, 0)``).
      affine: its ``[4, 4]`` NIfTI affine.
      codes: the target codes, e.g. ``"LAS"``.

    Returns:
      ``(volume [D', H', W'], affine [4, 4])`` with ``axis_codes(affine) == codes``; the
      input arrays themselves (not copies) when already in ``codes``.

    Raises:
      OrientationError: bad codes, or a degenerate or too oblique affine.
    """
    source, target = axis_codes(affine), normalize_codes(codes)
    if source == target:
        return volume, np.asarray(affine, np.float64)
    return _apply(volume, affine, transform(source, target))


def restore(volume: np.ndarray, affine: np.ndarray, codes: str | Sequence[str]
            ) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `reorient`: a result ``[D', H', W']`` and its affine back in the input's
    own ``codes`` (``axis_codes`` of the input's affine, recorded before `reorient`).

    The result's affine may differ from the reoriented input's (another resolution, a
    crop or padding) as long as its axes keep their directions.

    Returns:
      ``(volume [D, H, W], affine [4, 4])`` in ``codes``.
    """
    return reorient(volume, affine, codes)


def describe(source: str | Sequence[str], target: str | Sequence[str]) -> str:
    """What `reorient` does from ``source`` to ``target`` codes, in words, e.g.
    ``"flipped j (rows, H)"`` or ``"none (already in the target orientation)"``."""
    ornt = transform(source, target)
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        return "none (already in the target orientation)"
    steps = []
    order = [int(axis) for axis in ornt[:, 0]]  # source axis n goes to target axis order[n]
    if order != [0, 1, 2]:
        moved = ", ".join(f"{'ijk'[n]}->{'ijk'[order[n]]}" for n in range(3) if order[n] != n)
        steps.append(f"permuted the axes ({moved})")
    flipped = [_AXIS_NAMES[order[n]] for n in range(3) if ornt[n, 1] < 0]
    if flipped:
        steps.append("flipped " + " and ".join(flipped))
    return "; ".join(steps)
