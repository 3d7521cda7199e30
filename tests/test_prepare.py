"""Tests of data.prepare (planes, square padding, resize, window) and the one-reader rule:
the trainer turns a NIfTI file into the images of `prepare.prepare_volume`, as the CLI
does (tests/test_sample_cli.py)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from iscs_jax import io
from iscs_jax.data import prepare
from train import data as train_data

HU_RANGE = (-1000.0, 1600.0)


def _asymmetric_volume(shape=(12, 5, 9)):
    """A [D, H, W] volume in HU whose every axis and direction is distinguishable."""
    d, h, w = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return (-900.0 + 97.0 * d + 31.0 * h ** 1.5 + 13.0 * w + 5.0 * d * w).astype(np.float32)


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_planes_round_trip_and_z_axis(plane):
    volume = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    planes = prepare.to_planes(volume, plane)
    np.testing.assert_array_equal(prepare.from_planes(planes, plane), volume)
    z = prepare.z_axis(plane)
    assert planes.shape[z] == 2  # z (D) is the stack axis (axial) or the rows of each plane
    if plane == "coronal":
        np.testing.assert_array_equal(planes[1], volume[:, 1, :])  # plane y = [z, x]


def test_square_padding_keeps_the_image_centred():
    planes = np.ones((1, 3, 7), np.float32)
    padded = prepare.pad_to_square(planes, value=-5.0)
    assert padded.shape == (1, 7, 7)
    np.testing.assert_array_equal(padded[0, 2:5], 1.0)
    np.testing.assert_array_equal(padded[0, [0, 1, 5, 6]], -5.0)
    assert prepare.square_padding(189, 197) == ((4, 4), (0, 0))


def test_windows():
    volume = np.array([[[-1100.0, 300.0, 1700.0]]])
    np.testing.assert_allclose(prepare.apply_window(volume, "range", HU_RANGE),
                               [[[0.0, 0.5, 1.0]]])
    np.testing.assert_allclose(prepare.apply_window(volume, "minmax"), [[[0.0, 0.5, 1.0]]])
    with pytest.raises(ValueError, match="window"):
        prepare.apply_window(volume, "bone")


def _world(affine, ijk):
    return (affine @ np.append(np.asarray(ijk, float), 1.0))[:3]


def test_resized_affine_matches_jax_image_resize():
    """A linear function of world coordinates, resampled, is that function on the new grid."""
    affine = np.array([[0.9, 0.1, 0, 4], [-0.2, 1.1, 0, -3], [0, 0, 3.0, 7], [0, 0, 0, 1.0]])
    old_shape, new_shape = (2, 6, 8), (2, 12, 16)
    coef = np.array([0.3, -0.7, 0.2])
    old = np.zeros(old_shape)
    for d, h, w in np.ndindex(*old_shape):
        old[d, h, w] = coef @ _world(affine, (w, h, d))
    new = np.asarray(jax.image.resize(jnp.asarray(old), new_shape, method="linear"))
    new_affine = prepare.resized_affine(affine, old_shape, new_shape)
    np.testing.assert_allclose(io.voxel_spacing(new_affine), io.voxel_spacing(affine) / [2, 2, 1])
    for d, h, w in [(0, 3, 4), (1, 8, 11), (1, 5, 2)]:  # interior voxels (no edge clamping)
        np.testing.assert_allclose(new[d, h, w], coef @ _world(new_affine, (w, h, d)), atol=1e-5)


def test_cropped_affine_moves_origin_along_slices():
    affine = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0.5, 2, 10], [0, 0, 0, 1.0]])
    cropped = prepare.cropped_affine(affine, 3)
    np.testing.assert_allclose(_world(cropped, (1, 2, 0)), _world(affine, (1, 2, 3)))


@pytest.mark.parametrize("plane", ["coronal", "sagittal", "axial"])
def test_grid_affine_maps_each_output_voxel_to_its_input_position(plane):
    volume = _asymmetric_volume()
    affine = np.array([[0.9, 0.1, 0, 3.0], [0, 1.1, 0.2, -4.0], [0.1, 0, 2.0, 5.0], [0, 0, 0, 1]])
    planes = prepare.prepare_planes(volume, plane=plane, window="none")  # padding, no resize
    out = prepare.from_planes(planes, plane)
    grid_affine, shape = prepare.plane_grid_affine(affine, volume.shape, plane)
    assert out.shape == shape
    # Every input voxel is found in the output at the voxel the two affines agree on.
    inverse = np.linalg.inv(grid_affine) @ affine
    for d, h, w in [(0, 0, 0), (11, 4, 8), (5, 2, 7)]:
        i, j, k = (inverse @ [w, h, d, 1.0])[:3]  # NIfTI (i, j, k) = [D, H, W] reversed
        assert np.allclose([i, j, k], np.round([i, j, k]))
        assert out[int(round(k)), int(round(j)), int(round(i))] == volume[d, h, w]


def test_intensity_window():
    assert prepare.intensity_window("hu", -100, 300) == ("range", (-100.0, 300.0),
                                                          prepare.AIR_HU)
    assert prepare.intensity_window("minmax") == ("minmax", (0.0, 1.0), None)
    assert prepare.intensity_window("none")[0] == "none"
    with pytest.raises(ValueError, match="intensity='bone'"):
        prepare.intensity_window("bone")
    with pytest.raises(ValueError, match="hu_min=5.0 and hu_max=5.0"):
        prepare.intensity_window("hu", 5, 5)


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal"])
def test_select_planes_crops_the_stack_axis_and_moves_the_origin(plane):
    volume = _asymmetric_volume()
    affine = np.diag([0.8, 1.2, 2.0, 1.0])
    cropped, cropped_affine = prepare.select_planes(volume, affine, plane, start=1, count=3)
    axis = prepare.PLANES[plane][0]
    np.testing.assert_array_equal(cropped, np.take(volume, [1, 2, 3], axis=axis))
    np.testing.assert_array_equal(cropped_affine, prepare.cropped_affine(affine, 1, axis))
    everything, _ = prepare.select_planes(volume, affine, plane, start=1)  # count 0: to the end
    assert everything.shape[axis] == volume.shape[axis] - 1
    with pytest.raises(ValueError, match="start=2, count=99"):
        prepare.select_planes(volume, affine, plane, start=2, count=99)


def test_prepare_volume_is_select_then_prepare_with_the_grid_affine():
    volume, affine = _asymmetric_volume(), np.diag([0.8, 1.2, 2.0, 1.0])
    planes, grid = prepare.prepare_volume(volume, affine, resolution=6, plane="coronal",
                                          start=1, count=3, window="range",
                                          window_range=HU_RANGE, floor=prepare.AIR_HU)
    part, part_affine = prepare.select_planes(volume, affine, "coronal", 1, 3)
    np.testing.assert_array_equal(planes, prepare.prepare_planes(
        part, plane="coronal", resolution=6, window_range=HU_RANGE, floor=prepare.AIR_HU))
    np.testing.assert_array_equal(grid, prepare.plane_grid_affine(part_affine, part.shape,
                                                                  "coronal", 6)[0])
    with pytest.raises(ValueError, match="12x5 but resolution=6 .* resize=False"):
        prepare.prepare_volume(volume, affine, resolution=6, plane="sagittal", resize=False)
    with pytest.raises(ValueError, match="after the intensity window.*constant"):
        prepare.prepare_volume(volume - 5000.0, affine, resolution=6)


def test_trainer_slices_of_a_file_are_the_library_planes(tmp_path):
    volume = _asymmetric_volume((12, 7, 10))
    volume[:, :, :2] = -2048.0  # CT padding, raised to air by both paths
    affine = np.diag([0.8, 1.2, 2.0, 1.0])
    path = tmp_path / "scan.nii.gz"
    io.write_nifti(path, volume, affine)
    for plane in ("coronal", "axial"):
        trainer = train_data.load_slices(ml_collections.ConfigDict(dict(data=dict(
            source="nifti", path=str(path), plane=plane, ranges=((0, 7 if plane == "coronal"
                                                                  else 12),),
            hu_min=HU_RANGE[0], hu_max=HU_RANGE[1], resolution=8, seed=0,
            augment=dict(copies=1, rotation_degrees=0.0, zoom=0.0, shift=0.0, gain=0.0,
                         z_blend=0.0)))))
        window, window_range, floor = prepare.intensity_window("hu", *HU_RANGE)
        planes, _ = prepare.prepare_volume(*io.read_volume(path), resolution=8, plane=plane,
                                           window=window, window_range=window_range,
                                           floor=floor)
        np.testing.assert_array_equal(trainer, planes)
    # The coronal images are the stored array's [x, y, z] planes at fixed y, as [z, x]:
    # independent of both paths (nibabel directly, no resize: 12 x 10 padded to 12 x 12).
    import nibabel as nib
    stored = np.asarray(nib.load(str(path)).dataobj)  # [X, Y, Z] = [10, 7, 12]
    native = prepare.prepare_planes(io.read_nifti(path)[0], plane="coronal", window="range",
                                    window_range=HU_RANGE, floor=prepare.AIR_HU)
    expected = np.clip((np.maximum(stored[:, 3, :].T, -1024.0) + 1000.0) / 2600.0, 0, 1)
    np.testing.assert_allclose(native[3][:, 1:11], expected, atol=1e-6)
