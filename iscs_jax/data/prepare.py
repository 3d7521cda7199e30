"""Volume -> 2D planes at the prior's resolution: the one preparation the trainer and the CLI share.

A volume is ``[D, H, W]`` as `iscs_jax.io.read_nifti` returns it (D axial slices, z
first). `prepare_planes` turns it into the images a prior sees:

1. ``floor``: values below it are raised to it (CT padding outside the scan circle);
2. planes: the volume is re-stacked so that each image is one plane (`PLANES`:
   ``axial`` ``[D, H, W]`` as is; ``coronal`` stacks along H, images ``[D, W]`` with z
   as rows; ``sagittal`` stacks along W, images ``[D, H]``);
3. square: each image is padded to a square with the volume's minimum (half the
   difference on each side), so resizing keeps the aspect ratio;
4. resize: linear, antialiased (`jax.image.resize`) to ``resolution x resolution``;
5. window to [0, 1]: ``"range"`` maps a fixed ``(low, high)`` (a CT HU window, or
   an MRI file's stored range) linearly and clips; ``"minmax"`` uses the volume's
   own range; ``"none"`` keeps the values.

Resizing happens before the window (in the file's units), so clipping never
depends on the resolution. `plane_grid_affine` gives the NIfTI affine of the
prepared grid in the input's orientation (`from_planes` restores that orientation),
built from `cropped_affine` and `resized_affine`. The way back: `input_grid` records the
input's grid and window, `to_input_grid` resamples prepared planes onto that grid (the
input's affine) and `to_input_units` undoes the window (HU for CT). A volume reoriented
to a prior's axis codes first (`iscs_jax.orientation.reorient`) records its own codes in
`InputGrid.orientation`; `to_input_volume` puts results back in them.

`prepare_volume` is the whole preparation of a reconstruction's input: a range of
planes (`select_planes`), then `prepare_planes`, with the affine of the result;
`intensity_window` turns an intensity setting (`INTENSITIES`) into the window, and
`check_hu` tells whether a volume can be HU for that window.
Errors name the offending argument as ``name=value``.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from iscs_jax import io

#: Default CT window in Hounsfield units, mapped to [0, 1].
CT_HU_RANGE = (-1000.0, 1600.0)
#: HU below this is padding outside the scan circle (e.g. -2048) and becomes air.
AIR_HU = -1024.0
#: A CT volume in HU has air (about -1000 HU) below this; `check_hu` refuses one without.
AIR_THRESHOLD_HU = -500.0
#: plane name -> permutation of ``[D, H, W]`` giving ``[stack, rows, cols]``.
PLANES = {"axial": (0, 1, 2), "coronal": (1, 0, 2), "sagittal": (2, 0, 1)}
#: Windows of `apply_window` / `prepare_planes`.
WINDOWS = ("range", "minmax", "none")
#: Intensity settings of `intensity_window`: a HU window over the air floor, the
#: volume's own range, or the values as they are.
INTENSITIES = ("hu", "minmax", "none")


def _check_plane(plane: str) -> tuple[int, int, int]:
    if plane not in PLANES:
        raise ValueError(f"plane={plane!r} is not one of {sorted(PLANES)}.")
    return PLANES[plane]


def to_planes(volume, plane: str):
    """``[D, H, W]`` -> ``[stack, rows, cols]`` of the plane (a transpose, no copy in numpy)."""
    chex.assert_rank(volume, 3)
    return np.transpose(volume, _check_plane(plane)) if isinstance(volume, np.ndarray) \
        else jnp.transpose(volume, _check_plane(plane))


def from_planes(planes, plane: str):
    """Inverse of `to_planes`: ``[stack, rows, cols]`` -> ``[D, H, W]``."""
    inverse = tuple(int(i) for i in np.argsort(_check_plane(plane)))
    return np.transpose(planes, inverse) if isinstance(planes, np.ndarray) \
        else jnp.transpose(planes, inverse)


def z_axis(plane: str) -> int:
    """The axis of the ``[stack, rows, cols]`` stack that is z (0 for axial, else 1: rows)."""
    return int(np.argsort(_check_plane(plane))[0])


def square_padding(rows: int, cols: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((top, bottom), (left, right))`` zero-based padding making ``rows x cols`` square."""
    size = max(rows, cols)
    return ((size - rows) // 2, size - rows - (size - rows) // 2), \
        ((size - cols) // 2, size - cols - (size - cols) // 2)


def pad_to_square(planes: np.ndarray, value: float) -> np.ndarray:
    """``[N, r, c]`` -> ``[N, s, s]`` (s = max(r, c)), the image centred, padded with ``value``."""
    chex.assert_rank(planes, 3)
    pad = square_padding(*planes.shape[1:])
    return np.pad(planes, ((0, 0),) + pad, constant_values=value)


def resize_slices(slices: np.ndarray, resolution) -> np.ndarray:
    """Linear (antialiased when shrinking) in-plane resize: ``[N, h, w] -> [N, H, W]`` float32.

    Args:
      resolution: int (square) or ``(H, W)``.
    """
    chex.assert_rank(slices, 3)
    size = (resolution, resolution) if np.isscalar(resolution) else tuple(resolution)
    if len(size) != 2 or min(int(s) for s in size) < 1:
        raise ValueError(f"resolution must be an int or (H, W) of positive ints, got "
                         f"{resolution}.")
    shape = (slices.shape[0], int(size[0]), int(size[1]))
    if slices.shape == shape:
        return np.asarray(slices, np.float32)
    out = jax.image.resize(jnp.asarray(slices, jnp.float32), shape, "linear", antialias=True)
    return np.asarray(out, np.float32)


def apply_window(volume: np.ndarray, window: str,
                 window_range: Sequence[float] = CT_HU_RANGE) -> np.ndarray:
    """Intensities to [0, 1]: ``"range"`` (``window_range``, clipped), ``"minmax"``, ``"none"``.

    ``"minmax"`` maps the array's own min and max to 0 and 1 (a constant array to 0).
    """
    if window not in WINDOWS:
        raise ValueError(f"Unknown intensity window {window!r}; valid windows: {WINDOWS}.")
    volume = np.asarray(volume, np.float32)
    if window == "none":
        return volume
    if window == "minmax":
        low, high = float(volume.min()), float(volume.max())
        high = high if high > low else low + 1.0
    else:
        low, high = (float(v) for v in window_range)
        if not high > low:
            raise ValueError(f"The intensity window must be (low, high) with high > low, got "
                             f"{tuple(window_range)}.")
    return np.clip((volume - low) / (high - low), 0.0, 1.0).astype(np.float32)


def intensity_window(intensity: str, hu_min: float = CT_HU_RANGE[0],
                     hu_max: float = CT_HU_RANGE[1]) -> tuple[str, tuple[float, float],
                                                          float | None]:
    """`prepare_planes`' ``(window, window_range, floor)`` of an intensity setting.

    ``"hu"``: the ``[hu_min, hu_max]`` window over the CT air floor (`AIR_HU`);
    ``"minmax"`` and ``"none"``: those windows, no floor.
    """
    if intensity not in INTENSITIES:
        raise ValueError(f"intensity={intensity!r} is not one of {INTENSITIES}.")
    if intensity != "hu":
        return intensity, (0.0, 1.0), None
    low, high = float(hu_min), float(hu_max)
    if not high > low:
        raise ValueError(f"Need hu_max > hu_min, got hu_min={low} and hu_max={high}.")
    return "range", (low, high), AIR_HU


def check_hu(volume: np.ndarray, hu_min: float = CT_HU_RANGE[0], hu_max: float = CT_HU_RANGE[1],
             floor: float | None = AIR_HU) -> tuple[list[str], list[str]]:
    """Whether ``volume`` can be a CT in Hounsfield units for the window ``[hu_min, hu_max]``.

    Problems (the window would give a wrong image): values within [0, 1] (already scaled);
    no air (nothing below `AIR_THRESHOLD_HU`) while the window reaches below it. Note:
    the share of voxels (after the ``floor``) beyond the window by more than its width.

    Args:
      volume: ``[D, H, W]`` in the file's units.
      hu_min, hu_max: the window (`intensity_window`); floor: the air floor, or None.

    Returns:
      ``(problems, notes)``: sentences naming the arguments that fix them (``intensity=``,
      ``hu_min=``, ``hu_max=``); empty lists when the volume looks like HU.
    """
    volume = np.asarray(volume, np.float32)
    low, high, width = float(hu_min), float(hu_max), float(hu_max) - float(hu_min)
    least, most = float(volume.min()), float(volume.max())
    values = f"its values lie in [{least:g}, {most:g}]"
    fix = (f"pass intensity=minmax (its own range) or intensity=none (values kept), or give "
           f"the window in its units with hu_min=LOW hu_max=HIGH (now hu_min={low:g}, "
           f"hu_max={high:g})")
    if least >= 0.0 and most <= 1.0:
        return [f"The volume cannot be CT in Hounsfield units: {values}, within [0, 1] (already "
                f"scaled), so the HU window [{low:g}, {high:g}] would make it an almost "
                f"constant image; {fix}."], []
    if least >= AIR_THRESHOLD_HU and low < AIR_THRESHOLD_HU:
        return [f"The volume does not look like CT in Hounsfield units: {values}, with no air "
                f"(nothing below {AIR_THRESHOLD_HU:g} HU; air is about -1000 HU), as stored "
                f"values without their rescale intercept or another modality would; {fix}."], []
    if floor is not None:
        volume = np.maximum(volume, floor)
    far = int(np.count_nonzero((volume < low - width) | (volume > high + width)))
    if not far:
        return [], []
    return [], [f"note: {100.0 * far / volume.size:.2g}% of the voxels ({far}) lie beyond the HU "
                f"window [{low:g}, {high:g}] by more than its width ({values}); they are "
                "clipped. Check the units, or widen the window (hu_min=, hu_max=)."]


def select_planes(volume: np.ndarray, affine: np.ndarray, plane: str = "axial",
                  start: int = 0, count: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The planes ``start .. start + count - 1`` of ``plane`` (count 0: to the end).

    Args:
      volume: ``[D, H, W]``.
      affine: its ``[4, 4]`` NIfTI affine.
      plane: a name of `PLANES`; its stack axis is the one cropped.
      start, count: the first plane and the number of planes (0: all from ``start``).

    Returns:
      the cropped ``[D', H', W']`` volume (input orientation) and its affine.
    """
    stack_axis = _check_plane(plane)[0]
    depth = volume.shape[stack_axis]
    stop = depth if count == 0 else start + count
    if not (0 <= start < depth and count >= 0 and stop <= depth):
        raise ValueError(f"The plane range start={start}, count={count} does not fit a "
                         f"volume of {depth} {plane} planes; use 0 <= start < {depth} and "
                         f"start + count <= {depth} (count=0 means to the end).")
    cropped = np.moveaxis(np.moveaxis(volume, stack_axis, 0)[start:stop], 0, stack_axis)
    return cropped, cropped_affine(affine, start, stack_axis)


def prepare_planes(volume: np.ndarray, *, plane: str = "axial", resolution=None,
                   window: str = "range", window_range: Sequence[float] = CT_HU_RANGE,
                   floor: float | None = None, square: bool = True) -> np.ndarray:
    """The prior's images of a volume (see the module docstring for the steps).

    Args:
      volume: ``[D, H, W]`` in the file's units.
      plane: ``"axial"``, ``"coronal"`` or ``"sagittal"``.
      resolution: output image size (int or ``(H, W)``); None keeps the (squared) size.
      window: ``"range"``, ``"minmax"`` or ``"none"``.
      window_range: ``(low, high)`` of the ``"range"`` window.
      floor: raise values below this first (None: no floor).
      square: pad each image to a square before resizing.

    Returns:
      float32 ``[stack, R, R]`` (``[stack, rows, cols]`` of the plane).
    """
    volume = np.asarray(volume, np.float32)
    chex.assert_rank(volume, 3)
    if floor is not None:
        volume = np.maximum(volume, np.float32(floor))
    planes = to_planes(volume, plane)
    if square:
        planes = pad_to_square(planes, float(volume.min()))
    if resolution is not None:
        planes = resize_slices(planes, resolution)
    return apply_window(planes, window, window_range)


def resized_affine(affine: np.ndarray, old_shape, new_shape) -> np.ndarray:
    """The affine of a volume resampled from ``old_shape`` to ``new_shape`` (``[D, H, W]``).

    The field of view is kept: voxel sizes scale by old/new along each axis and
    the origin moves so that the outer voxel edges stay where they were
    (``jax.image.resize`` samples at the same half-pixel centres).

    Returns:
      float64 ``[4, 4]``.
    """
    scale = np.asarray(old_shape, np.float64)[::-1] / np.asarray(new_shape, np.float64)[::-1]
    step = np.eye(4)
    step[:3, :3] = np.diag(scale)
    step[:3, 3] = (scale - 1.0) / 2.0
    return np.asarray(affine, np.float64) @ step


def cropped_affine(affine: np.ndarray, first_slice: int, axis: int = 0) -> np.ndarray:
    """The affine of a ``[D, H, W]`` volume cropped to start at ``first_slice`` along ``axis``.

    ``axis`` 0 (D, the default) is NIfTI's k; axis a of ``[D, H, W]`` is NIfTI axis 2 - a.
    The origin moves ``first_slice`` voxels along that axis (negative: padding before).
    """
    shift = np.eye(4)
    shift[2 - axis, 3] = first_slice
    return np.asarray(affine, np.float64) @ shift


def plane_grid_affine(affine: np.ndarray, shape, plane: str, resolution=None,
                      square: bool = True) -> np.ndarray:
    """NIfTI affine of `prepare_planes`' grid, put back in the input's ``[D, H, W]`` order.

    Args:
      affine: ``[4, 4]`` affine of the input ``[D, H, W]`` volume.
      shape: the input's ``(D, H, W)``.
      plane, resolution, square: as for `prepare_planes`.

    Returns:
      ``(affine [4, 4], shape (D', H', W'))`` of ``from_planes(prepare_planes(...))``.
    """
    order = _check_plane(plane)
    stacked = [int(shape[a]) for a in order]
    pad = square_padding(*stacked[1:]) if square else ((0, 0), (0, 0))
    before = [0, pad[0][0], pad[1][0]]
    padded = [stacked[0], stacked[1] + sum(pad[0]), stacked[2] + sum(pad[1])]
    size = padded[1:] if resolution is None else (
        [resolution] * 2 if np.isscalar(resolution) else list(resolution))
    final = [padded[0], int(size[0]), int(size[1])]
    inverse = np.argsort(order)
    for stack_axis, input_axis in enumerate(order):  # padding before = a negative crop
        affine = cropped_affine(affine, -before[stack_axis], int(input_axis))
    padded_in = tuple(padded[i] for i in inverse)
    final_in = tuple(final[i] for i in inverse)
    return resized_affine(affine, padded_in, final_in), final_in


def prepare_volume(volume: np.ndarray, affine: np.ndarray, *, resolution: int,
                   plane: str = "axial", start: int = 0, count: int = 0, resize: bool = True,
                   window: str = "range", window_range: Sequence[float] = CT_HU_RANGE,
                   floor: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`select_planes`, then `prepare_planes`, with the affine of the result's grid.

    Args:
      volume: ``[D, H, W]`` in the file's units; affine: its ``[4, 4]`` NIfTI affine.
      resolution: the images' size R.
      plane, start, count: the planes (`select_planes`).
      resize: False requires the (squared) planes to be R x R already.
      window, window_range, floor: as for `prepare_planes` (see `intensity_window`).

    Returns:
      ``(planes float32 [N, R, R], affine [4, 4])``; the affine is that of
      ``from_planes(planes, plane)`` (the input's orientation).

    Raises:
      ValueError: a bad plane or range, planes of another size with ``resize=False``,
        or planes that are constant after the window (`io.VolumeError`).
    """
    volume, affine = select_planes(volume, affine, plane, start, count)
    in_plane = to_planes(volume, plane).shape[1:]
    if not resize and max(in_plane) != resolution:
        raise ValueError(f"The input planes are {in_plane[0]}x{in_plane[1]} but "
                         f"resolution={resolution} ({resolution}x{resolution}) and "
                         f"resize=False; pass resize=True or planes of that size.")
    planes = prepare_planes(volume, plane=plane, resolution=resolution, window=window,
                            window_range=window_range, floor=floor)
    what = f"{window} {tuple(float(v) for v in window_range)}" if window == "range" else window
    io.validate_volume(planes, name=f"The volume after the intensity window ({what})")
    grid_affine, _ = plane_grid_affine(affine, volume.shape, plane, resolution)
    return planes, grid_affine


@dataclasses.dataclass(frozen=True)
class InputGrid:
    """Where prepared planes came from, to write results back there (`to_input_grid`,
    `to_input_units`).

    Attributes:
      shape: ``(D, H, W)`` of the selected input volume (`select_planes`).
      affine: its ``[4, 4]`` NIfTI affine.
      plane: the planes of the prepared stack (a name of `PLANES`).
      window_range: ``(low, high)`` in the file's units that the window mapped to [0, 1], or
        None (``"none"``: the values were kept).
      orientation: the input's own axis codes (of its NIfTI ``(i, j, k)`` axes, e.g.
        ``("L", "P", "S")``) when it was reoriented before the preparation
        (`iscs_jax.orientation.reorient`), so ``shape`` and ``affine`` are those of the
        reoriented selection; `to_input_volume` restores them. None: used as stored.
    """
    shape: tuple[int, int, int]
    affine: np.ndarray
    plane: str
    window_range: tuple[float, float] | None
    orientation: tuple[str, str, str] | None = None


def input_grid(volume: np.ndarray, affine: np.ndarray, *, resolution: int, plane: str = "axial",
               start: int = 0, count: int = 0, window: str = "range",
               window_range: Sequence[float] = CT_HU_RANGE,
               floor: float | None = None,
               orientation: Sequence[str] | None = None) -> InputGrid:
    """The `InputGrid` of `prepare_volume` with the same arguments (its ``resize`` aside).

    For ``"minmax"`` the window's range is that of the resized planes, as `prepare_planes`
    computes it. ``orientation``: the input's own axis codes when ``volume`` is the input
    reoriented (`InputGrid.orientation`), else None.
    """
    volume, affine = select_planes(volume, affine, plane, start, count)
    if window not in WINDOWS:
        raise ValueError(f"Unknown intensity window {window!r}; valid windows: {WINDOWS}.")
    bounds = None
    if window == "range":
        bounds = (float(window_range[0]), float(window_range[1]))
    elif window == "minmax":
        planes = prepare_planes(volume, plane=plane, resolution=resolution, window="none",
                                floor=floor)
        low, high = float(planes.min()), float(planes.max())
        bounds = (low, high if high > low else low + 1.0)
    return InputGrid(tuple(int(n) for n in volume.shape), np.asarray(affine, np.float64),
                     plane, bounds, None if orientation is None else tuple(orientation))


def to_input_grid(planes, grid: InputGrid) -> np.ndarray:
    """Inverse of `prepare_planes`' resampling: ``[N, R, R]`` planes -> the input's
    ``[D, H, W]`` grid (`InputGrid.shape`, whose affine is `InputGrid.affine`).

    Each image is resized (linear, `resize_slices`) from R x R back to the padded square
    and its padding cut off, so every input voxel centre gets the value the prepared grid
    has at that point; intensities are unchanged (see `to_input_units`).

    Returns:
      float32 ``[D, H, W]``.
    """
    planes = np.asarray(planes, np.float32)
    chex.assert_rank(planes, 3)
    stacked = [grid.shape[a] for a in _check_plane(grid.plane)]
    if planes.shape[0] != stacked[0]:
        raise ValueError(f"{planes.shape[0]} planes do not fit the input grid's "
                         f"{stacked[0]} {grid.plane} planes (shape {grid.shape}).")
    (top, bottom), (left, right) = square_padding(*stacked[1:])
    size = max(stacked[1:])
    square = resize_slices(planes, (size, size))
    cropped = square[:, top:size - bottom, left:size - right]
    return np.ascontiguousarray(from_planes(cropped, grid.plane))


def to_input_volume(planes, grid: InputGrid) -> tuple[np.ndarray, np.ndarray]:
    """`to_input_grid` in the input's own orientation: ``[N, R, R]`` planes -> ``(volume
    [D, H, W], affine [4, 4])`` with the input's array order and affine (the reorientation
    undone, `InputGrid.orientation`).

    Returns:
      float32 ``[D, H, W]`` and its affine; for an input that was not reoriented,
      ``(to_input_grid(planes, grid), grid.affine)``.
    """
    return restore_orientation(to_input_grid(planes, grid), grid.affine, grid)


def restore_orientation(volume, affine: np.ndarray, grid: InputGrid | None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """``(volume [D, H, W], affine)`` in the prepared (reoriented) orientation -> the input's
    own (`InputGrid.orientation`); unchanged when there is none."""
    if grid is None or grid.orientation is None:
        return volume, affine
    from iscs_jax import orientation

    return orientation.restore(volume, affine, grid.orientation)


def to_input_units(values, grid: InputGrid, offset: bool = True) -> np.ndarray:
    """Inverse of the window: [0, 1] values -> the input's units (HU for the CT window),
    ``value * (high - low) + low``; ``offset=False`` for a spread (a standard deviation),
    ``value * (high - low)``. Values clipped by the window stay at its ends.

    Returns:
      float32, the shape of ``values`` (unchanged for ``window_range`` None).
    """
    values = np.asarray(values, np.float32)
    if grid.window_range is None:
        return values
    low, high = grid.window_range
    return (values * np.float32(high - low) + np.float32(low if offset else 0.0)).astype(
        np.float32)
