"""Frequency responses of the filtered-backprojection (FBP) filters.

The ramp is built from the band-limited spatial-domain kernel of Kak & Slaney
(h[0] = 1/4, h[n odd] = -1/(pi n)^2, h[n even] = 0), whose discrete Fourier
transform approximates |omega| (cycles per detector) without the DC error of a
sampled |omega|. Windows multiply that ramp: ``shepp-logan`` by
sinc(omega), ``hann`` by (1 + cos(2 pi omega)) / 2.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

#: Minimum length of the zero-padded projection used by the FFT convolution.
MIN_PADDED_LENGTH = 64


def _ramp_window(omega: np.ndarray) -> np.ndarray:
    return np.ones_like(omega)


def _shepp_logan_window(omega: np.ndarray) -> np.ndarray:
    return np.sinc(omega)  # sin(pi omega) / (pi omega)


def _hann_window(omega: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.cos(2.0 * np.pi * omega))


#: Window applied on top of the ramp, by filter name.
FILTERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "ramp": _ramp_window,
    "shepp-logan": _shepp_logan_window,
    "hann": _hann_window,
}


def padded_length(num_detectors: int) -> int:
    """FFT length for filtering: a power of two >= 2 * num_detectors (no wrap-around)."""
    return max(MIN_PADDED_LENGTH, int(2 ** np.ceil(np.log2(2 * num_detectors))))


def ramp_kernel(size: int) -> np.ndarray:
    """Spatial ramp kernel h of length ``size`` in FFT (wrap-around) order, float64 ``[size]``."""
    n = np.arange(size)
    n = np.minimum(n, size - n)  # circular distance to 0
    kernel = np.zeros(size)
    kernel[0] = 0.25
    odd = n % 2 == 1
    kernel[odd] = -1.0 / (np.pi * n[odd]) ** 2
    return kernel


def fbp_filter(name: str, size: int) -> np.ndarray:
    """Real frequency response of filter ``name`` for an ``rfft`` of length ``size``.

    Args:
      name: one of ``FILTERS`` ("ramp", "shepp-logan", "hann").
      size: padded projection length (see `padded_length`).

    Returns:
      float32 ``[size // 2 + 1]``, approximately |omega| * window(omega), omega in
      cycles per detector pixel (0 ... 1/2).
    """
    if name not in FILTERS:
        raise ValueError(
            f"Unknown FBP filter {name!r}; valid names are {sorted(FILTERS)}.")
    ramp = np.real(np.fft.rfft(ramp_kernel(size)))
    omega = np.fft.rfftfreq(size)
    return (ramp * FILTERS[name](omega)).astype(np.float32)
