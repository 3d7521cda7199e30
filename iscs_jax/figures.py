"""Orthogonal-view figure: axial, coronal and sagittal planes of several volumes.

One row per volume (ground truth, FBP, each reconstruction), three image
columns (central axial, coronal and sagittal planes) and, when a reference is
given, three absolute-error columns. Built on `matplotlib.figure.Figure`
directly (no pyplot state) and written with the Agg canvas, so it works
headless and does not change the user's matplotlib backend.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

PLANES = ("axial", "coronal", "sagittal")


def central_planes(volume: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)):
    """The three central planes of ``volume [D, H, W]`` and their display aspects.

    Args:
      volume: ``[D, H, W]``.
      spacing: voxel size along (D, H, W), for the aspect ratio of each plane.

    Returns:
      list of ``(plane name, image 2D, aspect)``: axial ``[H, W]``, coronal
      ``[D, W]`` and sagittal ``[D, H]``, slice axis pointing up.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"volume must be [D, H, W], got shape {volume.shape}.")
    depth, height, width = volume.shape
    sd, sh, sw = (float(s) for s in spacing)
    return [
        ("axial", volume[depth // 2], sh / sw),
        ("coronal", volume[::-1, height // 2, :], sd / sw),
        ("sagittal", volume[::-1, :, width // 2], sd / sh),
    ]


def orthogonal_views(volumes: Mapping[str, np.ndarray], reference: np.ndarray | None = None,
                     spacing: Sequence[float] = (1.0, 1.0, 1.0), vmin: float = 0.0,
                     vmax: float = 1.0, error_max: float | None = None,
                     title: str | None = None):
    """Orthogonal views of each volume, with error maps against ``reference``.

    Args:
      volumes: name -> ``[D, H, W]`` (same shape), one figure row each, in order.
      reference: ``[D, H, W]`` ground truth; adds a first row and |error| columns.
      spacing: voxel size along (D, H, W).
      vmin, vmax: grey-value window of the images.
      error_max: upper end of the error colour map (default: 0.25 (vmax - vmin)).
      title: optional figure title.

    Returns:
      a `matplotlib.figure.Figure`.
    """
    from matplotlib.figure import Figure

    rows = ([("ground truth", reference)] if reference is not None else []) + list(volumes.items())
    if not rows:
        raise ValueError("orthogonal_views needs at least one volume.")
    shapes = {np.shape(v) for _, v in rows}
    if len(shapes) != 1:
        raise ValueError(f"All volumes must have the same [D, H, W] shape, got {sorted(shapes)}.")
    columns = 3 if reference is None else 6
    error_max = 0.25 * (vmax - vmin) if error_max is None else error_max
    figure = Figure(figsize=(2.0 * columns, 2.0 * len(rows) + 0.4 * bool(title)),
                    layout="constrained")
    axes = figure.subplots(len(rows), columns, squeeze=False)
    for r, (name, volume) in enumerate(rows):
        planes = central_planes(volume, spacing)
        for c, (plane, image, aspect) in enumerate(planes):
            _show(axes[r, c], image, aspect, "gray", vmin, vmax)
            axes[0, c].set_title(plane)
        axes[r, 0].set_ylabel(name)
        if reference is None:
            continue
        for c, ((plane, image, aspect), (_, ref, _)) in enumerate(
                zip(planes, central_planes(reference, spacing))):
            error = np.abs(np.asarray(image, np.float32) - np.asarray(ref, np.float32))
            _show(axes[r, 3 + c], error if r else None, aspect, "magma", 0.0, error_max)
            axes[0, 3 + c].set_title(f"|error| {plane}")
    if title:
        figure.suptitle(title)
    return figure


def _show(axis, image, aspect, cmap, vmin, vmax):
    axis.set_xticks([])
    axis.set_yticks([])
    if image is None:
        axis.set_frame_on(False)
        return
    axis.imshow(np.asarray(image), cmap=cmap, vmin=vmin, vmax=vmax, aspect=aspect,
                interpolation="nearest")


def save_figure(figure, path: str | os.PathLike, dpi: int = 100) -> None:
    """Writes ``figure`` as PNG with the Agg canvas (headless)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    figure.savefig(str(path), dpi=dpi)
