"""The volumes shipped for demos (`NAMES`): a chest CT slab, an MRI slab, the phantom.

``"chest_ct"`` is a held-out slab of a chest CT in HU (`train.slab` made it; windowed
like any CT file); ``"mri"`` the held-out coronal slab of `iscs_jax.data.mri`, stored
with the template's values and windowed by the ``mri128`` prior's range; ``"phantom"``
the procedural phantom (`phantom.phantom_volume`), already in [0, 1], with `PHANTOM_AFFINE`.
`load` reads one; `stored_window` is the window a volume ships with, if any. Each keeps
its own orientation: the chest slab LAS (that of the chest CT it was cut from, on which
``chest128`` trained), the MRI slab RAS (the MNI template's), the phantom LPI.
"""

from __future__ import annotations

import numpy as np

from iscs_jax import io
from iscs_jax.data import mri, packaged, phantom

#: Shipped volume files by name (``pkg:`` paths inside this package).
FILES = {
    "chest_ct": "pkg:iscs_jax/data/assets/chest_ct_69-132.nii.gz",
    "mri": "pkg:iscs_jax/data/assets/mni152_t1_coronal_slab.nii.gz",
}
#: Every embedded volume; ``"phantom"`` is generated, not read.
NAMES = (*FILES, "phantom")
#: The phantom's affine: 1 mm voxels in its documented orientation (`iscs_jax.data.phantom`:
#: columns towards the patient's left, rows towards posterior, slices towards inferior),
#: axis codes LPI (`iscs_jax.priors.format.PHANTOM_ORIENTATION`).
PHANTOM_AFFINE = np.diag([-1.0, -1.0, -1.0, 1.0])
#: ``prepare.prepare_planes``' ``(window, window_range, floor)`` of the volumes stored in
#: their prior's units; the others (the chest CT, in HU) take the caller's intensity window.
STORED_WINDOWS = {
    "mri": ("range", mri.INTENSITY_RANGE, None),
    "phantom": ("none", (0.0, 1.0), None),
}


def _check_name(name: str) -> str:
    if name not in NAMES:
        raise ValueError(f"name={name!r} is not one of {sorted(NAMES)}.")
    return name


def load(name: str, *, resolution: int, phantom_seed: int = 1234,
         phantom_slices: int = 32) -> tuple[np.ndarray, np.ndarray, str]:
    """An embedded volume ``[D, H, W]``, its affine and a description.

    Args:
      name: one of `NAMES`.
      resolution: the phantom's in-plane size (the files have their own).
      phantom_seed, phantom_slices: the phantom's seed and D (>= 1).

    Returns:
      ``(volume float32 [D, H, W], affine [4, 4], description)``.
    """
    if _check_name(name) == "phantom":
        if phantom_slices < 1:
            raise ValueError(f"phantom_slices={phantom_slices} must be >= 1.")
        shape = (int(phantom_slices), resolution, resolution)
        volume = phantom.phantom_volume(int(phantom_seed), shape)
        return volume, PHANTOM_AFFINE.copy(), f"phantom (seed {phantom_seed})"
    volume, affine = io.read_volume(packaged.resolve(FILES[name]))
    return volume, affine, f"embedded {name}"


def stored_window(name: str) -> tuple[str, tuple[float, float], float | None] | None:
    """The ``(window, window_range, floor)`` volume ``name`` ships with, or None (it takes
    the caller's intensity window, `prepare.intensity_window`)."""
    return STORED_WINDOWS.get(_check_name(name))
