"""Tests for iscs_jax.data: phantoms, analytic projections, NIfTI slices, batches."""

import nibabel as nib
import numpy as np
import pytest
from skimage.transform import resize as sk_resize

from iscs_jax.data import batches, nifti, phantom

SHAPE = (24, 48, 40)


@pytest.fixture(scope="module")
def volume():
    return phantom.phantom_volume(3, SHAPE)


# --------------------------------------------------------------------------- phantom


def test_phantom_range_dtype_and_odd_shape():
    vol = phantom.phantom_volume(0, (7, 33, 21))
    assert vol.shape == (7, 33, 21) and vol.dtype == np.float32
    assert vol.min() >= 0.0 and vol.max() <= 1.0


def test_phantom_deterministic_and_seed_dependent(volume):
    np.testing.assert_array_equal(volume, phantom.phantom_volume(3, SHAPE))
    other = phantom.phantom_volume(4, SHAPE)
    assert np.mean(np.abs(volume - other)) > 0.01


def test_phantom_ignores_global_numpy_state():
    np.random.seed(1)
    first = phantom.phantom_volume(5, (4, 16, 16))
    np.random.seed(2)
    np.testing.assert_array_equal(first, phantom.phantom_volume(5, (4, 16, 16)))


def test_phantom_zero_outside_body_and_corners(volume):
    assert np.all(volume[:, 0, :] == 0) and np.all(volume[:, :, 0] == 0)
    body = phantom.ellipsoid_components(3)[0]
    y = phantom.grid_coordinates(SHAPE[1])[:, None]
    x = phantom.grid_coordinates(SHAPE[2])[None, :]
    outside = ((x - body.center[0]) / body.axes[0]) ** 2 + (
        (y - body.center[1]) / body.axes[1]) ** 2 > 1.02
    assert np.all(volume[SHAPE[0] // 2][outside] == 0)


def test_phantom_smooth_along_z(volume):
    """Per unit length, the phantom changes along z far less than in-plane."""
    depth, _, width = volume.shape
    dz = np.mean(np.abs(np.diff(volume, axis=0))) / (2.0 / depth)
    dx = np.mean(np.abs(np.diff(volume, axis=2))) / (2.0 / width)
    assert dz < 0.4 * dx
    assert np.mean(np.abs(np.diff(volume, axis=0))) < 0.1 * float(np.std(volume))


def test_phantom_has_air_soft_tissue_and_bone():
    vol = phantom.phantom_volume(0, (32, 64, 64))
    body = vol > 0
    values = vol[body]
    fractions = {
        "air/lung": np.mean(values < 0.1),
        "fat/soft tissue": np.mean((values > 0.25) & (values < 0.5)),
        "bone": np.mean(values > 0.75),
    }
    assert fractions["air/lung"] > 0.02, fractions
    assert fractions["fat/soft tissue"] > 0.5, fractions
    assert fractions["bone"] > 0.005, fractions
    top, bottom = vol[: 8][vol[: 8] > 0], vol[-8:][vol[-8:] > 0]
    assert np.mean(top < 0.1) > 4 * np.mean(bottom < 0.1)  # lungs are near the top


def test_phantom_sampling_is_resolution_consistent():
    fine = phantom.phantom_volume(2, (16, 64, 64))
    coarse = phantom.phantom_volume(2, (16, 32, 32))
    pooled = fine.reshape(16, 32, 2, 32, 2).mean(axis=(2, 4))
    assert np.mean(np.abs(pooled - coarse)) < 0.03


def test_phantom_slices_stacks_consecutive_seeds():
    stack = phantom.phantom_slices(10, 2, (3, 16, 16))
    assert stack.shape == (6, 16, 16)
    np.testing.assert_array_equal(stack[3:], phantom.phantom_volume(11, (3, 16, 16)))


def test_phantom_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        phantom.phantom_volume(0, (8, 8))


# --------------------------------------------------------------------------- analytic projections


@pytest.mark.parametrize("z", [-0.6, 0.1, 0.85])
def test_line_integrals_match_rasterised_sums(z):
    components = phantom.ellipsoid_components(7)
    n = 512
    image = phantom.ellipse_slice(components, z, (n, n)).astype(np.float64)
    s = phantom.grid_coordinates(n)
    pixel = 2.0 / n
    analytic = phantom.ellipse_line_integrals(components, z, [0.0, np.pi / 2], s)
    # angle 0: rays x = s, integrate over y (rows); angle 90 deg: rays y = s, over x.
    numeric = np.stack([image.sum(axis=0) * pixel, image.sum(axis=1) * pixel])
    scale = np.abs(analytic).max()
    assert np.max(np.abs(numeric - analytic)) < 0.015 * scale
    assert np.mean(np.abs(numeric - analytic)) < 0.002 * scale


def test_line_integrals_single_ellipse_oblique_angle():
    """A rotated ellipse at 30 degrees: rotate the sampling grid and sum numerically."""
    e = phantom.Ellipsoid((0.2, -0.1, 0.0), (0.5, 0.25, 1.0), 0.4, 1.5)
    theta = np.pi / 6
    s = np.linspace(-0.9, 0.9, 37)
    t = np.linspace(-1.5, 1.5, 6001)
    x = s[:, None] * np.cos(theta) - t[None, :] * np.sin(theta)
    y = s[:, None] * np.sin(theta) + t[None, :] * np.cos(theta)
    dx, dy = x - 0.2, y + 0.1
    u = (dx * np.cos(0.4) + dy * np.sin(0.4)) / 0.5
    v = (-dx * np.sin(0.4) + dy * np.cos(0.4)) / 0.25
    numeric = 1.5 * (u * u + v * v <= 1).sum(axis=1) * (t[1] - t[0])
    analytic = phantom.ellipse_line_integrals([e], 0.0, [theta], s)[0]
    np.testing.assert_allclose(analytic, numeric, atol=2e-3)


def test_cross_sections_shrink_towards_ellipsoid_ends():
    e = phantom.Ellipsoid((0.0, 0.0, 0.0), (0.4, 0.2, 0.5), 0.0, 1.0)
    mid, near_end = (phantom.cross_sections([e], z) for z in (0.0, 0.4))
    np.testing.assert_allclose(near_end["a"], 0.4 * np.sqrt(1 - 0.8 ** 2))
    assert mid["a"][0] == pytest.approx(0.4)
    assert phantom.cross_sections([e], 0.6)["a"].size == 0


# --------------------------------------------------------------------------- NIfTI


def _write(path, data):
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), np.eye(4)), str(path))


def test_nifti_ct_window_resize_and_plane(tmp_path):
    i, j, k = np.meshgrid(np.arange(20), np.arange(24), np.arange(6), indexing="ij")
    vol_a = 1800 * np.cos(0.3 * i) * np.sin(0.2 * j + 0.5 * k) + 200  # smooth, exceeds window
    vol_b = np.random.default_rng(0).uniform(-1000, 1600, size=(20, 24, 4))
    _write(tmp_path / "a.nii.gz", vol_a)
    _write(tmp_path / "b.nii", vol_b)
    (tmp_path / "notes.txt").write_text("not a volume")
    # Stored [X, Y, Z] = [20, 24, 6]; io.read_nifti's [D, H, W] = [Z, Y, X]: an axial slice
    # is the stored [:, :, k] transposed, [Y, X] = [24, 20].
    out = nifti.load_nifti_slices(tmp_path, resolution=(12, 10), square=False)
    assert out.shape == (10, 12, 10) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    expected = np.clip((vol_a[:, :, 0].T + 1000) / 2600, 0, 1)
    reference = sk_resize(expected, (12, 10), order=1, anti_aliasing=True)
    assert np.mean(np.abs(out[0] - reference)) < 0.02
    native = nifti.load_nifti_slices(tmp_path, resolution=(24, 20), square=False)
    np.testing.assert_allclose(native[0], expected, atol=1e-5)
    assert np.any(native[0] == 0) and np.any(native[0] == 1)  # clipped at both ends
    # Sagittal planes stack along W (stored X): plane x is [Z, Y] = stored [x].T.
    sagittal = nifti.load_nifti_slices(tmp_path, resolution=(6, 24), plane="sagittal",
                                       square=False)
    assert sagittal.shape == (40, 6, 24)
    np.testing.assert_allclose(sagittal[3], np.clip((vol_a[3].T + 1000) / 2600, 0, 1),
                               atol=1e-5)
    # Square padding (with the volume minimum) keeps the aspect ratio: 24 x 20 -> 24 x 24.
    padded = nifti.load_nifti_slices(tmp_path, resolution=24)
    np.testing.assert_allclose(padded[0][:, 2:22], expected, atol=1e-5)


def test_nifti_minmax_window(tmp_path):
    vol = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) * 7.0 + 100.0
    _write(tmp_path / "mri.nii.gz", vol)
    out = nifti.load_nifti_slices(tmp_path, resolution=(3, 2), window="minmax", square=False)
    assert out.min() == 0.0 and out.max() == pytest.approx(1.0)
    np.testing.assert_allclose(out, np.transpose((vol - 100) / (23 * 7.0), (2, 1, 0)),
                               atol=1e-6)


def test_nifti_custom_hu_range(tmp_path):
    volume = np.zeros((4, 4, 2))
    volume[0, 0, 0] = 300.0  # io.read_nifti rejects constant volumes
    _write(tmp_path / "v.nii", volume)
    out = nifti.load_nifti_slices(tmp_path, resolution=4, hu_range=(-100, 100))
    assert out[0, 0, 0] == 1.0  # 300 HU clipped
    np.testing.assert_allclose(out.ravel()[1:], 0.5)


def test_nifti_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        nifti.load_nifti_slices(tmp_path / "missing")
    with pytest.raises(ValueError, match="No .nii"):
        nifti.load_nifti_slices(tmp_path)
    _write(tmp_path / "v.nii", np.arange(32.0).reshape(4, 4, 2))
    with pytest.raises(ValueError, match="window"):
        nifti.load_nifti_slices(tmp_path, window="bone")
    with pytest.raises(ValueError, match="plane"):
        nifti.load_nifti_slices(tmp_path, plane="oblique")


# --------------------------------------------------------------------------- batches


@pytest.fixture(scope="module")
def slices():
    n, h, w = 22, 5, 6
    data = np.random.default_rng(0).normal(size=(n, h, w)).astype(np.float32)
    data[:, 0, 0] = np.arange(n)  # tag each slice at a corner...
    data[:, 0, -1] = np.arange(n)  # ...and at every corner, so flips keep the tag
    data[:, -1, 0] = np.arange(n)
    data[:, -1, -1] = np.arange(n)
    return data


def test_batches_deterministic_and_seeded(slices):
    first = batches.batch_at(slices, 1, 5, 4)
    np.testing.assert_array_equal(first, batches.batch_at(slices, 1, 5, 4))
    assert not np.array_equal(first, batches.batch_at(slices, 2, 5, 4))
    assert first.shape == (4, 5, 6) and first.dtype == np.float32


def test_batches_cover_each_slice_once_per_epoch(slices):
    batch_size = 4
    per_epoch = batches.batches_per_epoch(len(slices), batch_size)
    assert per_epoch == 5
    for epoch in range(2):
        tags = np.concatenate([
            batches.batch_at(slices, 0, epoch * per_epoch + k, batch_size)[:, 0, 0]
            for k in range(per_epoch)]).astype(int)
        assert len(set(tags)) == len(tags) == per_epoch * batch_size
    orders = [batches.epoch_permutation(len(slices), 0, e) for e in range(2)]
    assert not np.array_equal(orders[0], orders[1])


def test_batches_flip_both_ways_and_preserve_content(slices):
    seen = set()
    for index in range(10):
        ids, flip_h, flip_v = batches.batch_indices(len(slices), 0, index, 4)
        batch = batches.batch_at(slices, 0, index, 4)
        for k in range(4):
            expected = slices[ids[k]]
            expected = expected[:, ::-1] if flip_h[k] else expected
            expected = expected[::-1, :] if flip_v[k] else expected
            np.testing.assert_array_equal(batch[k], expected)
            seen.add((bool(flip_h[k]), bool(flip_v[k])))
    assert len(seen) == 4
    no_flip = batches.batch_at(slices, 0, 3, 4, flips=False)
    np.testing.assert_array_equal(no_flip, slices[batches.batch_indices(len(slices), 0, 3, 4)[0]])


def test_batches_resume_equals_uninterrupted(slices):
    stream = batches.iterate_batches(slices, 9, 4, prefetch=2)
    uninterrupted = [next(stream) for _ in range(12)]
    stream.close()
    resumed = batches.iterate_batches(slices, 9, 4, start_index=7, prefetch=0)
    for (i_a, a), (i_b, b) in zip(uninterrupted[7:], resumed):
        assert i_a == i_b
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(uninterrupted[11][1], batches.batch_at(slices, 9, 11, 4))


def test_batches_errors(slices):
    with pytest.raises(ValueError, match="batch_size"):
        batches.batch_at(slices, 0, 0, 23)
    with pytest.raises(ValueError, match="batch_size"):
        batches.iterate_batches(slices, 0, 0).__next__()
    with pytest.raises(ValueError, match="index"):
        batches.batch_at(slices, 0, -1, 4)
