"""2D diffusion models: an NNX U-Net with EDM preconditioning, and NCSN++ (`ncsnpp`)."""

from iscs_jax.models.precond import (edm_loss_weight, edm_scalings, make_denoise_fn,
                                     precondition)
from iscs_jax.models import ncsnpp
from iscs_jax.models.unet import UNet, UNetConfig

__all__ = ["UNet", "UNetConfig", "ncsnpp", "edm_scalings", "edm_loss_weight", "precondition",
           "make_denoise_fn"]
