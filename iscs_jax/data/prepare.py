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
prepared grid in the input's orientation (`from_planes` restores that orientation).
"""

from __future__ import annotations

from typing import Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

#: Default CT window in Hounsfield units, mapped to [0, 1].
CT_HU_RANGE = (-1000.0, 1600.0)
#: plane name -> permutation of ``[D, H, W]`` giving ``[stack, rows, cols]``.
PLANES = {"axial": (0, 1, 2), "coronal": (1, 0, 2), "sagittal": (2, 0, 1)}
WINDOWS = ("range", "minmax", "none")


def _check_plane(plane: str) -> tuple[int, int, int]:
    if plane not in PLANES:
        raise ValueError(f"Unknown plane {plane!r}; valid planes: {sorted(PLANES)}.")
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
    from iscs_jax import io
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
        affine = io.cropped_affine(affine, -before[stack_axis], int(input_axis))
    padded_in = tuple(padded[i] for i in inverse)
    final_in = tuple(final[i] for i in inverse)
    return io.resized_affine(affine, padded_in, final_in), final_in
