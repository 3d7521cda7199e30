"""Measurement operators. Each has ``A``, ``AT`` and a ``slicewise`` flag."""

from iscs_jax.operators.filters import FILTERS, fbp_filter
from iscs_jax.operators.parallel_beam import (
    ParallelBeam,
    limited_angle_angles,
    sparse_view_angles,
)
from iscs_jax.operators.zaxis import ZBlur

__all__ = [
    "FILTERS",
    "ParallelBeam",
    "fbp_filter",
    "limited_angle_angles",
    "sparse_view_angles",
    "ZBlur",
]
