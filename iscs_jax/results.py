"""A result folder's lifecycle and contents: written under a hidden temporary name, renamed
at the end, and what goes in it.

An interrupted or failed run never leaves a half-written ``<parent>/<timestamp>/``:
`result_folder` writes under ``.tmp-<time>-<pid>@<host>-<hex>`` and renames it at the end
(removing it on failure, or keeping it for a checkpointing run to continue, `unfinished_run`);
`clean_stale` deals with the temporary folders of killed runs; `writing` turns SIGTERM and a
full or read-only disk into a clean end (`WriteError`); `check_workdir` fails early when the
folder cannot be written. `output_volume` / `write_results` write a reconstruction's volumes
(on the prior's grid or the input's, in [0, 1] or the input's units), measurement, metrics,
config, provenance and figure (`comparison_figure`); `format_table` is the comparison table
of a ``metrics.json``.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import re
import shutil
import signal
import socket
import sys
import threading
import uuid
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from iscs_jax import figures, io
from iscs_jax.data import prepare

PLANES = ("axial", "coronal", "sagittal")
#: In an unfinished (checkpointing) run's temporary folder: the config it runs.
RUN_CONFIG = "run_config.json"
#: errno values of a failed write that the user can fix: space, quota, permissions, a
#: read-only file system.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)
#: ``output_grid`` and ``output_units`` values (`output_volume`).
OUTPUT_GRIDS, OUTPUT_UNITS = ("prior", "input"), ("unit", "input")


class ResultsError(ValueError):
    """A result folder that cannot be used (a file in the way, no permission, another run's)."""


class WriteError(ResultsError):
    """A write of `writing` failed for a reason the user can fix (`WRITE_ERRNOS`)."""


def format_table(metrics: Mapping[str, Mapping]) -> str:
    """The comparison table: one row per method (FBP, each noise control).

    Args:
      metrics: method -> the metrics.json entry (``psnr``, ``ssim``,
        ``discontinuity``, ``seconds``, per-plane ``{"psnr", "ssim"}``); entries
        without a reference hold only ``seconds``.

    Returns:
      the table as text, PSNR in dB.
    """
    header = (f"{'method':<11} {'PSNR':>6} {'SSIM':>6}"
              + "".join(f" {plane[:3] + ' PSNR':>9} {plane[:3] + ' SSIM':>9}" for plane in PLANES)
              + f" {'discont.':>9} {'seconds':>8}")
    lines = [header, "-" * len(header)]
    for name, entry in metrics.items():
        if "psnr" not in entry:
            lines.append(f"{name:<11} {'-':>6} {'-':>6}" + f" {'-':>9}" * 7
                         + f" {entry['seconds']:>8.2f}")
            continue
        planes = "".join(f" {entry[p]['psnr']:>9.2f} {entry[p]['ssim']:>9.4f}" for p in PLANES)
        jump = entry["discontinuity"]
        jump = "-" if jump is None else f"{jump:.4f}"  # None: a single slice
        lines.append(f"{name:<11} {entry['psnr']:>6.2f} {entry['ssim']:>6.4f}{planes}"
                     f" {jump:>9} {entry['seconds']:>8.2f}")
    return "\n".join(lines)


def _claim_name(parent: Path, stem: str) -> Path:
    """Creates and returns the first free folder of ``parent/stem``, ``stem_1``, ...

    ``mkdir`` claims the name atomically, so runs finishing in the same second (or
    processes sharing a results folder) never pick the same one; renaming the finished
    folder onto the claimed empty one then replaces it.
    """
    suffix = 0
    while True:
        path = parent / (stem if suffix == 0 else f"{stem}_{suffix}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            suffix += 1


def unfinished_run(parent: str | os.PathLike, config_json: str) -> Path | None:
    """The newest unfinished checkpointing run of ``parent``.

    Args:
      parent: the folder the runs write into.
      config_json: the config of this run, as written to `RUN_CONFIG`.

    Returns:
      the newest ``.tmp-*`` folder of ``parent`` holding `RUN_CONFIG`, or None when there
      is none.

    Raises:
      ResultsError: that run was started with another config (the keys that differ named).
    """
    runs = sorted((p for p in Path(parent).glob(".tmp-*") if (p / RUN_CONFIG).is_file()),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    if not runs:
        return None
    theirs, ours = json.loads((runs[0] / RUN_CONFIG).read_text()), json.loads(config_json)
    differ = sorted(_differences(theirs, ours))
    if differ:
        raise ResultsError(f"the newest unfinished run {str(runs[0])!r} was started with "
                           f"another config (different: {', '.join(differ)})")
    return runs[0]


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    out = []
    for key in sorted(set(a) | set(b)):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            out += _differences(a[key], b[key], f"{prefix}{key}.")
        elif a.get(key) != b.get(key):
            out.append(prefix + key)
    return out


def _write_problem(err: OSError) -> str:
    name = errno.errorcode.get(err.errno, str(err.errno))
    return f"{err.strerror or err} ({name})"


def check_workdir(parent: str | os.PathLike, workdir: str | os.PathLike, *,
                  name: str = "workdir") -> None:
    """Fails unless ``parent`` exists as a writable folder or can be created.

    The nearest existing folder must be a folder in which one can create a folder (probed
    with a folder created and removed at once, so nothing is left).

    Args:
      parent: the folder results will be written into (e.g. ``<workdir>/<config>``).
      workdir: the root the user chose, named in the messages.
      name: how the messages name ``workdir`` (e.g. a command-line flag).

    Raises:
      ResultsError: a file in the way, or no permission, naming the path.
    """
    parent = Path(parent)
    existing = next(p for p in (parent, *parent.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise ResultsError(f"{name} {str(workdir)!r}: {str(existing)!r} is a file, not a "
                           "folder, so the results cannot be written there; pass another "
                           f"{name} (or move the file away).")
    probe = existing / f".write-check-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as err:
        raise ResultsError(f"{name} {str(workdir)!r}: cannot create folders in "
                           f"{str(existing)!r}: {_write_problem(err)}; pass a writable "
                           f"{name} (or fix its permissions).") from err


def host() -> str:
    """This machine's name as used in temporary folder names (``[A-Za-z0-9._]``)."""
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


#: ``.tmp-<YYYYmmdd-HHMMSS>-<pid>@<host>-<8 hex>``, the temporary name of `result_folder`.
_TEMPORARY = re.compile(r"^\.tmp-\d{8}-\d{6}-(\d+)@([^-/]+)-[0-9a-f]{8}$")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def clean_stale(parent: str | os.PathLike, log: Callable[[str], None] = print,
                keep: Path | None = None, *,
                resume_hint: str = "rerun with the same settings, resuming") -> None:
    """Deals with the temporary folders (``.tmp-*``) in ``parent`` left by killed runs.

    A checkpointing run's (holding `RUN_CONFIG`) is kept and reported; another one is
    removed when the process that wrote it (named in the folder's name) is no longer
    running on this host, else reported.

    Args:
      parent: the folder the runs write into.
      log: receives one line per folder found.
      keep: a folder this run continues (left alone).
      resume_hint: how the line about a resumable run says to continue it.
    """
    for folder in sorted(Path(parent).glob(".tmp-*")):
        if not folder.is_dir() or (keep is not None and folder == Path(keep)):
            continue
        if (folder / RUN_CONFIG).is_file():
            log(f"note: {folder} is an unfinished run that can be continued: {resume_hint} "
                "(or remove the folder).")
            continue
        match = _TEMPORARY.match(folder.name)
        if match and match.group(2) == host() and not _running(int(match.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
            log(f"removed {folder}, the unfinished result folder of a run that was stopped "
                f"(process {match.group(1)})")
        else:
            log(f"note: {folder} is the unfinished result folder of another run (it may still "
                "be running); remove it if it is not.")


@contextlib.contextmanager
def sigterm_exits():
    """SIGTERM raises ``SystemExit(128 + SIGTERM)`` inside the block (so ``finally`` clauses
    run, e.g. `result_folder` removing its temporary folder); the previous handler is
    restored after. Only in the main thread (elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        del frame
        print("Terminated while writing the results.", file=sys.stderr)
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


@contextlib.contextmanager
def writing(where: str | os.PathLike):
    """A final write: under `sigterm_exits`, and an OSError of `WRITE_ERRNOS` (disk full, no
    permission, read-only) becomes a `WriteError` naming ``where``; other errors pass."""
    with sigterm_exits():
        try:
            yield
        except OSError as err:
            if err.errno not in WRITE_ERRNOS:
                raise
            raise WriteError(f"Could not write the results in {str(where)!r}: "
                             f"{_write_problem(err)}.") from err


@contextlib.contextmanager
def result_folder(parent: str | os.PathLike, *, reuse: Path | None = None,
                  keep_on_error: bool = False):
    """Yields a temporary folder that becomes ``parent/<timestamp>`` on success.

    On any exception (including KeyboardInterrupt) the temporary folder is removed and
    nothing is left in ``parent`` besides what was there, unless ``keep_on_error``. The
    closing rename runs under `writing` (SIGTERM and a full or read-only disk end the run
    cleanly, the latter with a `WriteError`).

    Args:
      parent: where the result folder goes.
      reuse: an unfinished run's temporary folder to continue (`unfinished_run`).
      keep_on_error: keep the temporary folder when the block fails (a checkpointing run).

    Yields:
      an object with ``path`` (the temporary folder) and, after the block, ``final``.
    """
    parent = Path(parent)
    missing = [p for p in (parent, *parent.parents) if not p.exists()]
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    if reuse is not None:
        handle, missing = _Folder(Path(reuse)), []
    else:
        handle = _Folder(parent / f".tmp-{stamp}-{os.getpid()}@{host()}-"
                         f"{uuid.uuid4().hex[:8]}")
        handle.path.mkdir()  # (not tempfile.mkdtemp: the folder keeps the user's umask)
    try:
        yield handle
        with writing(parent):
            final = _claim_name(parent, stamp)
            try:
                os.rename(handle.path, final)  # onto the claimed empty folder
            except BaseException:  # (SIGTERM included)
                final.rmdir()
                raise
        handle.final = final
    except BaseException:
        if keep_on_error:
            handle.keep = True
        raise
    finally:
        if handle.path.exists() and not handle.keep:
            shutil.rmtree(handle.path, ignore_errors=True)
            for folder in missing:  # folders this call created, innermost first
                with contextlib.suppress(OSError):
                    folder.rmdir()


class _Folder:
    def __init__(self, path: Path):
        self.path = path
        self.final: Path | None = None
        self.keep = False


def output_volume(planes, *, plane: str, affine, grid, output_grid: str = "prior",
                  output_units: str = "unit", offset: bool = True):
    """A result's planes as written: on the prior's grid or the input's, in [0, 1] or in the
    input's units, in the input's own orientation.

    Args:
      planes: ``[N, R, R]`` planes of ``plane`` (`prepare.to_planes`).
      plane: ``"axial"``, ``"coronal"`` or ``"sagittal"``.
      affine: ``[4, 4]`` affine of ``prepare.from_planes(planes, plane)`` (prior's grid).
      grid: the input's `prepare.InputGrid` (None without an input volume: ``"prior"`` and
        ``"unit"`` only).
      output_grid: one of `OUTPUT_GRIDS`; output_units: one of `OUTPUT_UNITS`.
      offset: False for a standard deviation (scaled, not shifted, into the input's units).

    Returns:
      ``(volume [D, H, W], affine [4, 4])``.
    """
    if output_grid == "input":
        volume, affine = prepare.to_input_volume(planes, grid)
    else:  # in the input's own orientation (array order and affine) too
        volume, affine = prepare.restore_orientation(prepare.from_planes(planes, plane),
                                                     affine, grid)
    if output_units == "input":
        volume = prepare.to_input_units(volume, grid, offset)
    return volume, affine


def write_results(folder: str | os.PathLike, *, volumes: Mapping, stds: Mapping, reference,
                  measurement, table: Mapping, config_json: str, figure, baseline_name: str,
                  provenance: dict | None = None, **output) -> None:
    """Writes a reconstruction's files into ``folder``.

    Args:
      folder: an existing folder (e.g. `result_folder`'s ``path``).
      volumes: method -> ``[N, R, R]`` planes; the baseline is ``<baseline_name>.nii.gz``
        (e.g. ``fbp.nii.gz``), the others ``recon_<method>.nii.gz``.
      stds: method -> ``[N, R, R]`` standard deviation over samples (``std_<method>``).
      reference: ground-truth planes ``[N, R, R]`` (``gt.nii.gz``) or None.
      measurement: the measurement ``y`` (``measurement.npy``).
      table: the metrics (``metrics.json``); config_json: ``config.json``'s text.
      figure: a matplotlib figure (``figure.png``); baseline_name: see ``volumes``.
      provenance: ``provenance.json``'s record, or None.
      **output: `output_volume`'s ``plane``, ``affine``, ``grid``, ``output_grid`` and
        ``output_units``.
    """
    folder = Path(folder)

    def save(filename, planes, offset=True):
        io.write_nifti(folder / filename, *output_volume(planes, offset=offset, **output))

    for name, volume in volumes.items():
        save(f"{name}.nii.gz" if name == baseline_name else f"recon_{name}.nii.gz", volume)
    for name, std in stds.items():
        save(f"std_{name}.nii.gz", std, offset=False)
    if reference is not None:
        save("gt.nii.gz", reference)
    np.save(folder / "measurement.npy", measurement)
    (folder / "metrics.json").write_text(json.dumps(table, indent=2) + "\n")
    (folder / "config.json").write_text(config_json)
    if provenance is not None:
        (folder / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    figures.save_figure(figure, folder / "figure.png")


def comparison_figure(volumes: Mapping, *, reference, plane: str, affine, baseline_name: str,
                      title: str):
    """Orthogonal views of the ground truth, the baseline and each reconstruction, with
    error maps (`figures.orthogonal_views`).

    Args:
      volumes: method -> ``[N, R, R]`` planes of ``plane``; reference: the same, or None.
      affine: ``[4, 4]`` affine of the volume (for the voxel spacing).
      baseline_name: the method shown in capitals (e.g. ``FBP``); title: the figure's.

    Returns:
      the matplotlib figure.
    """
    labels = {name: (name.upper() if name == baseline_name else name) for name in volumes}
    spacing = io.voxel_spacing(affine)[::-1]
    reference = None if reference is None else prepare.from_planes(reference, plane)
    return figures.orthogonal_views(
        {labels[n]: prepare.from_planes(v, plane) for n, v in volumes.items()},
        reference=reference, spacing=spacing, title=title)
