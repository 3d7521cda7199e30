"""Train a prior on your own scans: a folder, glob or list file of NIfTI files / DICOM series.

    python -m train --config configs/train_folder.py --config.data.path=DIR --workdir W
    python -m train --config configs/train_folder.py:smoke --config.data.path=DIR --workdir W

Volumes are streamed (`train.dataset`: read lazily, a bounded cache, augmentation on the fly),
split by volume into training and validation (``workdir/split.json``); the model is the
chest128 U-Net (`configs.base.unet128_model`). ``:smoke`` is a tiny model on 32x32 planes for
20 steps. See docs/training.md.
"""

import ml_collections

from iscs_jax.cli import apply_arguments

from .base import get_base_config, shrink_training_for_smoke, unet128_model, unet128_train


def smoke(config: ml_collections.ConfigDict) -> None:
    """``:smoke``: the tiny model of `shrink_training_for_smoke`, validation every 10 steps on
    4 planes, one volume in memory at a time."""
    shrink_training_for_smoke(config)
    config.data.update(val_planes=4, cache_volumes=2, mix_volumes=1, loader_threads=1)
    config.train.update(eval_every=10, sample_every=20, num_samples=2, chains=1)


ARGUMENTS = {"smoke": smoke}


def get_config(arg=None) -> ml_collections.ConfigDict:
    """Args: arg: None or "smoke" (see `ARGUMENTS`)."""
    config = get_base_config()
    config.data = ml_collections.ConfigDict(dict(
        source="folder",
        path="",  # a folder, a glob ('scans/*.nii.gz') or a list file (.txt, one path a line)
        # Held-out volumes: a fraction drawn from `seed`, or explicit paths (folder, glob or
        # list file; train_paths defaults to `path` less the validation volumes).
        val_fraction=0.1, train_paths="", val_paths="", val_planes=16,
        # The CLI's preparation: HU window over the air floor ("hu"), or "minmax" / "none".
        intensity="hu", hu_min=-1000.0, hu_max=1600.0,
        plane="axial", resolution=128,
        orientation="LAS",  # every volume is reoriented to these axis codes (the demo slab's)
        seed=0,  # split, batch order, augmentation draws
        cache_volumes=4,  # prepared volumes held in memory (>= 2 x mix_volumes)
        mix_volumes=2,  # volumes whose planes are shuffled together
        loader_threads=2, prefetch_batches=2,
        flips=False,  # fixed anatomical orientation; the augmentation below varies pose
        augment=ml_collections.ConfigDict(dict(
            rotation_degrees=8.0, zoom=0.08, shift=0.04, gain=0.04, z_blend=0.5)),
    ))
    # sigma_data / data_mean of chest CT in the default window (configs/train_chest128.py);
    # measure them on your data for another modality or window.
    config.model = unet128_model(sigma_data=0.18, data_mean=0.16)
    config.train = unet128_train(num_steps=20_000)
    config.train.update(
        eval_every=250,  # held-out loss on the validation planes (train/logs.py)
        val_sigmas=(0.05, 0.2, 1.0, 5.0),
        sample_every=1000, sample_sigma=0.5, num_samples=4)  # denoised images (TensorBoard)
    config.checkpoint.update(every=500, keep=3)
    return apply_arguments(config, arg, ARGUMENTS)
