"""Tests for the deterministic augmentation and packaged-data paths."""

import numpy as np
import pytest

from iscs_jax.data import augment, packaged


def _blob(size=33):
    y, x = np.mgrid[:size, :size].astype(np.float64)
    return np.exp(-((y - 10) ** 2 / 18 + (x - 20) ** 2 / 8)).astype(np.float32)


def test_affine_warp_rotation_by_90_degrees_is_rot90():
    image = _blob()
    warped = augment.affine_warp(image, 90.0, 1.0, (0.0, 0.0))
    turned = [np.rot90(image, k) for k in (1, 3)]
    errors = [np.abs(warped - t).max() for t in turned]
    assert min(errors) < 1e-4, errors
    assert max(errors) > 0.1  # the direction of the rotation matters


def test_affine_warp_zoom_and_shift_move_the_centre_of_mass():
    image = _blob()
    cy, cx = (np.asarray(image.shape) - 1) / 2

    def centre(im):
        y, x = np.mgrid[:im.shape[0], :im.shape[1]]
        return np.array([(im * y).sum(), (im * x).sum()]) / im.sum()

    c0 = centre(image)
    shifted = centre(augment.affine_warp(image, 0.0, 1.0, (2.0, -3.0)))
    np.testing.assert_allclose(shifted, c0 + [2.0, -3.0], atol=0.05)
    zoomed = centre(augment.affine_warp(image, 0.0, 1.2, (0.0, 0.0)))
    np.testing.assert_allclose(zoomed - [cy, cx], 1.2 * (c0 - [cy, cx]), atol=0.1)


def test_augment_slices_is_deterministic_keeps_originals_and_stays_in_range():
    rng = np.random.default_rng(0)
    slices = rng.random((3, 16, 16)).astype(np.float32)
    aug = augment.Augmentation(copies=4, rotation_degrees=10, zoom=0.1, shift=0.05, gain=0.1,
                               z_blend=0.5)
    a = augment.augment_slices(slices, aug, seed=3)
    b = augment.augment_slices(slices, aug, seed=3)
    c = augment.augment_slices(slices, aug, seed=4)
    assert a.shape == (12, 16, 16) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.1
    np.testing.assert_array_equal(a[::4], slices)  # copy 0 of each slice is the slice
    assert a.min() >= 0.0 and a.max() <= 1.0


@pytest.mark.parametrize("field,value", [("copies", 0), ("zoom", 1.0), ("gain", -0.1),
                                         ("z_blend", 1.5)])
def test_augmentation_rejects_bad_ranges(field, value):
    with pytest.raises(ValueError, match=field):
        augment.Augmentation(**{field: value})


def test_packaged_resolve_finds_files_without_importing_and_explains_missing_packages():
    assert packaged.resolve("plain/path.nii") == "plain/path.nii"
    found = packaged.resolve("pkg:numpy/__init__.py")
    assert found.endswith("__init__.py")
    with pytest.raises(FileNotFoundError, match="not installed"):
        packaged.resolve("pkg:no_such_package_xyz/data.nii.gz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        packaged.resolve("pkg:numpy/no_such_file.nii.gz")
