"""JAX's persistent compilation cache, so a second run loads its programs instead of compiling.

`enable(setting)` is called once, before anything is compiled (the CLI does, from its
``--compilation_cache`` flag; a JAX program using the library can too). The folder is,
in this order: ``setting`` (``--compilation_cache=DIR``), the
``JAX_COMPILATION_CACHE_DIR`` environment variable, or ``iscs-jax/xla`` in
the user's cache folder (``$XDG_CACHE_HOME``, else ``~/.cache``).
``--compilation_cache=off`` disables it. Entries are keyed by the program,
the JAX version and the device, so a stale entry is never used. JAX does not
cache programs containing host callbacks (``jax.debug.callback``), so the runtime's
progress callback runs in Python between steps instead (`iscs_jax.runtime`).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

#: ``--compilation_cache`` values that disable the cache.
OFF = ("off", "none", "false", "0")
#: Programs compiling faster than this are not cached (the metrics, FBP and sampler are).
MIN_COMPILE_SECONDS = 0.1


def default_folder() -> Path:
    """``$XDG_CACHE_HOME/iscs-jax/xla`` (``~/.cache/iscs-jax/xla`` when unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "iscs-jax" / "xla"


def enable(setting: str | None = None) -> Path | None:
    """Turns the persistent compilation cache on (or off); returns its folder or ``None``.

    Args:
      setting: a folder, one of `OFF`, or ``None``/``""`` for the default
        (``JAX_COMPILATION_CACHE_DIR`` if set, else `default_folder`).
    """
    if setting is not None and setting.strip().lower() in OFF:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    folder = Path(setting or os.environ.get("JAX_COMPILATION_CACHE_DIR") or default_folder())
    folder = folder.expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # an unwritable cache only costs compile time: run without it
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return folder
