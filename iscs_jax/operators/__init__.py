"""Measurement operators, all following `operators.protocol` (``A``, ``AT``,
``measurement_shape``, ``coupling``, ``baseline`` / ``baseline_name``).

``OPERATORS`` maps a registered name to its class; registering an operator
(and its small example in ``tests/operator_examples.py``) puts it under the
contract tests of ``tests/test_operator_contract.py``.
"""

from iscs_jax.operators import divergent, protocol
from iscs_jax.operators.cone_beam import (
    ConeBeam,
    arc_angles,
    full_orbit_angles,
    short_scan_angles,
)
from iscs_jax.operators.fan_beam import FanBeam
from iscs_jax.operators.filters import FILTERS, fbp_filter
from iscs_jax.operators.parallel_beam import (
    ParallelBeam,
    limited_angle_angles,
    sparse_view_angles,
)
from iscs_jax.operators.mri import CartesianMRI, cartesian_mask
from iscs_jax.operators.protocol import COUPLINGS
from iscs_jax.operators.zaxis import ZBlur
from iscs_jax.operators.zsr import ZSuperResolution

#: Registered operators by name (see `operators.protocol`).
OPERATORS = {
    "parallel_beam": ParallelBeam,
    "fan_beam": FanBeam,
    "cone_beam": ConeBeam,
    "zblur": ZBlur,
    "zsr": ZSuperResolution,
    "cartesian_mri": CartesianMRI,
}

__all__ = [
    "CartesianMRI",
    "ZSuperResolution",
    "cartesian_mask",
    "ConeBeam",
    "FanBeam",
    "arc_angles",
    "full_orbit_angles",
    "short_scan_angles",
    "COUPLINGS",
    "FILTERS",
    "OPERATORS",
    "ParallelBeam",
    "fbp_filter",
    "limited_angle_angles",
    "protocol",
    "sparse_view_angles",
    "ZBlur",
]
