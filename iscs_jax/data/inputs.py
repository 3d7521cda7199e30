"""A reconstruction's inputs from plain settings: the volume in the prior's orientation, its
planes and grid, and a measured sinogram's slices.

`orient` reorients a volume to the prior's axis codes (`iscs_jax.orientation.reorient`)
before anything else, `prepare_reference` prepares its planes (`prepare.prepare_volume`, the
HU check `prepare.check_hu`) with the grid to write results back on (`prepare.input_grid`),
and `read_measurement` reads a measured sinogram's slice range; `Inputs` holds what a
reconstruction needs. Errors are ValueErrors naming the argument as ``name=value``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from iscs_jax import io, orientation
from iscs_jax.data import prepare

#: Why an input is not reoriented when there are no codes to reorient to.
NO_CODES = "no axis codes to reorient to were given"


@dataclasses.dataclass
class Inputs:
    """What a reconstruction needs.

    Attributes:
      reference: ground truth planes ``[N, R, R]`` in [0, 1] (`prepare.to_planes` of the
        volume), or None (measured sinogram only).
      affine: ``[4, 4]`` NIfTI affine of ``prepare.from_planes(reference, plane)``, the
        result's grid in the prior's orientation (``prepare.restore_orientation`` with
        ``grid`` puts it back in the input's).
      operator: the operator (`operators.protocol`) acting on the planes.
      measurement: ``A(reference)`` (+ noise), of ``operator.measurement_shape(N)``; or a
        measured sinogram.
      source: a short description of where the volume came from.
      plane: the planes reconstructed (``"axial"``, ``"coronal"``, ``"sagittal"``).
      notes: the input's orientation and what was done to it, what the reader left out or
        resampled, and intensity notes, for the log.
      grid: the input's grid and window (`prepare.InputGrid`), to write results back on it
        and in its own orientation (``grid.orientation``); None without a volume.
    """
    reference: np.ndarray | None
    affine: np.ndarray
    operator: object
    measurement: np.ndarray
    source: str
    plane: str = "axial"
    notes: tuple[str, ...] = ()
    grid: prepare.InputGrid | None = None


def orientation_plan(affine, codes, why: str = NO_CODES
                     ) -> tuple[tuple[str, str, str] | None, str, list[str]]:
    """What reorienting ``affine`` to ``codes`` does.

    Args:
      affine: ``[4, 4]`` NIfTI affine of the input.
      codes: the prior's axis codes, or None (nothing is reoriented, for the reason ``why``).
      why: the reason logged when ``codes`` is None.

    Returns:
      ``(input codes, log line, obliquity notes)``; the input codes are None when there is
      nothing to do (``codes`` None, or the input already in them). Without ``codes`` an
      oblique affine is no problem; with them, `orientation.check_obliquity` refuses an
      ambiguous one (a ValueError).
    """
    if codes is None:
        try:
            name = "".join(orientation.axis_codes(affine))
        except orientation.OrientationError:
            name = "oblique"
        return None, f"input orientation {name}: used in its stored array order; {why}", []
    found, tilt = orientation.axis_codes(affine), orientation.check_obliquity(affine)
    name, codes = "".join(found), tuple(codes)
    if codes == found:
        return None, f"input orientation {name}: already in the prior's orientation", tilt
    return found, (f"input orientation {name} -> the prior's {''.join(codes)}: "
                   f"{orientation.describe(found, codes)}"), tilt


def orient(volume, affine, codes, plane: str = "axial", notes: list | None = None,
           why: str = NO_CODES) -> tuple[np.ndarray, np.ndarray, tuple[str, str, str] | None]:
    """The volume in the prior's axis ``codes`` (`orientation.reorient`), before anything else.

    Args:
      volume: ``[D, H, W]`` as read; affine: its ``[4, 4]`` NIfTI affine.
      codes: the prior's axis codes, or None (used as stored).
      plane: the planes reconstructed, whose images must have more than one row and column.
      notes: receives a line naming the input's codes and what was done (`orientation_plan`).
      why: the reason logged when ``codes`` is None.

    Returns:
      ``(volume, affine, input codes)``; the input codes are None when nothing was done
      (the arrays are then the input's own, bit for bit).

    Raises:
      ValueError: an oblique or degenerate affine, or images that are not ``plane`` planes.
    """
    found, line, tilt = orientation_plan(affine, codes, why)
    if found is not None:
        volume, affine = orientation.reorient(volume, affine, codes)
    if notes is not None:
        notes.extend([line, *(f"note: {note}" for note in tilt)])
    images = prepare.to_planes(volume, plane).shape
    if min(images[1:]) == 1 and max(images) > 1:
        raise ValueError(f"The input (shape [D, H, W] = {list(volume.shape)} in the prior's "
                         f"orientation) holds no {plane} images: its {plane} planes would be "
                         f"{images[1]}x{images[2]}, so its slices are not stacked along the "
                         f"axis the {plane} planes need. Give a volume of {plane} images (or "
                         "several slices), or set plane= to the planes it holds.")
    return volume, affine, found


def prepare_reference(volume, affine, *, resolution: int, plane: str = "axial",
                      start: int = 0, count: int = 0, resize: bool = True,
                      window: tuple = ("range", prepare.CT_HU_RANGE, prepare.AIR_HU),
                      check_hu: bool = False, notes: list | None = None, input_codes=None
                      ) -> tuple[np.ndarray, np.ndarray, prepare.InputGrid]:
    """A volume's planes, their affine and the input's grid (`prepare.prepare_volume`,
    `prepare.input_grid`).

    Args:
      volume: ``[D, H, W]`` (after `orient`); affine: its ``[4, 4]`` affine.
      resolution, plane, start, count, resize: as for `prepare.prepare_volume`.
      window: ``(window, window_range, floor)`` (`prepare.intensity_window`).
      check_hu: refuse a volume that cannot be HU for ``window`` (`prepare.check_hu`).
      notes: receives the HU check's notes.
      input_codes: the input's own axis codes when ``volume`` was reoriented (`orient`).

    Returns:
      ``(planes [N, R, R], affine [4, 4], grid)``.

    Raises:
      ValueError: naming the argument (``check_intensity=False`` skips the HU check).
    """
    planes, planes_affine = prepare.prepare_volume(
        volume, affine, resolution=resolution, plane=plane, start=start, count=count,
        resize=resize, window=window[0], window_range=window[1], floor=window[2])
    if check_hu:
        problems, hu_notes = prepare.check_hu(volume, *window[1], window[2])
        if problems:
            raise ValueError(" ".join(problems) + " (check_intensity=False skips this check.)")
        if notes is not None:
            notes.extend(hu_notes)
    grid = prepare.input_grid(volume, affine, resolution=resolution, plane=plane, start=start,
                              count=count, window=window[0], window_range=window[1],
                              floor=window[2], orientation=input_codes)
    return planes, planes_affine, grid


def read_measurement(path: str, operator, *, start: int = 0, count: int = 0,
                     num_slices: int | None = None) -> np.ndarray:
    """A measured sinogram's slices ``[start, start + count)`` (`io.read_sinogram`).

    Args:
      path: the sinogram file; operator: the operator it was measured with (its
        ``measurement_shape()`` per slice).
      start, count: the slice range (count 0: to the end).
      num_slices: the reference volume's slices, which the range must match, or None.

    Raises:
      ValueError: an unreadable file or a slice count that differs from ``num_slices``.
    """
    y = io.read_sinogram(path, (None, *operator.measurement_shape()))
    y, _ = prepare.select_planes(y, np.eye(4), "axial", start, count)
    if num_slices is not None and y.shape[0] != num_slices:
        raise ValueError(f"The sinogram has {y.shape[0]} slices but the reference volume has "
                         f"{num_slices}; give both for the same slices (the slice range "
                         "applies to both).")
    return y
