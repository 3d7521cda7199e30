"""Test configuration: JAX on CPU, and one compilation cache for the whole session.

The suite compiles many identical programs (each training run, each CLI run, each subprocess
re-jits the same step functions). A persistent compilation cache in a fresh temporary folder
lets the later ones load the first one's executable instead of recompiling; subprocesses
inherit it through the environment. Set before jax is imported.
"""

import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="iscs-jax-xla-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
