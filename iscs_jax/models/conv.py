"""A 2D convolution whose input gradient stays fast inside XLA:CPU loops.

JAX differentiates ``y = conv(x, w)`` with respect to ``x`` as a convolution of the
cotangent with the spatially flipped kernel, addressed through swapped kernel dimension
labels (``01oi``) instead of a transposed copy. In a plain jitted function XLA:CPU
materialises the transposed kernel and runs its fast (YNNPACK) convolution; inside a
``while`` body (``lax.scan``, ``lax.map``: the sampler loop, DPS's chunked denoiser) it keeps
the swapped labels and runs a generic convolution instead, 4-10x slower on a 2-core CPU
(one 3x3, 64-channel layer on ``[4, 128, 128, 64]``: 0.12 s instead of 0.03 s per gradient).
`conv_general_dilated` gives stride-1, undilated, ungrouped NHWC/HWIO convolutions a custom
VJP that builds the flipped, transposed HWIO kernel explicitly (behind an optimisation
barrier, so XLA cannot fold it back into the labels); every other convolution is
`jax.lax.conv_general_dilated` itself. The forward pass and both gradients are the same
maths as JAX's own; pass it to ``nnx.Conv(..., conv_general_dilated=...)``.

A 1x1 convolution of that kind is a product over channels. Under differentiation it runs
as ``einsum`` products, forward and backward: XLA:CPU computes the kernel gradient
``einsum("bhwi,bhwo->io")`` in place, where the gradient convolution first transposes the
whole input to put the batch innermost (a U-Net training step ~5% faster, interleaved
runs). Without differentiation (sampling) it stays a convolution, which ran the
sampler's chunked denoising pass of ``phantom64`` 8% faster than the ``einsum``. The two
forms agree to float32 rounding.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")


def _plain(x, w, pads, precision):
    return lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=_NHWC,
                                    precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv(x, w, pads, precision):
    return _plain(x, w, pads, precision)


def _is_pointwise(w) -> bool:
    """A 1x1 kernel (`_custom_pads` admits only zero padding for it)."""
    return w.shape[:2] == (1, 1)


def _conv_fwd(x, w, pads, precision):
    if _is_pointwise(w):  # under differentiation only: see the module docstring
        return jnp.einsum("bhwi,io->bhwo", x, w[0, 0], precision=precision), (x, w)
    return _plain(x, w, pads, precision), (x, w)


def _conv_bwd(pads, precision, residuals, g):
    x, w = residuals
    if _is_pointwise(w):
        return (jnp.einsum("bhwo,io->bhwi", g, w[0, 0], precision=precision),
                jnp.einsum("bhwi,bhwo->io", x, g, precision=precision)[None, None])
    kh, kw = w.shape[:2]
    flipped = lax.optimization_barrier(jnp.swapaxes(w[::-1, ::-1], 2, 3))  # HWIO of the adjoint
    back_pads = ((kh - 1 - pads[0][0], kh - 1 - pads[0][1]),
                 (kw - 1 - pads[1][0], kw - 1 - pads[1][1]))
    dx = _plain(g, flipped, back_pads, precision)
    dw = jax.vjp(lambda k: _plain(x, k, pads, precision), w)[1](g)[0]
    return dx, dw


_conv.defvjp(_conv_fwd, _conv_bwd)


def _custom_pads(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                 dimension_numbers, feature_group_count, kwargs):
    """The explicit ``((lo, hi), (lo, hi))`` padding when the custom VJP applies, else None."""
    if lhs.ndim != 4 or feature_group_count != 1 or any(v is not None for v in kwargs.values()):
        return None
    if any(s != 1 for s in window_strides) or any(
            d != 1 for d in (*(lhs_dilation or ()), *(rhs_dilation or ()))):
        return None
    if lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) != \
            lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC):
        return None
    pads = (lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], (1, 1), padding)
            if isinstance(padding, str) else padding)
    pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    if any(not 0 <= p < k for (lo, hi), k in zip(pads, rhs.shape[:2]) for p in (lo, hi)):
        return None
    return pads


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None, **kwargs):
    """`jax.lax.conv_general_dilated` (same arguments), with the loop-friendly input gradient
    for stride-1 NHWC/HWIO convolutions, and 1x1 ones as ``einsum`` products under
    differentiation (see the module docstring).

    Args:
      lhs: ``[B, H, W, C_in]`` input (other ranks and layouts go to `jax.lax`).
      rhs: ``[kh, kw, C_in, C_out]`` kernel.
      window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
        feature_group_count, precision, **kwargs: as for `jax.lax.conv_general_dilated`.

    Returns:
      ``[B, H', W', C_out]``, exactly `jax.lax.conv_general_dilated`'s value (1x1 kernels
      under differentiation: the ``einsum``'s, equal to float32 rounding).
    """
    pads = _custom_pads(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                        dimension_numbers, feature_group_count, kwargs)
    if pads is None:
        return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                        rhs_dilation, dimension_numbers, feature_group_count,
                                        precision=precision, **kwargs)
    return _conv(lhs, rhs, pads, precision)
