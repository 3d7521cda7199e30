"""Tests for iscs_jax.denoise_sharding: a denoiser's batch split over 2 fake CPU devices."""

import pytest
from device_checks import run_check

from iscs_jax.denoise_sharding import shard_denoiser


def test_sharded_denoiser_equals_unsharded_on_two_devices():
    """A U-Net denoiser split over 2 devices (odd batch, so padded) gives the unsharded
    result, for a shared scalar sigma and for per-image sigmas."""
    result = run_check("denoise_sharding_check.py")
    assert result["devices"] == 2
    assert result["scale"] > 0.1
    assert result["scalar"] <= 1e-5 * result["scale"], result
    assert result["per_sample"] <= 1e-5 * result["scale"], result
    assert result["one_device_is_identity"]


def test_no_devices_is_an_error():
    with pytest.raises(ValueError, match="at least one device"):
        shard_denoiser(lambda x, sigma: x, devices=[])
