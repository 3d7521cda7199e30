"""Training slices from the config's ``data`` section: procedural phantoms or a NIfTI volume.

``data.source`` picks the loader from `SOURCES`:

* ``"phantom"``: axial slices of procedural phantoms with seeds ``0 .. num_volumes - 1``.
* ``"nifti"``: planes of the file ``data.path`` read by `iscs_jax.io.read_nifti` (the
  reader the CLI uses; ``pkg:NAME/...`` paths are files inside an installed package,
  see `iscs_jax.data.packaged`), prepared by `iscs_jax.data.prepare.prepare_planes`
  (the preparation the CLI uses) and expanded by `iscs_jax.data.augment`. Planes are
  ``data.plane`` (default ``"axial"``: slices along the first axis of ``[D, H, W]``);
  the training planes are ``slice_start .. slice_stop - 1``, or the half-open
  ``data.ranges`` (a list of ``(start, stop)``, e.g. both sides of a held-out slab).
  The window is ``data.intensity_range`` if given, else ``(hu_min, hu_max)``;
  ``data.mirror`` adds left-right mirrored planes before augmenting.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from iscs_jax import io
from iscs_jax.data import augment, packaged, prepare


def phantom_source(data: ml_collections.ConfigDict) -> np.ndarray:
    """``[num_volumes * D, H, W]`` axial phantom slices (seeds 0..N-1)."""
    from iscs_jax.data.phantom import phantom_slices
    shape = (data.slices_per_volume, data.resolution, data.resolution)
    return phantom_slices(0, data.num_volumes, shape).astype(np.float32)


def resample_hu(volume: np.ndarray, resolution: int, plane: str = "axial") -> np.ndarray:
    """HU volume ``[D, H, W]`` -> planes ``[N, R, R]`` in HU: air floor, square, resize.

    `prepare.prepare_planes` without the window (the embedded demo slabs are stored so,
    see `train.slab`; the CLI windows them as it windows any file).
    """
    return prepare.prepare_planes(volume, plane=plane, resolution=resolution, window="none",
                                  floor=prepare.AIR_HU)


def hu_volume_slices(volume: np.ndarray, resolution: int, hu_range,
                     plane: str = "axial") -> np.ndarray:
    """HU volume ``[D, H, W]`` -> planes ``[N, R, R]`` in [0, 1]: air floor, resize, window.

    `prepare.prepare_planes` with the CT air floor: resizing happens in HU, before the
    window, exactly as the CLI prepares its input.
    """
    return prepare.prepare_planes(volume, plane=plane, resolution=resolution, window="range",
                                  window_range=hu_range, floor=prepare.AIR_HU)


def training_ranges(data: ml_collections.ConfigDict, num_planes: int) -> list[tuple[int, int]]:
    """The ``(start, stop)`` plane ranges to train on (``data.ranges`` or the one slab)."""
    ranges = data.get("ranges", None) or [(data.slice_start, data.slice_stop)]
    ranges = [(int(start), int(stop)) for start, stop in ranges]
    for start, stop in ranges:
        if not 0 <= start < stop <= num_planes:
            raise ValueError(f"The training planes {start}..{stop} (data.slice_start={start}, "
                             f"data.slice_stop={stop}, or data.ranges) do not fit the "
                             f"{num_planes} planes of {data.path}; use 0 <= start < stop <= "
                             f"{num_planes}.")
    return ranges


def nifti_source(data: ml_collections.ConfigDict) -> np.ndarray:
    """Augmented planes ``[N * copies, R, R]`` of one NIfTI volume (see the module docstring)."""
    volume, _ = io.read_nifti(packaged.resolve(data.path))
    window = tuple(data.get("intensity_range", None) or (data.hu_min, data.hu_max))
    planes = hu_volume_slices(volume, data.resolution, window, data.get("plane", "axial"))
    aug = augment.Augmentation(**data.augment.to_dict())
    parts = [planes[start:stop] for start, stop in training_ranges(data, planes.shape[0])]
    if data.get("mirror", False):
        parts += [part[:, :, ::-1] for part in parts]
    return np.concatenate([augment.augment_slices(part, aug, seed=int(data.seed) + i)
                           for i, part in enumerate(parts)])


SOURCES = {"phantom": phantom_source, "nifti": nifti_source}


def load_slices(config: ml_collections.ConfigDict) -> np.ndarray:
    """The training images ``[N, H, W]`` in [0, 1] of ``config.data.source``."""
    source = config.data.get("source", "phantom")
    if source not in SOURCES:
        raise ValueError(f"data.source={source!r} is not one of {sorted(SOURCES)}.")
    return SOURCES[source](config.data)
