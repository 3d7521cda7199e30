"""Measurement operators, all following `operators.protocol` (``A``, ``AT``,
``measurement_shape``, ``coupling``, ``baseline`` / ``baseline_name``).

``OPERATORS`` maps a registered name to its class. Every registered class builds
itself from plain settings, ``cls.from_settings(volume_shape, *, plane, filter_name,
**settings)`` (`build` by name; `setting_names` lists a kind's settings), and says
what it is in one line, ``operator.describe()``. Registering an operator (and its
small example in ``tests/operator_examples.py``) puts it under the contract tests of
``tests/test_operator_contract.py``. Simulated measurement noise is
`operators.measurement`.
"""

import inspect

from iscs_jax.operators import divergent, measurement, protocol, scan
from iscs_jax.operators.cone_beam import ConeBeam
from iscs_jax.operators.fan_beam import FanBeam
from iscs_jax.operators.filters import FILTERS, fbp_filter
from iscs_jax.operators.parallel_beam import ParallelBeam
from iscs_jax.operators.mri import CartesianMRI, cartesian_mask
from iscs_jax.operators.protocol import COUPLINGS
from iscs_jax.operators.scan import (
    GEOMETRIES,
    PRESETS,
    arc_angles,
    full_orbit_angles,
    limited_angle_angles,
    short_scan_angles,
    sparse_view_angles,
    view_angles,
)
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
#: Kinds whose measured sinograms ``[slices, views, detectors]`` can be read per slice
#: (``accepts_sinogram``; ``measurement_shape()`` needs no slice count).
SINOGRAM_KINDS = tuple(kind for kind, cls in OPERATORS.items()
                       if getattr(cls, "accepts_sinogram", False))
#: Arguments every ``from_settings`` takes besides the operator's own settings.
COMMON_ARGUMENTS = ("plane", "filter_name")


def _operator_class(kind: str):
    if kind not in OPERATORS:
        raise ValueError(f"kind={kind!r} is not one of {sorted(OPERATORS)}.")
    return OPERATORS[kind]


def setting_names(kind: str) -> tuple[str, ...]:
    """The settings of ``kind``: the keyword arguments of its ``from_settings`` other than
    `COMMON_ARGUMENTS` (e.g. ``("geometry", "num_views", ...)`` for ``"parallel_beam"``)."""
    parameters = inspect.signature(_operator_class(kind).from_settings).parameters
    return tuple(name for name, p in parameters.items()
                 if p.kind is p.KEYWORD_ONLY and name not in COMMON_ARGUMENTS)


def build(kind: str, volume_shape, *, plane: str = "axial", filter_name: str = "ramp",
          **settings):
    """The operator ``OPERATORS[kind].from_settings(volume_shape, ...)``.

    Args:
      kind: a name of `OPERATORS`.
      volume_shape: ``(D, H, W)`` of the reconstructed stack of planes.
      plane: the planes reconstructed (``"axial"``, ``"coronal"``, ``"sagittal"``); the CT
        kinds measure axial slices only.
      filter_name: the filter of a filtered baseline (FBP / FDK), a key of `FILTERS`.
      **settings: the kind's own settings (`setting_names`).

    Raises:
      ValueError: an unknown kind or setting, or a setting out of range; the message names
        the argument as ``name=value``.
    """
    cls = _operator_class(kind)
    unknown = sorted(set(settings) - set(setting_names(kind)))
    if unknown:
        raise ValueError(f"{kind} takes the settings {list(setting_names(kind))}, not "
                         f"{unknown}.")
    volume_shape = tuple(int(s) for s in volume_shape)
    return cls.from_settings(volume_shape, plane=plane, filter_name=filter_name, **settings)

__all__ = [
    "COMMON_ARGUMENTS",
    "GEOMETRIES",
    "PRESETS",
    "SINOGRAM_KINDS",
    "build",
    "measurement",
    "scan",
    "setting_names",
    "view_angles",
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
