"""End-to-end tests of the MRI configs (``mri_zsr.py``, ``mri_cs.py``) on ``:smoke`` settings.

The closed-form ``gaussian`` prior at 16x16 stands in for the shipped MRI prior. The input
file's coronal planes are 16 x 16 already (no padding, no resize), so the written result
must have exactly the input's shape and affine.
"""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from iscs_jax import io
from sample.__main__ import main

RESOLUTION = 16
FAST = ["--config.prior.name=gaussian", f"--config.prior.resolution={RESOLUTION}"]
AFFINE = np.array([[-1.0, 0, 0, 90.0], [0, 1.5, 0, -120.0], [0, 0, 1.0, -60.0], [0, 0, 0, 1]])


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """A [D, H, W] = [16 (z), 5 (y), 16 (x)] MRI-like volume (intensities 0..200)."""
    d, h, w = np.meshgrid(np.arange(16), np.arange(5), np.arange(16), indexing="ij")
    volume = 100 + 60 * np.sin(0.4 * d + 0.2 * w) * np.cos(0.3 * h) + 3.0 * w
    path = tmp_path_factory.mktemp("mri") / "scan.nii.gz"
    io.write_nifti(path, volume, AFFINE)
    return path


def run_ok(capsys, argv) -> Path:
    assert main(argv) == 0
    return Path(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("config, baseline, extra", [
    ("mri_zsr.py:smoke", "linear", ["--config.operator.factor=2"]),
    ("mri_cs.py:smoke", "zero_filled", ["--config.operator.measurement_noise=gaussian",
                                        "--config.operator.noise_std=0.01"]),
])
def test_mri_config_on_a_nifti_file_writes_the_input_grid(tmp_path, capsys, scan, config,
                                                          baseline, extra):
    folder = run_ok(capsys, ["--config", config, *FAST, "--workdir", str(tmp_path),
                             f"--config.data.path={scan}", "--config.data.slice_start=0",
                             "--config.data.num_slices=0", *extra])
    for name in ("gt.nii.gz", f"{baseline}.nii.gz", "recon_iid.nii.gz", "recon_iscs.nii.gz"):
        image = nib.load(folder / name)
        assert image.shape == (16, 5, 16), name  # stored [X, Y, Z]: the input's orientation
        np.testing.assert_allclose(image.affine, AFFINE, atol=1e-6)
    gt = np.asarray(nib.load(folder / "gt.nii.gz").dataobj)
    source = np.asarray(nib.load(scan).dataobj)
    expected = (source - source.min()) / (source.max() - source.min())  # data.intensity=minmax
    np.testing.assert_allclose(gt, expected, atol=1e-5)
    y = np.load(folder / "measurement.npy")
    if baseline == "linear":
        assert y.shape == (5, 8, 16)  # 5 coronal planes, z 16 -> 8 thick slices, x 16
    else:
        assert y.dtype == np.complex64 and y.shape == (5, 16, 4)  # 16 / R=4 lines


def test_zsr_of_axial_slices_couples_slices(tmp_path, capsys, scan):
    """data.plane=axial: z is the slice axis and ZSR averages whole slices."""
    folder = run_ok(capsys, ["--config", "mri_zsr.py:smoke", *FAST, "--workdir", str(tmp_path),
                             f"--config.data.path={scan}", "--config.data.plane=axial",
                             "--config.data.slice_start=0", "--config.data.num_slices=6",
                             "--config.operator.factor=4"])
    y = np.load(folder / "measurement.npy")
    assert y.shape == (2, RESOLUTION, RESOLUTION)  # 6 slices -> thick slices of 4 and 2
    gt = np.asarray(nib.load(folder / "gt.nii.gz").dataobj).transpose(2, 1, 0)
    np.testing.assert_allclose(y[1], gt[4:6].mean(axis=0), atol=1e-5)


def test_bad_mri_settings_are_user_errors(tmp_path, capsys, scan):
    argv = ["--config", "mri_cs.py:smoke", *FAST, "--workdir", str(tmp_path),
            f"--config.data.path={scan}", "--config.data.slice_start=0"]
    assert main(argv + ["--config.operator.acceleration=0.5"]) == 2
    assert "acceleration" in capsys.readouterr().err
    assert main(argv + ["--config.data.plane=oblique"]) == 2
    assert "data.plane" in capsys.readouterr().err
    assert main(argv + ["--config.operator.measurement_noise=poisson"]) == 2
    assert "gaussian" in capsys.readouterr().err
    assert not list(Path(tmp_path).glob("*/*"))
