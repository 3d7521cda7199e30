"""NCSN++ of the published 256x256 score_sde CT priors (DiffusionMBIR, DDS, ISCS AAPM priors).

``python -m iscs_jax.convert --checkpoint ckpt.pth --model-config configs/models/ncsnpp_256.py
--out priors/aapm256`` converts such a checkpoint. Sections: ``architecture``, ``model``
(score_sde's ``config.model`` / ``config.data`` names, `iscs_jax.models.ncsnpp.NCSNppConfig`)
and ``intensity`` (what the prior's [0, 1] images are: HU windowed to [-1000, 1600]).
``ncsnpp_256.py:tiny`` is a 32x32 network of the same family for tests.
"""

import ml_collections

from iscs_jax.cli import apply_arguments


def tiny(config: ml_collections.ConfigDict) -> None:
    """``:tiny``: 32x32, three levels with attention at 16 (exercises the per-block attention
    too)."""
    config.model.update(image_size=32, nf=16, ch_mult=(1, 2, 2), num_res_blocks=1,
                        num_scales=10, init_scale=1.0)


ARGUMENTS = {"tiny": tiny}


def get_config(arg=None):
    """Args: arg: None or "tiny" (see `ARGUMENTS`)."""
    config = ml_collections.ConfigDict()
    config.architecture = "ncsnpp"
    config.model = ml_collections.ConfigDict(dict(
        image_size=256, num_channels=1, nf=128, ch_mult=(1, 2, 2, 2), num_res_blocks=4,
        attn_resolutions=(16,),  # never matches 256/128/64/32: the only attention is the middle one
        resblock_type="biggan", fir=True, fir_kernel=(1, 3, 3, 1), skip_rescale=True,
        progressive="none", progressive_input="residual", progressive_combine="sum",
        embedding_type="fourier", fourier_scale=16.0, scale_by_sigma=True, init_scale=0.0,
        conv_size=3, centered=False,  # the model maps x in [0, 1] to 2x - 1 itself
        num_scales=2000, sigma_min=0.01, sigma_max=378.0))  # VE training range
    config.intensity = ml_collections.ConfigDict(dict(kind="hu_window", hu_min=-1000.0,
                                                      hu_max=1600.0))
    return apply_arguments(config, arg, ARGUMENTS)
