"""Tests of iscs_jax.orientation (axis codes, reorient, restore)."""

import itertools

import nibabel.orientations as nio
import numpy as np
import pytest

from iscs_jax import orientation

AFFINE = np.array([[-0.7, 0, 0, 12.0], [0, 0.8, 0, -30.0], [0, 0, 2.5, 40.0], [0, 0, 0, 1.0]])


def _world(affine, shape):
    """World coordinates ``[D, H, W, 3]`` of every voxel of a ``[D, H, W]`` volume."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    index = np.stack([i, j, k, np.ones_like(i)], axis=-1)
    return (index @ np.asarray(affine).T)[..., :3]


def _all_orientations():
    """The 48 axis codes: every permutation of (L/R, A/P, I/S) with every choice of ends."""
    for order in itertools.permutations(range(3)):
        for ends in itertools.product((0, 1), repeat=3):
            yield tuple(orientation._PAIRS[a][e] for a, e in zip(order, ends))


def _stored_as(volume, affine, codes):
    """``volume`` stored as another file would hold it: in ``codes``, via nibabel directly."""
    ornt = nio.ornt_transform(nio.io_orientation(affine), nio.axcodes2ornt(codes))
    data = nio.apply_orientation(volume.transpose(2, 1, 0), ornt)
    return data.transpose(2, 1, 0), affine @ nio.inv_ornt_aff(ornt, volume.shape[::-1])


def test_axis_codes_describe_the_nifti_axes():
    assert orientation.axis_codes(AFFINE) == ("L", "A", "S")
    assert orientation.axis_codes(np.eye(4)) == ("R", "A", "S")
    assert orientation.axis_codes(np.diag([-1.0, -1.0, 1.0, 1.0])) == ("L", "P", "S")
    swapped = np.eye(4)[[2, 1, 0, 3]]  # i along z, k along x
    assert orientation.axis_codes(swapped) == ("S", "A", "R")


def test_reorient_round_trip_and_world_positions():
    volume = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(np.float32)
    moved, moved_affine = orientation.reorient(volume, AFFINE, "PSR")
    assert orientation.axis_codes(moved_affine) == ("P", "S", "R")
    assert moved.shape == (5, 3, 4)  # k <- R (was i, W=5), j <- S (k, D=3), i <- P (j, H=4)
    # every voxel keeps its world position: same value at the same world point
    world, moved_world = _world(AFFINE, volume.shape), _world(moved_affine, moved.shape)
    lookup = {tuple(np.round(p, 6)): v for p, v in zip(world.reshape(-1, 3), volume.ravel())}
    for p, v in zip(moved_world.reshape(-1, 3), moved.ravel()):
        assert lookup[tuple(np.round(p, 6))] == v
    back, back_affine = orientation.restore(moved, moved_affine, orientation.axis_codes(AFFINE))
    np.testing.assert_array_equal(back, volume)
    np.testing.assert_allclose(back_affine, AFFINE, atol=1e-12)


def test_reorient_is_a_no_op_in_its_own_codes():
    volume = np.arange(24.0).reshape(2, 3, 4)
    moved, moved_affine = orientation.reorient(volume, AFFINE, "las")
    assert moved is volume
    np.testing.assert_array_equal(moved_affine, AFFINE)
    assert orientation.describe("LAS", "LAS").startswith("none")


def test_all_48_orientations_reorient_to_the_same_array():
    volume = np.random.default_rng(1).normal(size=(2, 3, 4)).astype(np.float32)
    codes = list(_all_orientations())
    assert len(set(codes)) == 48
    for stored in codes:
        data, affine = _stored_as(volume, AFFINE, stored)
        assert orientation.axis_codes(affine) == stored
        back, back_affine = orientation.reorient(data, affine, "LAS")
        np.testing.assert_array_equal(back, volume, err_msg=str(stored))
        np.testing.assert_allclose(back_affine, AFFINE, atol=1e-12, err_msg=str(stored))
        again, again_affine = orientation.restore(back, back_affine, stored)
        np.testing.assert_array_equal(again, data)
        np.testing.assert_allclose(again_affine, affine, atol=1e-12)


def test_describe_names_the_flips_and_permutations():
    assert orientation.describe("LPS", "LAS") == "flipped j (rows, H)"
    assert "permuted" in orientation.describe("SAL", "LAS")
    assert "flipped" not in orientation.describe("SAL", "LAS")


def test_small_obliquity_is_a_note_and_large_is_an_error():
    tilt = lambda degrees: np.array([  # noqa: E731  rotation about x
        [1, 0, 0, 0], [0, np.cos(np.radians(degrees)), -np.sin(np.radians(degrees)), 0],
        [0, np.sin(np.radians(degrees)), np.cos(np.radians(degrees)), 0], [0, 0, 0, 1.0]])
    assert orientation.check_obliquity(np.eye(4)) == []
    notes = orientation.check_obliquity(tilt(17.0))
    assert notes and "17 degrees" in notes[0]
    assert orientation.axis_codes(tilt(17.0)) == ("R", "A", "S")
    with pytest.raises(orientation.OrientationError, match="oblique.*45.0 degrees"):
        orientation.axis_codes(tilt(45.0))
    with pytest.raises(orientation.OrientationError, match="degenerate"):
        orientation.axis_codes(np.diag([1.0, 0.0, 1.0, 1.0]))


@pytest.mark.parametrize("codes", ["LA", "LAL", "XYZ", "LRS"])
def test_bad_codes_are_refused(codes):
    with pytest.raises(orientation.OrientationError, match="L/R, A/P, S/I"):
        orientation.normalize_codes(codes)
