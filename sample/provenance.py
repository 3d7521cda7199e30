"""The provenance record of a result folder (``provenance.json``): what produced it.

Package, JAX and jaxlib versions, the devices, the prior's name and the SHA-256 of its
files, the command line and the resolved config (also in ``config.json``).
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import platform
import sys
from pathlib import Path

import jax

from . import prior as prior_lib

PACKAGE = "iscs-jax"


def sha256(path: str | Path) -> str:
    """The hex SHA-256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for piece in iter(lambda: file.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def record(config, argv: list[str] | None = None) -> dict:
    """The provenance of a run of ``config`` (resolved), as a JSON-able dict.

    Args:
      config: the resolved config the run used (as written to ``config.json``).
      argv: the command line (default ``sys.argv``: ``python -m sample`` records the path of
        ``sample/__main__.py`` first), recorded with the Python executable.
    """
    devices = jax.devices()
    files = prior_lib.prior_files(config.prior)
    return {
        "package": {"name": PACKAGE, "version": _version(PACKAGE)},
        "jax": jax.__version__, "jaxlib": _version("jaxlib"),
        "python": platform.python_version(),
        "devices": {"platform": devices[0].platform, "kind": devices[0].device_kind,
                    "count": len(devices), "processes": jax.process_count()},
        "prior": {"name": prior_lib.prior_source(config.prior),
                  "files": [{"path": str(f.resolve()), "sha256": sha256(f)} for f in files]},
        "command": list(sys.argv if argv is None else argv), "executable": sys.executable,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config_file": "config.json",
        "config": json.loads(config.to_json()),
    }
