"""Tests of iscs_jax.io (NIfTI, DICOM, validation) and iscs_jax.figures."""

import matplotlib.image
import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from iscs_jax import figures, io
from fixtures import write_dicom_image

ROW_DIR = np.array([1.0, 0.0, 0.0])
COL_DIR = np.array([0.0, np.cos(0.3), np.sin(0.3)])  # an oblique series


def write_dicom_series(folder, hu_volume, spacing=(0.7, 0.8), step=2.5, origin=(-10.0, 5.0, 40.0),
                       slope=2.0, intercept=-1024.0, row_dir=ROW_DIR, col_dir=COL_DIR):
    """Writes ``hu_volume [D, rows, cols]`` as one CT file per slice, in shuffled file order.

    Returns the ImagePositionPatient of each slice, in volume order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    normal = np.cross(row_dir, col_dir)
    positions = [np.asarray(origin) + k * step * normal for k in range(hu_volume.shape[0])]
    order = np.random.default_rng(0).permutation(hu_volume.shape[0])
    uid = generate_uid()
    for file_index, k in enumerate(order):
        write_dicom_image(folder / f"img{file_index:03d}.dcm", hu_volume[k], positions[k], uid=uid,
                          slope=slope, intercept=intercept, row_dir=row_dir, col_dir=col_dir,
                          spacing=spacing)
    (folder / "README.txt").write_text("not a DICOM file")
    return positions


def test_nifti_round_trip_and_axis_convention(tmp_path):
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(3, 5, 7)).astype(np.float32)
    affine = np.array([[0.5, 0, 0, -3], [0, 0.6, 0, 2], [0, 0, 2.5, 10], [0, 0, 0, 1.0]])
    io.write_nifti(tmp_path / "v.nii.gz", volume, affine)
    back, back_affine = io.read_nifti(tmp_path / "v.nii.gz")
    np.testing.assert_array_equal(back, volume)
    np.testing.assert_allclose(back_affine, affine)
    data = nib.load(tmp_path / "v.nii.gz").get_fdata()
    assert data.shape == (7, 5, 3)  # (i, j, k) = (columns, rows, slices)
    np.testing.assert_allclose(data[:, :, 1], volume[1].T)
    np.testing.assert_allclose(io.voxel_spacing(affine), [0.5, 0.6, 2.5])


@pytest.mark.parametrize("volume, message", [
    (np.ones((4, 4)) * np.arange(4), "2 dimension"),
    (np.random.default_rng(0).normal(size=(2, 3, 4, 5)), "4 dimension"),
    (np.zeros((0, 4, 4)), "empty"),
    (np.where(np.eye(4)[None] > 0, np.nan, 1.0), "NaN or infinite"),
    (np.where(np.eye(4)[None] > 0, np.inf, 1.0), "NaN or infinite"),
    (np.full((2, 4, 4), 7.0), "constant"),
])
def test_validate_volume_rejects_bad_volumes(volume, message):
    with pytest.raises(io.VolumeError, match=message):
        io.validate_volume(volume, name="scan")


def test_validate_volume_accepts_and_casts():
    out = io.validate_volume(np.arange(8, dtype=np.int16).reshape(2, 2, 2))
    assert out.dtype == np.float32 and out.shape == (2, 2, 2)


def test_read_missing_and_4d_nifti(tmp_path):
    with pytest.raises(io.VolumeError, match="does not exist"):
        io.read_volume(tmp_path / "missing.nii.gz")
    nib.save(nib.Nifti1Image(np.random.default_rng(0).normal(size=(4, 4, 3, 2)), np.eye(4)),
             tmp_path / "t.nii.gz")
    with pytest.raises(io.VolumeError, match="4 dimension"):
        io.read_nifti(tmp_path / "t.nii.gz")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(io.VolumeError, match="nii"):
        io.read_volume(tmp_path / "x.txt")


def _world(affine, ijk):
    return (affine @ np.append(np.asarray(ijk, float), 1.0))[:3]


def test_read_dicom_series_sorts_rescales_and_builds_affine(tmp_path):
    rng = np.random.default_rng(1)
    hu = np.round(rng.uniform(-1000, 1000, size=(5, 6, 7)) / 2) * 2  # exactly representable
    positions = write_dicom_series(tmp_path / "series", hu)
    volume, affine = io.read_dicom_series(tmp_path / "series")
    np.testing.assert_allclose(volume, hu)
    lps_to_ras = np.array([-1.0, -1.0, 1.0])
    for (d, h, w) in [(0, 0, 0), (4, 5, 6), (2, 1, 3)]:
        lps = positions[d] + w * 0.8 * ROW_DIR + h * 0.7 * COL_DIR  # columns step by spacing[1]
        np.testing.assert_allclose(_world(affine, (w, h, d)), lps_to_ras * lps, atol=1e-9)
    np.testing.assert_allclose(io.voxel_spacing(affine), [0.8, 0.7, 2.5])
    assert pydicom.dcmread(next((tmp_path / "series").glob("*.dcm"))).Modality == "CT"


def test_read_dicom_series_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(io.VolumeError, match="No DICOM image"):
        io.read_dicom_series(tmp_path / "empty")
    with pytest.raises(io.VolumeError, match="does not exist"):
        io.read_dicom_series(tmp_path / "nope")


def test_read_sinogram_checks_shape(tmp_path):
    np.save(tmp_path / "y.npy", np.ones((3, 4, 5)))
    assert io.read_sinogram(tmp_path / "y.npy", (None, 4, 5)).shape == (3, 4, 5)
    with pytest.raises(io.VolumeError, match=r"\(None, 6, 5\)"):
        io.read_sinogram(tmp_path / "y.npy", (None, 6, 5))


def test_orthogonal_views_figure(tmp_path):
    rng = np.random.default_rng(0)
    reference = rng.uniform(size=(4, 6, 8)).astype(np.float32)
    planes = figures.central_planes(reference, spacing=(2.0, 1.0, 1.0))
    assert [p[1].shape for p in planes] == [(6, 8), (4, 8), (4, 6)]
    np.testing.assert_array_equal(planes[1][1], reference[::-1, 3, :])
    assert planes[1][2] == 2.0
    figure = figures.orthogonal_views({"FBP": reference + 0.1, "iscs": reference},
                                      reference=reference, title="test")
    assert len(figure.axes) == 3 * 6
    figures.save_figure(figure, tmp_path / "f.png", dpi=50)
    image = matplotlib.image.imread(tmp_path / "f.png")
    assert image.ndim == 3 and image.shape[1] > image.shape[0] > 0
    with pytest.raises(ValueError, match="same"):
        figures.orthogonal_views({"a": reference, "b": reference[:2]})
