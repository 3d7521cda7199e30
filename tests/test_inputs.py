"""`iscs_jax.data.inputs`: orienting, preparing and reading a reconstruction's inputs."""

import numpy as np
import pytest

from iscs_jax.data import inputs, prepare
from iscs_jax.operators import ParallelBeam


def test_orient_without_codes_keeps_the_arrays_and_says_why():
    volume, affine, notes = np.random.default_rng(0).random((3, 6, 6)), np.eye(4), []
    same, same_affine, found = inputs.orient(volume, affine, None, notes=notes, why="no codes")
    assert same is volume and same_affine is affine and found is None
    assert notes == ["input orientation RAS: used in its stored array order; no codes"]
    with pytest.raises(ValueError, match="holds no axial images.*plane="):
        inputs.orient(volume[:, :1], affine, None)


def test_prepare_reference_gives_windowed_planes_and_the_input_grid():
    volume = np.linspace(-1000.0, 600.0, 4 * 6 * 6).reshape(4, 6, 6)
    planes, affine, grid = inputs.prepare_reference(
        volume, np.eye(4), resolution=8, start=1, count=2,
        window=prepare.intensity_window("hu"))
    assert planes.shape == (2, 8, 8) and 0.0 <= planes.min() < planes.max() <= 1.0
    assert affine.shape == (4, 4) and prepare.to_input_volume(planes, grid)[0].shape == (2, 6, 6)
    with pytest.raises(ValueError, match="check_intensity=False"):
        inputs.prepare_reference(volume / 2000.0 + 0.5, np.eye(4), resolution=8,
                                 window=prepare.intensity_window("hu"), check_hu=True)


def test_read_measurement_applies_the_slice_range_and_checks_the_slice_count(tmp_path):
    operator = ParallelBeam((8, 8), (0.0, 1.0, 2.0))
    y = np.arange(5 * np.prod(operator.measurement_shape()), dtype=np.float32)
    np.save(tmp_path / "y.npy", y.reshape(5, *operator.measurement_shape()))
    got = inputs.read_measurement(str(tmp_path / "y.npy"), operator, start=1, count=3)
    np.testing.assert_array_equal(got, y.reshape(5, -1)[1:4].reshape(got.shape))
    with pytest.raises(ValueError, match="has 3 slices but the reference volume has 2"):
        inputs.read_measurement(str(tmp_path / "y.npy"), operator, start=1, count=3,
                                num_slices=2)
