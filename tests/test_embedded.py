"""Tests of data.embedded: the shipped demo volumes and the windows they are stored for."""

import numpy as np
import pytest

from iscs_jax import orientation
from iscs_jax.data import embedded, mri, phantom
from iscs_jax.priors import format as prior_format


def test_phantom_is_generated_at_the_resolution():
    volume, affine, source = embedded.load("phantom", resolution=16, phantom_seed=7,
                                           phantom_slices=3)
    np.testing.assert_array_equal(volume, phantom.phantom_volume(7, (3, 16, 16)))
    np.testing.assert_array_equal(affine, embedded.PHANTOM_AFFINE)
    assert orientation.axis_codes(affine) == tuple(prior_format.PHANTOM_ORIENTATION)
    assert source == "phantom (seed 7)"
    with pytest.raises(ValueError, match="phantom_slices=0"):
        embedded.load("phantom", resolution=16, phantom_slices=0)


def test_files_are_read_and_stored_windows():
    volume, affine, source = embedded.load("mri", resolution=16)
    assert volume.ndim == 3 and affine.shape == (4, 4) and source == "embedded mri"
    assert embedded.stored_window("mri") == ("range", mri.INTENSITY_RANGE, None)
    assert embedded.stored_window("phantom")[0] == "none"
    assert embedded.stored_window("chest_ct") is None  # in HU: the caller's window
    assert set(embedded.NAMES) == {"chest_ct", "mri", "phantom"}
    with pytest.raises(ValueError, match="name='knee'"):
        embedded.load("knee", resolution=16)
