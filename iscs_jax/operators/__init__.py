"""Measurement operators. Each has ``A``, ``AT`` and a ``slicewise`` flag (see PROTOCOL)."""

from iscs_jax.operators.filters import FILTERS, fbp_filter
from iscs_jax.operators.parallel_beam import (
    ParallelBeam,
    limited_angle_angles,
    sparse_view_angles,
)
from iscs_jax.operators.mri import CartesianMRI, cartesian_mask
from iscs_jax.operators.zaxis import ZBlur
from iscs_jax.operators.zsr import ZSuperResolution

__all__ = [
    "CartesianMRI",
    "ZSuperResolution",
    "cartesian_mask",
    "FILTERS",
    "ParallelBeam",
    "fbp_filter",
    "limited_angle_angles",
    "sparse_view_angles",
    "ZBlur",
]
