"""Train the shipped ``phantom64`` prior: a small EDM U-Net on 64x64 phantom slices.

    python -m train --config configs/train_phantom.py --workdir workdirs/phantom64
    python -m train --config configs/train_phantom.py:smoke --workdir /tmp/smoke
"""

import ml_collections

from iscs_jax.cli import apply_arguments

from .base import get_base_config, shrink_training_for_smoke


def smoke(config: ml_collections.ConfigDict) -> None:
    """``:smoke``: 2 volumes of 8 slices, the tiny model of `shrink_training_for_smoke`, 40
    steps."""
    config.data.update(num_volumes=2, slices_per_volume=8)
    shrink_training_for_smoke(config)
    config.train.num_steps = 40


ARGUMENTS = {"smoke": smoke}


def get_config(arg=None) -> ml_collections.ConfigDict:
    """Args: arg: None or "smoke" (see `ARGUMENTS`)."""
    config = get_base_config()
    config.data = ml_collections.ConfigDict(dict(
        resolution=64, slices_per_volume=32, num_volumes=64,  # phantom seeds 0..63
        seed=0,  # batch order / flips
        flips=False,  # anatomy has a fixed orientation; 2048 procedural slices are plenty
    ))
    config.model = ml_collections.ConfigDict(dict(
        # Profiled on the shared 2-core CPU (batch 16, 64x64): 1.7 s/step under load;
        # widths 16/32/64 with attention at 16x16 took 3.1 s, 32/32/64 4.4 s.
        channels=1, base_width=16, channel_mults=(1, 2, 4, 4), num_blocks=1,
        attention_resolutions=(8,), num_heads=1, norm_groups=8, embedding_dim=32,
        sigma_data=0.2, data_mean=0.13,  # measured on the training slices: std 0.187, mean 0.132
    ))
    config.train = ml_collections.ConfigDict(dict(
        seed=0, batch_size=16, num_steps=2_000, learning_rate=1.5e-3, warmup_steps=100,
        final_lr_fraction=0.05, weight_decay=1e-4, grad_clip=1.0, ema_decay=0.995,
        sigma_min=0.01, sigma_max=50.0, log_every=25,
        chains=2,  # two independent halves of the batch per step (configs.base.unet128_train)
        dtype="float32",  # or bfloat16 (GPUs/TPUs): see train.models
    ))
    return apply_arguments(config, arg, ARGUMENTS)
