"""Tests for iscs_jax.denoise_sharding: a denoiser's batch split over 2 fake CPU devices."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from iscs_jax.denoise_sharding import shard_denoiser

ROOT = Path(__file__).resolve().parents[1]


def test_sharded_denoiser_equals_unsharded_on_two_devices():
    """A U-Net denoiser split over 2 devices (odd batch, so padded) gives the unsharded
    result, for a shared scalar sigma and for per-image sigmas."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "denoise_sharding_check.py")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["devices"] == 2
    assert result["scale"] > 0.1
    assert result["scalar"] <= 1e-5 * result["scale"], result
    assert result["per_sample"] <= 1e-5 * result["scale"], result
    assert result["one_device_is_identity"]


def test_no_devices_is_an_error():
    with pytest.raises(ValueError, match="at least one device"):
        shard_denoiser(lambda x, sigma: x, devices=[])
