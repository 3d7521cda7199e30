"""One small example instance per registered operator (`operators.OPERATORS`).

Each entry is ``name -> (operator, volume_shape)``, ``volume_shape`` the ``[D, H, W]``
the operator is applied to (for slice-wise and halo operators D is free; the
examples use a D that 2 and 4 devices do not divide). Registering an operator
means adding it here too: `tests/test_operator_contract.py` checks that every
registered name has an example, then runs its contract on it. `settings_examples`
gives, per name, settings for ``operators.build`` with the operator they must build
and its description.
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


def settings_examples() -> dict:
    """name -> (volume_shape, ``operators.build`` keyword arguments, the operator they
    build, its ``describe()``); the expected operators are written out by hand."""
    fan_angles = np.deg2rad(np.arange(6) * 15.0)  # limited angle, 6 views over 90 degrees
    return {
        "parallel_beam": ((3, 10, 9), dict(num_views=4, num_detectors=15, filter_name="hann"),
                          operators.ParallelBeam((10, 9), np.arange(4) * (np.pi / 4), 15,
                                                 filter="hann"),
                          "parallel_beam sparse_view, 4 views"),
        # The scaled preset for 16 voxels across: distances x 16 / 256, 2 x 16 columns.
        "fan_beam": ((3, 16, 16), dict(geometry="limited_angle", num_views=6,
                                       range_degrees=90.0),
                     operators.FanBeam((16, 16), fan_angles, source_origin=43.75,
                                       origin_detector=31.25, num_detectors=32,
                                       detector_spacing=2.0),
                     "fan_beam limited_angle, 6 views"),
        "cone_beam": ((4, 16, 16), dict(preset="paper", num_views=5),
                      operators.ConeBeam((4, 16, 16), np.arange(5) * (2 * np.pi / 5),
                                         source_origin=700.0, origin_detector=500.0,
                                         detector_shape=(512, 512), detector_spacing=(2.0, 2.0)),
                      "cone_beam sparse_view, 5 views"),
        "zblur": ((3, 6, 7), dict(kernel=(0.2, 0.6, 0.2)),
                  operators.ZBlur((0.2, 0.6, 0.2), image_shape=(6, 7)), "z blur (3 taps)"),
        # Coronal planes [Y, Z, X]: z is the rows of each image (z_axis 1), slice-wise.
        "zsr": ((5, 8, 7), dict(plane="coronal", factor=2),
                operators.ZSuperResolution(2, (8, 7), z_axis=1), "z super-resolution x2"),
        "cartesian_mri": ((3, 8, 16), dict(plane="sagittal", acceleration=4.0,
                                           center_fraction=0.125, mask_seed=3),
                          operators.CartesianMRI((8, 16), 4.0, 0.125, seed=3),
                          "Cartesian MRI R=4, 4 lines"),
    }
