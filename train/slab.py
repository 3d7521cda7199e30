"""Write a held-out slab of a training volume as a small int16 HU NIfTI (an embedded demo volume).

    python -m train.slab --config configs/train_chest128.py --start 69 --stop 133 \\
        --out iscs_jax/data/assets/chest_ct_69-132.nii.gz

The slab is resampled in-plane to the config's ``data.resolution`` exactly as the
trainer resamples its slices (`train.data.resample_hu`), rounded to int16 HU, and
written with the affine of the cropped, resized grid, so the CLI reads it in world
coordinates and windows it into the images the prior was trained on.
"""

import os
import sys
import tempfile

import nibabel as nib
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from iscs_jax import io
from iscs_jax.data import packaged
from train import data

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config (its data section).")
_START = flags.DEFINE_integer("start", None, "First slice of the slab.", required=True)
_STOP = flags.DEFINE_integer("stop", None, "One past the last slice of the slab.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output .nii.gz path.", required=True)


def write_slab(path: str, source: str, start: int, stop: int, resolution: int) -> np.ndarray:
    """Writes slices ``start .. stop - 1`` of ``source`` as int16 HU ``[D, R, R]``; returns them."""
    volume, affine = io.read_nifti(packaged.resolve(source))
    if not 0 <= start < stop <= volume.shape[0]:
        raise ValueError(f"--start={start} --stop={stop} do not fit {volume.shape[0]} slices.")
    slab = np.rint(data.resample_hu(volume[start:stop], resolution)).astype(np.int16)
    affine = io.resized_affine(io.cropped_affine(affine, start), (stop - start,) +
                               volume.shape[1:], slab.shape)
    image = nib.Nifti1Image(slab.transpose(2, 1, 0), affine)
    image.header.set_xyzt_units("mm")
    folder = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".nii.gz", delete=False) as tmp:
        nib.save(image, tmp.name)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)
    return slab


def main(argv):
    del argv
    d = _CONFIG.value.data
    try:
        slab = write_slab(_OUT.value, d.path, _START.value, _STOP.value, int(d.resolution))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {_OUT.value}: {slab.shape} int16 HU, range [{slab.min()}, {slab.max()}]")


if __name__ == "__main__":
    app.run(main)
