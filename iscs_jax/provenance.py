"""The provenance record of a result folder (``provenance.json``): what produced it.

Package, JAX and jaxlib versions, the devices, the prior's name and the SHA-256 of its
files, the command line and the resolved config (also in ``config.json``).
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import platform
import sys
from pathlib import Path
from typing import Sequence

import jax

PACKAGE = "iscs-jax"


def sha256(path: str | Path) -> str:
    """The hex SHA-256 of the file ``path``, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for piece in iter(lambda: file.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def version(name: str) -> str | None:
    """The installed version of the distribution ``name``, or None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def record(config: dict, *, prior_name: str, prior_files: Sequence[str | Path] = (),
           argv: list[str] | None = None, config_file: str = "config.json") -> dict:
    """The provenance of a run, as a JSON-able dict.

    Args:
      config: the resolved config the run used, as a plain dict (as in ``config_file``).
      prior_name: what the run used as its prior (a name or a path).
      prior_files: the files the prior was read from (each recorded with its SHA-256).
      argv: the command line (default ``sys.argv``), recorded with the Python executable.
      config_file: where the result folder holds the config.

    Returns:
      ``{"package", "jax", "jaxlib", "python", "devices", "prior", "command",
      "executable", "created", "config_file", "config"}``.
    """
    devices = jax.devices()
    return {
        "package": {"name": PACKAGE, "version": version(PACKAGE)},
        "jax": jax.__version__, "jaxlib": version("jaxlib"),
        "python": platform.python_version(),
        "devices": {"platform": devices[0].platform, "kind": devices[0].device_kind,
                    "count": len(devices), "processes": jax.process_count()},
        "prior": {"name": prior_name,
                  "files": [{"path": str(Path(f).resolve()), "sha256": sha256(f)}
                            for f in prior_files]},
        "command": list(sys.argv if argv is None else argv), "executable": sys.executable,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config_file": config_file,
        "config": config,
    }
