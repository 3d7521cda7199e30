"""Train the shipped ``mri128`` prior: an EDM U-Net on 128x128 coronal planes of brain MRI.

Data: the MNI152 2009a symmetric T1 template (197x233x189, 1 mm, skull-stripped) that ships
inside the PyPI package nilearn (``nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_
converted.nii.gz``), read by path (``pip install -e '.[mri-data]'``, or ``pip install
--no-deps nilearn``; nilearn is never imported). Coronal planes (``data.plane``) are the
planes that contain z, the ones z super-resolution reconstructs: each [189, 197] plane is
padded to 197x197 and resized to 128x128. The 48 coronal planes 92..139 through the centre
are held out (the embedded MRI demo volume, `iscs_jax.data.mri`); training uses planes
20..87 and 144..214 (a 4-plane gap on each side of the slab; planes outside hold no brain).

    python -m train --config configs/train_mri128.py --workdir workdirs/mri128
    python -m train --config configs/train_mri128.py:smoke --workdir /tmp/smoke
"""

import ml_collections

from iscs_jax.cli import apply_arguments

from .base import get_base_config, shrink_training_for_smoke, unet128_model, unet128_train

TEMPLATE = "pkg:nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def smoke(config: ml_collections.ConfigDict) -> None:
    """``:smoke``: 8 planes and the tiny model of `shrink_training_for_smoke`."""
    config.data.update(ranges=((60, 62), (150, 152)))
    shrink_training_for_smoke(config)


ARGUMENTS = {"smoke": smoke}


def get_config(arg=None) -> ml_collections.ConfigDict:
    """Args: arg: None or "smoke" (see `ARGUMENTS`)."""
    config = get_base_config()
    config.data = ml_collections.ConfigDict(dict(
        source="nifti", path=TEMPLATE, plane="coronal",
        ranges=((20, 88), (144, 215)),  # held out: 92..139 (iscs_jax.data.mri.HELD_OUT)
        slice_start=0, slice_stop=0,  # unused: `ranges` is set
        hu_min=0.0, hu_max=255.0,  # unused: `intensity_range` is set
        intensity_range=(0.0, 255.0),  # the template's stored uint8 range -> [0, 1]
        resolution=128, seed=0,
        mirror=True,  # left-right mirrored planes (the template is nearly symmetric)
        flips=False,  # no vertical flips: brains are not upside down
        augment=ml_collections.ConfigDict(dict(
            copies=12, rotation_degrees=6.0, zoom=0.06, shift=0.04, gain=0.06, z_blend=0.5)),
    ))
    # sigma_data / data_mean measured on the augmented training set: std 0.280, mean 0.136
    config.model = unet128_model(sigma_data=0.28, data_mean=0.14)
    config.train = unet128_train(num_steps=4_000)
    config.checkpoint.update(every=100, keep=3)
    return apply_arguments(config, arg, ARGUMENTS)
