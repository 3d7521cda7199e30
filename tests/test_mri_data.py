"""Tests of data.mri: the embedded MRI slab and its provenance (the held-out template planes)."""

import numpy as np
import pytest

from iscs_jax import io
from iscs_jax.data import mri, packaged
from configs import train_mri128


def test_demo_volume_is_the_held_out_coronal_slab():
    volume, affine = mri.demo_volume()
    start, stop = mri.HELD_OUT
    assert volume.shape == (189, stop - start, 197)  # [D = z, H = y planes, W = x]
    assert 0 <= volume.min() and volume.max() <= 255
    # World coordinates of the slab's first plane: the template's plane HELD_OUT[0]
    # (the template's affine is 1 mm, origin (-98, -134, -72)).
    np.testing.assert_allclose(affine @ [0, 0, 0, 1], [-98.0, -134.0 + start, -72.0, 1.0])


def test_training_planes_never_cross_the_held_out_slab():
    config = train_mri128.get_config()
    assert config.data.plane == "coronal" and config.data.path == mri.TEMPLATE
    start, stop = mri.HELD_OUT
    for first, end in config.data.ranges:
        assert end <= start or first >= stop


def test_demo_volume_matches_the_template_when_installed():
    try:
        template = packaged.resolve(mri.TEMPLATE)
    except FileNotFoundError:
        pytest.skip("nilearn (the optional 'mri-data' extra) is not installed")
    full, affine = io.read_nifti(template)
    slab, slab_affine = mri.demo_volume()
    np.testing.assert_array_equal(slab, full[:, mri.HELD_OUT[0]:mri.HELD_OUT[1], :])
    shift = np.eye(4)
    shift[1, 3] = mri.HELD_OUT[0]
    np.testing.assert_allclose(slab_affine, affine @ shift)
