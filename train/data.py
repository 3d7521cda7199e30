"""Training slices from the config's ``data`` section: procedural phantoms or a NIfTI volume.

``data.source`` picks the loader from `SOURCES`:

* ``"phantom"``: axial slices of procedural phantoms with seeds ``0 .. num_volumes - 1``.
* ``"nifti"``: slices ``slice_start .. slice_stop - 1`` (along the first axis of
  `iscs_jax.io.read_nifti`'s ``[D, H, W]``, the same reader the CLI uses) of the file
  ``data.path`` (``pkg:NAME/...`` paths are files inside an installed package,
  see `iscs_jax.data.packaged`), prepared exactly as `hu_volume_slices` says and
  expanded by `iscs_jax.data.augment`.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from iscs_jax import io
from iscs_jax.data import augment, nifti, packaged

#: HU below this is padding outside the scan circle (e.g. -2048) and becomes air.
AIR_HU = -1024.0


def phantom_source(data: ml_collections.ConfigDict) -> np.ndarray:
    """``[num_volumes * D, H, W]`` axial phantom slices (seeds 0..N-1)."""
    from iscs_jax.data.phantom import phantom_slices
    shape = (data.slices_per_volume, data.resolution, data.resolution)
    return phantom_slices(0, data.num_volumes, shape).astype(np.float32)


def hu_volume_slices(volume: np.ndarray, resolution: int, hu_range) -> np.ndarray:
    """HU slices ``[N, h, w]`` -> ``[N, R, R]`` in [0, 1]: air floor, resize, then HU window.

    Resizing happens in HU, before the window, so that an int16 HU volume resampled
    with this function and windowed by the CLI (``data.intensity="hu"``) gives the
    same images the prior was trained on.
    """
    volume = np.maximum(volume, AIR_HU)
    resized = nifti.resize_slices(volume, resolution)
    return nifti.ct_window(resized, hu_range)


def nifti_source(data: ml_collections.ConfigDict) -> np.ndarray:
    """Augmented slices ``[N * copies, R, R]`` of one NIfTI volume's slab."""
    volume, _ = io.read_nifti(packaged.resolve(data.path))
    start, stop = int(data.slice_start), int(data.slice_stop)
    if not 0 <= start < stop <= volume.shape[0]:
        raise ValueError(f"data.slice_start={start}, data.slice_stop={stop} do not fit the "
                         f"{volume.shape[0]} slices of {data.path}; use 0 <= start < stop <= "
                         f"{volume.shape[0]}.")
    slices = hu_volume_slices(volume[start:stop], data.resolution, (data.hu_min, data.hu_max))
    aug = augment.Augmentation(**data.augment.to_dict())
    return augment.augment_slices(slices, aug, seed=int(data.seed))


SOURCES = {"phantom": phantom_source, "nifti": nifti_source}


def load_slices(config: ml_collections.ConfigDict) -> np.ndarray:
    """The training images ``[N, H, W]`` in [0, 1] of ``config.data.source``."""
    source = config.data.get("source", "phantom")
    if source not in SOURCES:
        raise ValueError(f"data.source={source!r} is not one of {sorted(SOURCES)}.")
    return SOURCES[source](config.data)
