"""Compressed-sensing MRI: single-coil Cartesian k-space, R = 4 with an 8% fully sampled centre.

Every coronal plane of the embedded MRI slab is measured on a variable-density set of
phase-encoding lines (``operator.acceleration``, ``operator.center_fraction``,
``operator.mask_seed``); the ``mri128`` prior reconstructs them with DDS, warm-started
from the zero-filled inverse FFT; ``compare`` runs iid and ISCS noise.

    python -m sample --config mri_cs.py
    python -m sample --config mri_cs.py:smoke
    python -m sample --config mri_cs.py --config.data.path=scan.nii.gz
"""

from iscs_jax.cli import apply_arguments

from . import sample_base

ARGUMENTS = sample_base.MRI_ARGUMENTS  # smoke


def get_config(arg=None):
    """Args: arg: None or "smoke" (see `ARGUMENTS`)."""
    config = sample_base.get_mri_config("cartesian_mri")
    config.operator.acceleration = 4.0
    config.operator.center_fraction = 0.08
    return apply_arguments(config, arg, ARGUMENTS)
