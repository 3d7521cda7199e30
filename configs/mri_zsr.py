"""MRI z super-resolution: thick slices (factor 4 along z) -> an isotropic volume.

Each measured slice is the mean of ``operator.factor`` consecutive 1 mm slices along z.
The ``mri128`` prior reconstructs coronal planes (``data.plane``; they contain z) of the
embedded MRI slab, stacked along y, with DDS; ``compare`` runs iid and ISCS noise.

    python -m sample --config mri_zsr.py
    python -m sample --config mri_zsr.py:smoke
    python -m sample --config mri_zsr.py --config.data.path=scan.nii.gz --config.operator.factor=3
"""

from iscs_jax.cli import apply_arguments

from . import sample_base

ARGUMENTS = sample_base.MRI_ARGUMENTS  # smoke


def get_config(arg=None):
    """Args: arg: None or "smoke" (see `ARGUMENTS`)."""
    config = sample_base.get_mri_config("zsr")
    config.operator.factor = 4
    # Warm start from the linear baseline and a short schedule: sigma_max 0.3 measured best of
    # 0.3 / 1 / 2 on held-out planes (the thick slices pin down all but the z detail);
    # A^T A has one nonzero eigenvalue, so CG converges in one iteration.
    config.sde.sigma_max = 0.3
    config.sampler.dds.cg_iters = 5
    return apply_arguments(config, arg, ARGUMENTS)
