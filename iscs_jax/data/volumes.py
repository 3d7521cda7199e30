"""Which volumes a path names: a folder, a glob or a list file of NIfTI files and DICOM series.

A *volume* is a NIfTI file (``.nii``, ``.nii.gz``) or a DICOM series folder (a folder holding
DICOM files directly). `expand_path` turns a user's path into named volumes:

* a folder of volumes (NIfTI files and DICOM series subfolders), sorted by name;
* a glob (``scans/*.nii.gz``), sorted;
* a list file (``.txt``, ``.lst``, ``.list``): one path per line, relative paths taken from
  the list file's folder, blank lines and ``#`` comments skipped, order kept;
* one volume (a NIfTI file or a DICOM series folder): ``None`` from `expand_path` (callers
  that read one volume do so as before), ``[(name, path)]`` from `find_volumes`.

Names are the file names without their NIfTI suffix (or the folder names), made unique with
``_1``, ``_2``, ... suffixes. Errors are `iscs_jax.io.VolumeError` naming ``data.path``.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from iscs_jax import io

GLOB_CHARACTERS = "*?["
#: Suffixes of a list file (one volume path per line).
LIST_SUFFIXES = (".txt", ".lst", ".list")


def is_dicom_folder(folder: Path) -> bool:
    """True when ``folder`` holds DICOM files directly (the DICM preamble marker)."""
    from pydicom.misc import is_dicom

    return any(p.is_file() and not io.is_nifti(p) and is_dicom(str(p))
               for p in sorted(folder.iterdir()))


def is_volume(path: Path) -> bool:
    """A NIfTI file or a DICOM series folder."""
    return (path.is_file() and io.is_nifti(path)) or (path.is_dir() and is_dicom_folder(path))


def is_list_file(path: Path) -> bool:
    """A text file naming volumes, one per line (by its suffix, `LIST_SUFFIXES`)."""
    return path.is_file() and path.suffix.lower() in LIST_SUFFIXES


def volume_name(path: Path) -> str:
    """The file name without ``.nii``/``.nii.gz``, or the folder's name."""
    name = path.name
    for suffix in sorted(io.NIFTI_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[:-len(suffix)]
    return name


def named(paths: list[Path]) -> list[tuple[str, Path]]:
    """``(name, path)`` with names made unique by ``_1``, ``_2``, ... suffixes."""
    result, used = [], set()
    for path in paths:
        name, suffix = volume_name(path), 0
        while (name if suffix == 0 else f"{name}_{suffix}") in used:
            suffix += 1
        name = name if suffix == 0 else f"{name}_{suffix}"
        used.add(name)
        result.append((name, path))
    return result


def read_list_file(path: Path) -> list[Path]:
    """The volumes a list file names, in its order (see the module docstring).

    Raises:
      io.VolumeError: an empty list, or a line that is not a NIfTI file or DICOM series folder
        (its line number named).
    """
    volumes = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        entry = Path(line).expanduser()
        entry = entry if entry.is_absolute() else path.parent / entry
        if not is_volume(entry):
            raise io.VolumeError(f"data.path={str(path)!r} line {number}: {line!r} is not a NIfTI "
                                 "file (.nii, .nii.gz) or a DICOM series folder (missing or of "
                                 "another kind); fix or remove that line.")
        volumes.append(entry)
    if not volumes:
        raise io.VolumeError(f"data.path={str(path)!r} is a list file naming no volume; write one "
                             "NIfTI file or DICOM series folder per line.")
    return volumes


def expand_path(path: str) -> list[tuple[str, Path]] | None:
    """The volumes ``data.path`` names: ``[(name, path)]`` for a folder of NIfTI files and
    DICOM series folders, a glob (sorted) or a list file (its order); ``None`` for one volume
    (a file, a folder holding DICOM files directly, an empty or missing path: the caller
    reads or reports it).

    Raises:
      io.VolumeError: a folder, glob or list file without any volume.
    """
    if not path:
        return None
    given = Path(path).expanduser()
    if not given.exists() and any(c in path for c in GLOB_CHARACTERS):
        matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(path)))
        volumes = [p for p in matches if is_volume(p)]
        if not volumes:
            raise io.VolumeError(
                f"data.path={path!r} matches {len(matches)} path(s) but no NIfTI file (.nii, "
                ".nii.gz) or DICOM series folder; give a glob such as 'scans/*.nii.gz', a "
                "folder of volumes, or one volume.")
        return named(volumes)
    if is_list_file(given):
        return named(read_list_file(given))
    if not given.is_dir() or is_dicom_folder(given):
        return None
    volumes = [p for p in sorted(given.iterdir()) if is_volume(p)]
    if not volumes:
        raise io.VolumeError(
            f"data.path={path!r} is a folder without DICOM files, NIfTI files (.nii, .nii.gz) "
            "or DICOM series subfolders (folders holding one series' files directly); give a "
            "NIfTI file, a DICOM series folder, or a folder or glob (e.g. 'scans/*.nii.gz') of "
            "them.")
    return named(volumes)


def find_volumes(path: str, key: str = "data.path") -> list[tuple[str, Path]]:
    """`expand_path`, with one volume as a list of one; a missing path is an error.

    Args:
      path: a folder, glob, list file or one volume.
      key: the config key named in errors.

    Returns:
      ``[(name, path)]``, at least one.

    Raises:
      io.VolumeError: nothing there, or a path that is no volume.
    """
    volumes = expand_path(path)
    if volumes is not None:
        return volumes
    if not path:
        raise io.VolumeError(f"{key} is empty; set --config.{key}=DIR to a folder, a glob "
                             "('scans/*.nii.gz') or a list file (.txt, one path per line) of "
                             "NIfTI files and DICOM series folders.")
    given = Path(path).expanduser()
    if not given.exists():
        raise io.VolumeError(f"{key}={path!r} does not exist; give a folder, a glob "
                             "('scans/*.nii.gz') or a list file (.txt, one path per line) of "
                             "NIfTI files and DICOM series folders.")
    if not is_volume(given):
        raise io.VolumeError(f"{key}={path!r} is neither a NIfTI file (.nii, .nii.gz), a DICOM "
                             "series folder, a folder or glob of them, nor a list file "
                             f"({', '.join(LIST_SUFFIXES)}).")
    return named([given])
