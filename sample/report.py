"""What a run shows and writes: progress bar, comparison table, result folder.

The result folder is first written under a hidden temporary name next to its
final place and renamed at the end, so an interrupted or failed run never
leaves a half-written ``<workdir>/<config>/<timestamp>/``.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import os
import shutil
from pathlib import Path
from typing import Mapping

import jax
import numpy as np
from tqdm.auto import tqdm

PLANES = ("axial", "coronal", "sagittal")


class StepProgress:
    """A tqdm bar fed from inside a jitted sampler through `jax.debug.callback`.

    A denoiser wrapped by `with_progress` reports its ``sigma`` on every call;
    a new sigma means a new sampler step (the calls on several chunks of one
    step share it), so the bar shows the step, sigma and ETA without the
    library knowing about tqdm.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._bar = None
        self._last_sigma = None
        self.steps_seen = 0  # steps of the current bar (counted even when tqdm is hidden)

    def start(self, total: int, description: str) -> None:
        """Opens a bar of ``total`` steps (closing any open one)."""
        self.close()
        self._last_sigma, self.steps_seen = None, 0
        disable = None if self.enabled else True  # None: shown on a terminal only
        self._bar = tqdm(total=total, desc=description, unit="step", disable=disable,
                         leave=False, dynamic_ncols=True)

    def on_sigma(self, sigma) -> None:
        """Host callback: advances the bar when sigma changes."""
        sigma = float(np.asarray(sigma))
        if self._bar is None or sigma == self._last_sigma:
            return
        self._last_sigma = sigma
        self.steps_seen += 1
        self._bar.update(1)
        self._bar.set_postfix(sigma=f"{sigma:.3g}", refresh=False)

    def close(self) -> None:
        """Closes the open bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


#: The bar every `with_progress` denoiser reports to (one sampler runs at a time).
PROGRESS = StepProgress()


@functools.lru_cache(maxsize=None)
def with_progress(denoise_fn):
    """``denoise_fn`` that also reports sigma to `PROGRESS`; cached so that jit caches hit."""

    def reporting_denoise_fn(x, sigma):
        jax.debug.callback(PROGRESS.on_sigma, sigma)
        return denoise_fn(x, sigma)

    return reporting_denoise_fn


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


def _free_name(parent: Path, stem: str) -> Path:
    path, suffix = parent / stem, 1
    while path.exists():
        path, suffix = parent / f"{stem}_{suffix}", suffix + 1
    return path


@contextlib.contextmanager
def result_folder(parent: str | os.PathLike):
    """Yields a temporary folder that becomes ``parent/<timestamp>`` on success.

    On any exception (including KeyboardInterrupt) the temporary folder is
    removed and nothing is left in ``parent`` besides what was there. The
    final path is stored in the yielded object's ``final`` attribute after the
    ``with`` block.
    """
    parent = Path(parent)
    missing = [p for p in (parent, *parent.parents) if not p.exists()]
    parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    handle = _Folder(parent / f".tmp-{stamp}-{os.getpid()}")
    handle.path.mkdir()
    try:
        yield handle
        handle.final = _free_name(parent, stamp)
        os.rename(handle.path, handle.final)
    finally:
        if handle.path.exists():
            shutil.rmtree(handle.path, ignore_errors=True)
            for folder in missing:  # folders this call created, innermost first
                with contextlib.suppress(OSError):
                    folder.rmdir()


class _Folder:
    def __init__(self, path: Path):
        self.path = path
        self.final: Path | None = None
