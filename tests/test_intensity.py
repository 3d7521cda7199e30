"""Tests of the HU sanity check (prepare.check_hu) and of its use by the CLI (sample.inputs)."""

import numpy as np
import pytest

import test_dicom
from iscs_jax import io
from iscs_jax.data import prepare
from sample import cli, inputs
from sample.errors import UserError


def ct_like(shape=(4, 16, 16), seed=0):
    """Air around a body of soft tissue and some bone, in HU."""
    volume = np.full(shape, -1000.0, np.float32)
    volume[:, 4:12, 4:12] = np.random.default_rng(seed).uniform(-100, 100, (shape[0], 8, 8))
    volume[:, 7:9, 7:9] = 900.0
    return volume


def test_ct_in_hu_passes():
    assert prepare.check_hu(ct_like()) == ([], [])
    padded = ct_like()
    padded[:, 0, :] = -3024.0  # padding outside the scan circle: raised to the air floor
    assert prepare.check_hu(padded) == ([], [])


@pytest.mark.parametrize("scale, expected", [
    (lambda v: (v + 1000.0) / 2600.0, "within [0, 1]"),
    (lambda v: v + 1024.0, "no air"),  # stored values without the rescale intercept
])
def test_volumes_that_cannot_be_hu_are_refused(scale, expected):
    problems, notes = prepare.check_hu(scale(ct_like()), -1000.0, 1600.0)
    assert len(problems) == 1 and notes == []
    for part in (expected, "intensity=minmax", "hu_min=", "hu_max="):
        assert part in problems[0]


def test_no_air_is_fine_for_a_window_above_air():
    soft_tissue = np.random.default_rng(0).uniform(-200, 300, (2, 8, 8))
    assert prepare.check_hu(soft_tissue, -160.0, 240.0) == ([], [])


def test_values_far_beyond_the_window_are_noted():
    volume = ct_like()
    volume[0, 0, :4] = 1600.0 + 2600.0 + 1.0  # beyond hu_max by more than the window's width
    problems, notes = prepare.check_hu(volume)
    assert problems == [] and len(notes) == 1
    assert "4)" in notes[0] and "beyond the HU window [-1000, 1600]" in notes[0]


def _data(path, **settings):
    data = cli.load_config("ct.py")[0].data
    data.path = str(path)
    for name, value in settings.items():
        data[name] = value
    return data


def test_cli_refuses_a_scaled_volume_naming_the_config_keys(tmp_path):
    path = tmp_path / "scaled.nii.gz"
    io.write_nifti(path, (ct_like() + 1000.0) / 2600.0, np.eye(4))
    data = _data(path)
    volume, affine, _ = inputs.load_volume(data, 8)
    with pytest.raises(UserError) as err:
        inputs.preprocess(volume, affine, data, 8)
    for key in ("data.intensity=minmax", "data.hu_min=", "data.hu_max=",
                "data.check_intensity=False"):
        assert key in str(err.value)
    planes, _ = inputs.preprocess(volume, affine, _data(path, intensity="minmax"), 8)
    assert planes.max() == pytest.approx(1.0)
    inputs.preprocess(volume, affine, _data(path, check_intensity=False), 8)


def test_cli_notes_values_beyond_the_window(tmp_path):
    volume = ct_like()
    volume[:, 0, 0] = 5000.0
    notes = []
    inputs.preprocess(volume, np.eye(4), _data(tmp_path / "x.nii.gz"), 8, notes)
    assert len(notes) == 1 and "beyond the HU window" in notes[0]


def test_cli_maps_dicom_arguments_to_config_keys(tmp_path):
    test_dicom.write_series(tmp_path / "two", test_dicom.hu_volume(2, 1), prefix="a")
    test_dicom.write_series(tmp_path / "two", test_dicom.hu_volume(2, 2), prefix="b")
    with pytest.raises(UserError, match="data.series="):
        inputs.load_volume(_data(tmp_path / "two"), 8)
    test_dicom.write_series(tmp_path / "gap", test_dicom.hu_volume(3), steps=[0, 2.5, 7.5])
    with pytest.raises(UserError, match="data.dicom_resample=True"):
        inputs.load_volume(_data(tmp_path / "gap"), 8)
    notes = []
    volume, _, _ = inputs.load_volume(_data(tmp_path / "gap", dicom_resample=True), 8, notes)
    assert volume.shape[0] == 4 and "resampled" in notes[0]


def test_cli_exits_2_on_a_scaled_ct_before_sampling(tmp_path, capsys):
    from sample.__main__ import main

    path = tmp_path / "scaled.nii.gz"
    io.write_nifti(path, (ct_like((4, 32, 32)) + 1000.0) / 2600.0, np.eye(4))
    argv = ["--config", "ct.py:phantom,smoke", "--config.prior.name=gaussian",
            "--config.prior.resolution=32", "--workdir", str(tmp_path / "out"),
            f"--config.data.path={path}"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "data.intensity=minmax" in captured.err and "within [0, 1]" in captured.err
    assert "compiling" not in captured.out and "Traceback" not in captured.err
