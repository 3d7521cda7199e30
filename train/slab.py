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

from iscs_jax import cli, io
from iscs_jax.data import packaged, prepare

from . import data

PROGRAM = cli.Program(
    name="python -m train.slab",
    summary="Writes a held-out slab of a training volume as an int16 HU NIfTI.",
    config="a training config (its data section: path, resolution), e.g. train_chest128.py.",
    configs=cli.sibling(__package__, "configs"),
    flags=(cli.Flag("start", "first slice of the slab.", type=int, metavar="INT"),
           cli.Flag("stop", "one past the last slice of the slab.", type=int, metavar="INT"),
           cli.Flag("out", "output .nii.gz path.", metavar="PATH")))


def write_slab(path: str, source: str, start: int, stop: int, resolution: int) -> np.ndarray:
    """Writes slices ``start .. stop - 1`` of ``source`` as int16 HU ``[D, R, R]``; returns them."""
    volume, affine = io.read_nifti(packaged.resolve(source))
    if not 0 <= start < stop <= volume.shape[0]:
        raise ValueError(f"--start={start} --stop={stop} do not fit {volume.shape[0]} slices.")
    part, part_affine = prepare.select_planes(volume, affine, "axial", start, stop - start)
    slab = np.rint(data.resample_hu(part, resolution)).astype(np.int16)
    affine, _ = prepare.plane_grid_affine(part_affine, part.shape, "axial", resolution)
    image = nib.Nifti1Image(slab.transpose(2, 1, 0), affine)
    image.header.set_xyzt_units("mm")
    folder = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".nii.gz", delete=False) as tmp:
        nib.save(image, tmp.name)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)
    return slab


def _write(args) -> None:
    d = args.config.data
    slab = write_slab(args.out, d.path, args.start, args.stop, int(d.resolution))
    print(f"wrote {args.out}: {slab.shape} int16 HU, range [{slab.min()}, {slab.max()}]")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    return cli.main(PROGRAM, _write, argv, errors=(ValueError, FileNotFoundError))


if __name__ == "__main__":
    sys.exit(main())
