"""Test configuration: JAX on CPU, float32, deterministic."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
