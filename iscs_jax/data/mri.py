"""The embedded MRI demo volume: a held-out coronal slab of the MNI152 2009a T1 template.

The template (197 x 233 x 189 voxels of 1 mm, stored uint8, skull-stripped) ships inside
the PyPI package nilearn (`TEMPLATE`); the ``mri128`` prior trains on its coronal
planes outside `HELD_OUT` (``configs/train_mri128.py``). The 48 coronal planes
``HELD_OUT`` (the stored j index; the planes through the centre) are shipped as
``assets/mni152_t1_coronal_slab.nii.gz``, with the stored values and the template's
affine shifted to the slab (`write_demo_volume` made it), so demo volume and training
data come from one template but share no plane.
"""

from __future__ import annotations

import pathlib

import nibabel as nib
import numpy as np

from iscs_jax import io
from iscs_jax.data import packaged, prepare

TEMPLATE = "pkg:nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
#: Held-out coronal planes ``[start, stop)`` of the template (stored j index = H of [D, H, W]).
HELD_OUT = (92, 140)
#: The stored template's intensity range (uint8), mapped to [0, 1] by the prior's window.
INTENSITY_RANGE = (0.0, 255.0)
DEMO_PATH = pathlib.Path(__file__).resolve().parent / "assets" / "mni152_t1_coronal_slab.nii.gz"


def write_demo_volume(path=DEMO_PATH, template: str = TEMPLATE) -> pathlib.Path:
    """Writes the `HELD_OUT` coronal slab of the template as a uint8 NIfTI file.

    Reads the template with `io.read_nifti` (``pip install --no-deps nilearn`` provides it)
    and keeps its uint8 values; the affine is the template's moved ``HELD_OUT[0]`` voxels
    along j (the H axis of ``[D, H, W]``), so world coordinates are unchanged.
    """
    volume, affine = io.read_nifti(packaged.resolve(template))
    start, stop = HELD_OUT
    slab = volume[:, start:stop, :]
    if not np.array_equal(slab, np.round(slab)) or slab.min() < 0 or slab.max() > 255:
        raise ValueError(f"{template} does not hold uint8 values; is it the MNI152 template?")
    out = nib.Nifti1Image(slab.transpose(2, 1, 0).astype(np.uint8),
                          prepare.cropped_affine(affine, start, axis=1))
    out.header.set_xyzt_units("mm")
    nib.save(out, str(path))
    return pathlib.Path(path)


def demo_volume() -> tuple[np.ndarray, np.ndarray]:
    """The embedded slab as ``(volume float32 [D, H, W] = [189, 48, 197], affine [4, 4])``."""
    return io.read_nifti(DEMO_PATH)
