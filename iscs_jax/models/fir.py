"""FIR up/down-sampling (StyleGAN2's upfirdn) written with ordinary depthwise convolutions.

``upfirdn(x, k, up, down, pad)`` on each spatial axis: insert ``up - 1`` zeros
after every sample (length ``n * up``), zero-pad ``pad = (before, after)``,
convolve with the 1D kernel ``k`` (a true convolution, i.e. the kernel
flipped), keep every ``down``-th sample. The 2D filter is the outer product
``k k^T`` applied separably. Kernels are normalised to sum 1 (times ``up`` per
axis when upsampling, so a constant image keeps its value).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def normalized_kernel(kernel: Sequence[float]) -> np.ndarray:
    """The 1D kernel scaled to sum 1 (its outer product then sums to 1 too)."""
    k = np.asarray(kernel, np.float64)
    if k.ndim != 1 or k.size < 1 or k.sum() == 0:
        raise ValueError(f"fir_kernel must be a non-empty 1D sequence with a non-zero sum, got "
                         f"{kernel!r}.")
    return k / k.sum()


def _upfirdn_axis(x: jax.Array, k: np.ndarray, axis: int, up: int, down: int,
                  pad: tuple[int, int]) -> jax.Array:
    """upfirdn along ``axis`` (1 = H, 2 = W) of ``x [B, H, W, C]``."""
    channels = x.shape[-1]
    shape = [1, 1, 1, channels]
    shape[axis - 1] = k.size
    taps = np.broadcast_to(k[::-1].reshape([-1 if i == axis - 1 else 1 for i in range(4)]),
                           shape)
    rhs = jnp.asarray(taps, x.dtype)
    padding = [(0, 0), (0, 0)]
    # lhs_dilation gives (n - 1) * up + 1 samples; the up - 1 trailing zeros go into the padding.
    padding[axis - 1] = (pad[0], pad[1] + up - 1)
    dilation = [1, 1]
    dilation[axis - 1] = up
    strides = [1, 1]
    strides[axis - 1] = down
    return jax.lax.conv_general_dilated(
        x, rhs, window_strides=strides, padding=padding, lhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels)


def upfirdn(x: jax.Array, kernel: np.ndarray, up: int = 1, down: int = 1,
            pad: tuple[int, int] = (0, 0)) -> jax.Array:
    """Separable upfirdn of ``x [B, H, W, C]`` with the 1D ``kernel`` on H and W.

    Returns:
      ``[B, H', W', C]`` with ``H' = (H * up + pad[0] + pad[1] - len(kernel)) // down + 1``.
    """
    x = _upfirdn_axis(x, kernel, 1, up, down, pad)
    return _upfirdn_axis(x, kernel, 2, up, down, pad)


def upsample(x: jax.Array, kernel: Sequence[float], factor: int = 2) -> jax.Array:
    """FIR upsampling ``[B, H, W, C] -> [B, H*factor, W*factor, C]``."""
    k = normalized_kernel(kernel) * factor
    p = k.size - factor
    return upfirdn(x, k, up=factor, pad=((p + 1) // 2 + factor - 1, p // 2))


def downsample(x: jax.Array, kernel: Sequence[float], factor: int = 2) -> jax.Array:
    """FIR downsampling ``[B, H, W, C] -> [B, H/factor, W/factor, C]``."""
    k = normalized_kernel(kernel)
    p = k.size - factor
    return upfirdn(x, k, down=factor, pad=((p + 1) // 2, p // 2))


def conv_downsample(x: jax.Array, weight: jax.Array, kernel: Sequence[float],
                    factor: int = 2) -> jax.Array:
    """FIR filter then a strided ``VALID`` convolution: ``[B, H, W, Cin] -> [B, H/f, W/f, Cout]``.

    Args:
      x: ``[B, H, W, Cin]``.
      weight: ``[k, k, Cin, Cout]`` (HWIO, odd k).
      kernel: the 1D FIR kernel.
      factor: the stride.
    """
    k = normalized_kernel(kernel)
    p = k.size - factor + weight.shape[0] - 1
    x = upfirdn(x, k, pad=((p + 1) // 2, p // 2))
    return jax.lax.conv_general_dilated(x, weight.astype(x.dtype), (factor, factor), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
