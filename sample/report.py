"""What a run shows and writes: progress bar, comparison table, result folder.

The result folder is first written under a hidden temporary name next to its
final place and renamed at the end, so an interrupted or failed run never
leaves a half-written ``<workdir>/<config>/<timestamp>/``.
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
from typing import Mapping

from tqdm.auto import tqdm

from .errors import UserError

PLANES = ("axial", "coronal", "sagittal")


class StepProgress:
    """A tqdm bar over a sampler's steps, advanced from Python between steps.

    The CLI runs a sampler one step per call (`samplers.core.run_in_pieces`)
    and calls `advance` after each, so the compiled programs hold no host
    callback and JAX's persistent compilation cache can keep them.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._bar = None
        self.steps_seen = 0  # steps of the current bar (counted even when tqdm is hidden)

    def start(self, total: int, description: str) -> None:
        """Opens a bar of ``total`` steps (closing any open one)."""
        self.close()
        self.steps_seen = 0
        disable = None if self.enabled else True  # None: shown on a terminal only
        self._bar = tqdm(total=total, desc=description, unit="step", disable=disable,
                         leave=False, dynamic_ncols=True)

    def advance(self) -> None:
        """Marks one more step done."""
        self.steps_seen += 1
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        """Closes the open bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


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


#: In an unfinished (checkpointing) run's temporary folder: the config it runs.
RUN_CONFIG = "run_config.json"


def unfinished_run(parent: str | os.PathLike, config_json: str) -> Path:
    """The newest unfinished checkpointing run of ``parent`` (a ``.tmp-*`` folder holding
    `RUN_CONFIG`), which must have been started with the config ``config_json``.

    Raises:
      UserError: there is none, or it ran another config (the keys that differ named).
    """
    runs = sorted((p for p in Path(parent).glob(".tmp-*") if (p / RUN_CONFIG).is_file()),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    if not runs:
        raise UserError(f"--resume: there is no unfinished run in {str(parent)!r} to continue "
                        "(a run can be resumed when it was started with "
                        "--config.checkpoint.every=K); drop --resume to start afresh.")
    theirs, ours = json.loads((runs[0] / RUN_CONFIG).read_text()), json.loads(config_json)
    differ = sorted(_differences(theirs, ours))
    if differ:
        raise UserError(f"--resume: the newest unfinished run {str(runs[0])!r} was started with "
                        f"another config (different: {', '.join(differ)}); resume it with the "
                        "same config and overrides, or drop --resume to start afresh.")
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


#: errno values of a failed write that the user can fix: space, quota, permissions, a
#: read-only file system.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)


def _write_problem(err: OSError) -> str:
    name = errno.errorcode.get(err.errno, str(err.errno))
    return f"{err.strerror or err} ({name})"


def check_workdir(parent: str | os.PathLike, workdir: str | os.PathLike) -> None:
    """Fails unless ``parent`` (``<workdir>/<config>``) exists as a writable folder or can be
    created: the nearest existing folder must be a folder in which one can create a folder
    (probed with a folder created and removed at once, so nothing is left).

    Raises:
      UserError: naming ``--workdir`` and the path (a file in the way, or no permission).
    """
    parent = Path(parent)
    existing = next(p for p in (parent, *parent.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise UserError(f"--workdir {str(workdir)!r}: {str(existing)!r} is a file, not a "
                        "folder, so the results cannot be written there; pass another "
                        "--workdir (or move the file away).")
    probe = existing / f".write-check-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as err:
        raise UserError(f"--workdir {str(workdir)!r}: cannot create folders in "
                        f"{str(existing)!r}: {_write_problem(err)}; pass a writable "
                        "--workdir (or fix its permissions).") from err


def _host() -> str:
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


def clean_stale(parent: str | os.PathLike, log=print, keep: Path | None = None) -> None:
    """Deals with the temporary folders (``.tmp-*``) in ``parent`` left by killed runs.

    A checkpointing run's (holding `RUN_CONFIG`) is kept and reported with the
    ``--resume`` hint; another one is removed when the process that wrote it (named in
    the folder's name) is no longer running on this host, else reported. ``keep``: a
    folder this run continues (left alone).
    """
    for folder in sorted(Path(parent).glob(".tmp-*")):
        if not folder.is_dir() or (keep is not None and folder == Path(keep)):
            continue
        if (folder / RUN_CONFIG).is_file():
            log(f"note: {folder} is an unfinished run that can be continued: run the same "
                "config and overrides with --resume (or remove the folder).")
            continue
        match = _TEMPORARY.match(folder.name)
        if match and match.group(2) == _host() and not _running(int(match.group(1))):
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
def writing(where: str | os.PathLike, resumable: bool = False):
    """The final write: under `sigterm_exits`, and an OSError of `WRITE_ERRNOS` (disk full,
    no permission, read-only) becomes a one-paragraph `UserError` naming ``where``."""
    with sigterm_exits():
        try:
            yield
        except OSError as err:
            if err.errno not in WRITE_ERRNOS:
                raise
            kept = (" The unfinished run is kept: once there is room, run the same command "
                    "with --resume." if resumable else " Nothing was written.")
            raise UserError(f"Could not write the results in {str(where)!r}: "
                            f"{_write_problem(err)}. Free some space or pass another --workdir "
                            f"(or fix its permissions).{kept}") from err


@contextlib.contextmanager
def result_folder(parent: str | os.PathLike, *, reuse: Path | None = None,
                  keep_on_error: bool = False):
    """Yields a temporary folder that becomes ``parent/<timestamp>`` on success.

    On any exception (including KeyboardInterrupt) the temporary folder is
    removed and nothing is left in ``parent`` besides what was there, unless
    ``keep_on_error`` (a checkpointing run, which ``--resume`` continues). The
    final path is stored in the yielded object's ``final`` attribute after the
    ``with`` block. The closing rename runs under `writing` (SIGTERM and a full or
    read-only disk end the run cleanly, the latter with a `UserError`).

    Args:
      parent: where the result folder goes.
      reuse: an unfinished run's temporary folder to continue (`unfinished_run`).
      keep_on_error: keep the temporary folder when the block fails.
    """
    parent = Path(parent)
    missing = [p for p in (parent, *parent.parents) if not p.exists()]
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    if reuse is not None:
        handle, missing = _Folder(Path(reuse)), []
    else:
        handle = _Folder(parent / f".tmp-{stamp}-{os.getpid()}@{_host()}-"
                         f"{uuid.uuid4().hex[:8]}")
        handle.path.mkdir()  # (not tempfile.mkdtemp: the folder keeps the user's umask)
    try:
        yield handle
        with writing(parent, resumable=keep_on_error):
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
