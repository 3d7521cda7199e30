"""Tests of iscs_jax.dicom: series grouping and selection, localizers, orientation, sorting,
spacing (error or resampling) and per-file rescaling, through io.read_volume too."""

import functools

import numpy as np
import pytest
from pydicom.uid import generate_uid

from iscs_jax import dicom, io
from fixtures import write_dicom_image

ROW_DIR = np.array([1.0, 0.0, 0.0])
COL_DIR = np.array([0.0, np.cos(0.3), np.sin(0.3)])  # an oblique series
NORMAL = np.cross(ROW_DIR, COL_DIR)
#: The shared writer, for this oblique series unless a call names other directions.
write_image = functools.partial(write_dicom_image, row_dir=ROW_DIR, col_dir=COL_DIR)
ORIGIN = np.array([-10.0, 5.0, 40.0])


def write_series(folder, hu, *, uid=None, description="chest", steps=None, prefix="img",
                 slopes=None):
    """``hu [D, rows, cols]`` as one file per slice, at ``ORIGIN + steps[k] * NORMAL`` (default
    2.5 mm apart), in shuffled file order. Returns the UID."""
    folder.mkdir(parents=True, exist_ok=True)
    uid = uid or generate_uid()
    steps = np.arange(hu.shape[0]) * 2.5 if steps is None else np.asarray(steps, float)
    for file_index, k in enumerate(np.random.default_rng(0).permutation(hu.shape[0])):
        slope = 2.0 if slopes is None else slopes[k]
        write_image(folder / f"{prefix}{file_index:03d}.dcm", hu[k], ORIGIN + steps[k] * NORMAL,
                    uid=uid, description=description, slope=slope)
    return uid


def hu_volume(depth, seed=0, shape=(6, 7)):
    return np.round(np.random.default_rng(seed).uniform(-1000, 1000, (depth, *shape)) / 4) * 4


def test_one_series_sorted_and_rescaled_per_file(tmp_path):
    hu = hu_volume(5)
    uid = write_series(tmp_path, hu, slopes=[1.0, 2.0, 4.0, 2.0, 1.0])
    result = dicom.read_series(tmp_path)
    np.testing.assert_allclose(result.volume, hu)
    assert (result.uid, result.description, result.notes) == (uid, "chest", ())
    world = result.affine @ np.array([0.0, 0.0, 4.0, 1.0])
    np.testing.assert_allclose(world[:3], [-1, -1, 1] * (ORIGIN + 10.0 * NORMAL), atol=1e-9)
    np.testing.assert_allclose(io.voxel_spacing(result.affine), [0.8, 0.7, 2.5])


def test_two_series_is_an_error_listing_both_unless_one_is_named(tmp_path):
    first = write_series(tmp_path, hu_volume(4, 1), description="soft tissue", prefix="a")
    second = write_series(tmp_path, hu_volume(3, 2), description="bone", prefix="b")
    with pytest.raises(io.VolumeError, match="2 image series") as err:
        io.read_volume(tmp_path)
    for part in (first, second, "'soft tissue' (4 images)", "'bone' (3 images)", "series="):
        assert part in str(err.value)
    np.testing.assert_allclose(io.read_volume(tmp_path, series=second)[0], hu_volume(3, 2))
    np.testing.assert_allclose(io.read_volume(tmp_path, series="soft tissue")[0], hu_volume(4, 1))
    with pytest.raises(io.VolumeError, match="series='lung' names no series"):
        io.read_volume(tmp_path, series="lung")


def test_ambiguous_description_asks_for_the_uid(tmp_path):
    write_series(tmp_path, hu_volume(2, 1), description="same", prefix="a")
    write_series(tmp_path, hu_volume(2, 2), description="same", prefix="b")
    with pytest.raises(io.VolumeError, match="names several series.*the UID"):
        dicom.read_series(tmp_path, series="same")


def test_localizer_and_other_orientation_left_out_with_notes(tmp_path):
    hu = hu_volume(4)
    uid = write_series(tmp_path, hu)
    # A same-size localizer of the same series, and one image of another orientation.
    write_image(tmp_path / "scout.dcm", hu[0], ORIGIN + 100 * NORMAL, uid=uid,
                image_type=["ORIGINAL", "PRIMARY", "LOCALIZER"], row_dir=np.array([0, 1.0, 0]),
                col_dir=np.array([0, 0, -1.0]))
    write_image(tmp_path / "tilted.dcm", hu[1], ORIGIN + 3.0 * NORMAL, uid=uid,
                col_dir=np.array([0.0, 1.0, 0.0]))
    notes = []
    volume, affine = io.read_volume(tmp_path, notes=notes)
    np.testing.assert_allclose(volume, hu)
    np.testing.assert_allclose(io.voxel_spacing(affine), [0.8, 0.7, 2.5])
    assert len(notes) == 2
    assert "1 localizer" in notes[0] and "1 image(s) whose ImageOrientationPatient" in notes[1]


def test_a_series_of_localizers_alone_is_not_an_image_series(tmp_path):
    write_series(tmp_path, hu_volume(3))
    write_image(tmp_path / "scout.dcm", hu_volume(1)[0], ORIGIN, uid=generate_uid(),
                image_type="ORIGINAL\\PRIMARY\\LOCALIZER")
    result = dicom.read_series(tmp_path)
    assert result.volume.shape == (3, 6, 7) and "localizer" in result.notes[0]


def test_missing_slice_is_an_error_naming_the_gap(tmp_path):
    hu = hu_volume(5)
    write_series(tmp_path, hu, steps=[0.0, 2.5, 5.0, 10.0, 12.5])
    at = float(ORIGIN @ NORMAL)
    with pytest.raises(io.VolumeError, match=rf"slices 2 and 3 at {at + 5:.3f} and {at + 10:.3f} "
                                             r"mm \(gap 5\.000 mm\).*spacing is 2\.500 mm.*"
                                             "resample=True"):
        io.read_volume(tmp_path)


def test_missing_slice_resampled_linearly_on_request(tmp_path):
    # A volume linear along the normal is resampled exactly.
    steps = np.array([0.0, 2.5, 5.0, 10.0, 12.5])
    hu = (np.round(hu_volume(1)[0] / 8) * 8)[None] + 16.0 * steps[:, None, None]
    write_series(tmp_path, hu, steps=steps)
    notes = []
    volume, affine = io.read_volume(tmp_path, resample=True, notes=notes)
    assert volume.shape == (6, 6, 7)
    np.testing.assert_allclose(volume, hu[0][None] + 16.0 * 2.5 * np.arange(6)[:, None, None],
                               atol=1e-3)
    np.testing.assert_allclose(io.voxel_spacing(affine), [0.8, 0.7, 2.5])
    assert "resampled 5 unevenly spaced slices to 6 slices 2.500 mm apart" in notes[0]


def test_a_folder_of_series_folders_names_them(tmp_path):
    write_series(tmp_path / "SE1", hu_volume(2))
    with pytest.raises(io.VolumeError, match=r"subfolders \(SE1\)"):
        io.read_volume(tmp_path)


def test_images_at_one_position_are_an_error(tmp_path):
    write_series(tmp_path, hu_volume(3), steps=[0.0, 2.5, 2.5])
    with pytest.raises(io.VolumeError, match="same position|position of another"):
        dicom.read_series(tmp_path)


def test_uniform_spacing_slightly_off_is_accepted():
    positions = np.array([0.0, 0.625, 1.251, 1.875, 2.5])
    assert dicom.slice_spacing(positions) == (pytest.approx(0.625, abs=1e-3), [])
    spacing, gaps = dicom.slice_spacing(np.array([0.0, 1.0, 2.0, 3.5, 4.5]))
    assert spacing == 1.0 and gaps == [(2, 2.0, 3.5)]


def test_cli_two_series_exit_2_then_data_series_reconstructs_one(tmp_path, capsys):
    """End to end: two same-size series (and a localizer) in one folder."""
    import nibabel as nib
    from pathlib import Path

    from sample.__main__ import main

    size = 32
    first = write_series(tmp_path / "scan", hu_volume(4, 1, (size, size)), prefix="a",
                         description="soft")
    second = write_series(tmp_path / "scan", hu_volume(4, 2, (size, size)), prefix="b",
                          description="bone")
    write_image(tmp_path / "scan" / "scout.dcm", hu_volume(1, 3, (size, size))[0], ORIGIN,
                uid=second, image_type=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    argv = ["--config", "ct.py:phantom,smoke", "--config.prior.name=gaussian",
            f"--config.prior.resolution={size}", "--workdir", str(tmp_path / "out"),
            f"--config.data.path={tmp_path / 'scan'}", "--config.compare=iscs"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    for part in (first, second, "'soft' (4 images)", "'bone' (4 images)", "data.series="):
        assert part in err, err
    assert main([*argv, "--config.data.series=bone"]) == 0
    out = capsys.readouterr().out
    assert "left out 1 localizer" in out
    image = nib.load(Path(out.strip().splitlines()[-1]) / "gt.nii.gz")
    np.testing.assert_allclose(np.asarray(image.dataobj).transpose(2, 1, 0),
                               (hu_volume(4, 2, (size, size)) + 1000.0) / 2600.0, atol=1e-6)
