"""One small example instance per registered operator (`operators.OPERATORS`).

Each entry is ``name -> (operator, volume_shape)``, ``volume_shape`` the ``[D, H, W]``
the operator is applied to (for slice-wise and halo operators D is free; the
examples use a D that 2 and 4 devices do not divide). Registering an operator
means adding it here too: `tests/test_operator_contract.py` checks that every
registered name has an example, then runs its contract on it.
"""

import numpy as np

from iscs_jax import operators


def examples() -> dict:
    """name -> (operator, volume_shape); tiny shapes so the contract runs in seconds."""
    beam = operators.ParallelBeam((10, 9), tuple(np.linspace(0.1, 3.0, 5)))
    cone = operators.ConeBeam((5, 8, 7), tuple(np.linspace(0.2, 6.0, 5)), source_origin=20.0,
                              origin_detector=15.0, detector_shape=(6, 9),
                              detector_spacing=(2.0, 1.8), voxel_size=(1.5, 1.0, 1.2),
                              view_chunk=2)
    fan = operators.FanBeam((8, 7), tuple(np.linspace(0.2, 6.0, 5)), source_origin=20.0,
                            origin_detector=15.0, num_detectors=11, detector_spacing=1.5,
                            pixel_size=(1.0, 1.2), view_chunk=2)
    return {
        "cone_beam": (cone, (5, 8, 7)),
        "fan_beam": (fan, (5, 8, 7)),
        "parallel_beam": (beam, (5, 10, 9)),
        "zblur": (operators.ZBlur((0.1, 0.2, 0.4, 0.2, 0.1), image_shape=(6, 7)), (5, 6, 7)),
        # Thick slices along the slice axis (a partial last block: 5 = 2 + 2 + 1).
        "zsr": (operators.ZSuperResolution(2, (6, 7), z_axis=0, depth=5), (5, 6, 7)),
        # Complex k-space measurements (the contract then uses Re <A x, y>).
        "cartesian_mri": (operators.CartesianMRI((6, 8), 2.0, 0.25, seed=1), (5, 6, 8)),
    }
