"""Deterministic data augmentation for small 2D training sets.

A real volume gives few slices (65 for the shipped chest-CT prior). `augment_slices`
expands them once, before training, into a fixed set of randomly transformed copies:
a small rotation, isotropic zoom and shift about the image centre, an optional
blend with the next slice along z (a plausible intermediate slice), and an
intensity gain. Everything is drawn from ``numpy.random.default_rng(seed)``, so
the set is a pure function of its arguments and a resumed training sees the same
data. Horizontal/vertical flips stay with the batches (`iscs_jax.data.batches`).
"""

from __future__ import annotations

import dataclasses

import chex
import numpy as np
from scipy import ndimage


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Ranges of the random transforms (each drawn uniformly in ``[-r, r]``).

    Attributes:
      copies: transformed copies per input slice (the first copy of each slice is
        the slice itself, untransformed).
      rotation_degrees: in-plane rotation.
      zoom: relative zoom, ``1 + U[-zoom, zoom]``.
      shift: translation as a fraction of the image size.
      gain: intensity gain, ``1 + U[-gain, gain]`` (applied before clipping to [0, 1]).
      z_blend: probability of blending with the next slice by a uniform weight in [0, 1].
    """

    copies: int = 1
    rotation_degrees: float = 0.0
    zoom: float = 0.0
    shift: float = 0.0
    gain: float = 0.0
    z_blend: float = 0.0

    def __post_init__(self):
        if self.copies < 1:
            raise ValueError(f"copies must be >= 1, got {self.copies}.")
        for name in ("rotation_degrees", "zoom", "shift", "gain", "z_blend"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if self.zoom >= 1 or self.z_blend > 1:
            raise ValueError(f"need zoom < 1 and z_blend <= 1, got {self.zoom}, {self.z_blend}.")


def affine_warp(image: np.ndarray, degrees: float, zoom: float, shift) -> np.ndarray:
    """Rotates by ``degrees``, zooms by ``zoom`` and shifts by ``shift`` pixels about the centre.

    Args:
      image: ``[H, W]``.
      shift: ``(dy, dx)`` in pixels.

    Returns:
      ``[H, W]`` float32, cubic spline interpolation, zero outside the input.
    """
    chex.assert_rank(image, 2)
    theta = np.deg2rad(degrees)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    matrix = rotation / zoom  # output -> input coordinates
    centre = (np.asarray(image.shape, np.float64) - 1) / 2
    offset = centre - matrix @ (centre + np.asarray(shift, np.float64))
    out = ndimage.affine_transform(image.astype(np.float64), matrix, offset=offset, order=3,
                                   mode="constant", cval=0.0)
    return out.astype(np.float32)


def augment_slices(slices: np.ndarray, augmentation: Augmentation, seed: int) -> np.ndarray:
    """``copies`` transformed versions of every slice, clipped to [0, 1].

    Args:
      slices: ``[N, H, W]`` in [0, 1], consecutive along z (for ``z_blend``).
      augmentation: the transform ranges.
      seed: seed of the draws.

    Returns:
      float32 ``[N * copies, H, W]``: slice n's copies are rows ``n * copies ...``.
    """
    chex.assert_rank(slices, 3)
    aug, rng = augmentation, np.random.default_rng(seed)
    n, height, width = slices.shape
    out = np.empty((n, aug.copies, height, width), np.float32)
    for i in range(n):
        out[i, 0] = slices[i]
        for c in range(1, aug.copies):
            u = rng.uniform(-1.0, 1.0, size=5)
            image = slices[i]
            if i + 1 < n and rng.random() < aug.z_blend:
                t = rng.random()
                image = (1 - t) * image + t * slices[i + 1]
            shift = (u[2] * aug.shift * height, u[3] * aug.shift * width)
            warped = affine_warp(image, u[0] * aug.rotation_degrees, 1 + u[1] * aug.zoom, shift)
            out[i, c] = warped * (1 + u[4] * aug.gain)
    return np.clip(out.reshape(n * aug.copies, height, width), 0.0, 1.0)
