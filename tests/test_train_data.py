"""Tests for the trainer's data sources (`train/data.py`)."""

import jax
import ml_collections
import numpy as np
import pytest

from iscs_jax import io
from train import data


def _nifti_config(path, **overrides):
    cfg = ml_collections.ConfigDict(dict(
        source="nifti", path=str(path), slice_start=1, slice_stop=4, hu_min=-1000.0,
        hu_max=1600.0, resolution=8, seed=0,
        augment=ml_collections.ConfigDict(dict(copies=1, rotation_degrees=0.0, zoom=0.0,
                                               shift=0.0, gain=0.0, z_blend=0.0))))
    cfg.update(overrides)
    return ml_collections.ConfigDict(dict(data=cfg))


def test_nifti_source_reads_the_slab_through_the_cli_reader(tmp_path):
    rng = np.random.default_rng(0)
    volume = rng.uniform(-1200, 2000, (6, 16, 12)).astype(np.float32)  # [D, H, W], asymmetric
    volume[:, :2] = -2048.0  # padding outside the scan circle
    path = tmp_path / "v.nii.gz"
    io.write_nifti(path, volume, np.diag([0.7, 0.7, 2.5, 1.0]))
    slices = data.load_slices(_nifti_config(path))
    # Independent recomputation: air floor, padding to a square (16 x 16, with the floored
    # minimum, here air), antialiased linear resize in HU, then the window.
    square = np.pad(np.maximum(volume[1:4], -1024.0), ((0, 0), (0, 0), (2, 2)),
                    constant_values=-1024.0)
    expected = jax.image.resize(square, (3, 8, 8), "linear")
    expected = np.clip((np.asarray(expected) + 1000.0) / 2600.0, 0.0, 1.0)
    np.testing.assert_allclose(slices, expected, atol=1e-5)


def test_nifti_source_augments_and_rejects_a_bad_slab(tmp_path):
    volume = np.random.default_rng(1).uniform(-1000, 1000, (6, 8, 8)).astype(np.float32)
    path = tmp_path / "v.nii.gz"
    io.write_nifti(path, volume, np.eye(4))
    config = _nifti_config(path)
    config.data.augment.copies = 3
    assert data.load_slices(config).shape == (9, 8, 8)
    with pytest.raises(ValueError, match="slice_stop=9"):
        data.load_slices(_nifti_config(path, slice_stop=9))
    with pytest.raises(ValueError, match="data.source='dicom'"):
        data.load_slices(_nifti_config(path, source="dicom"))
