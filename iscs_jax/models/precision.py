"""The precision a network computes in: `DTYPES`, `network_dtype`, and `cast_params`.

A network built with ``dtype=bfloat16`` (`iscs_jax.models.unet.UNet`,
`iscs_jax.models.ncsnpp.NCSNpp`) takes float32 images, runs its convolutions, products and
activations in bfloat16 and returns float32; normalisation statistics, softmaxes and the
noise embeddings' sines are computed in float32 inside it. The denoisers built from it
(both ``make_denoise_fn``) cast their parameters to that dtype once, with `cast_params`, so
a call does not convert 61M float32 weights again, and keep the preconditioning (EDM
scalings, Tweedie's ``x + sigma^2 score``) in float32: a sampler's state, data consistency
and metrics never see bfloat16.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

#: Name -> dtype of the precisions a prior can compute in (``prior.dtype`` in the CLI).
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def network_dtype(dtype) -> np.dtype:
    """The dtype named by ``dtype`` (a `DTYPES` name or the dtype itself).

    Raises:
      ValueError: ``dtype`` is none of `DTYPES`; the message lists the valid names.
    """
    try:
        found = np.dtype(dtype)
    except TypeError:
        found = None
    if found is None or found.name not in DTYPES:
        raise ValueError(f"dtype={dtype!r} is not one of {sorted(DTYPES)}.")
    return found


def cast_params(state: nnx.State, dtype) -> nnx.State:
    """``state`` with its floating `nnx.Param` values cast to ``dtype`` (once, at load).

    Other variables keep their dtype: NCSN++'s `Buffer`s (its Fourier frequencies, about
    16 x N(0, 1), times log(sigma) give phases of hundreds of radians, which bfloat16's 8-bit
    mantissa would scramble). Values already in ``dtype`` are kept as they are (no copy).
    """
    dtype = network_dtype(dtype)

    def cast(variable):
        value = variable.get_value()
        if (not isinstance(variable, nnx.Param) or value.dtype == dtype
                or not jnp.issubdtype(value.dtype, jnp.floating)):
            return variable
        return variable.replace(value.astype(dtype))

    return jax.tree.map(cast, state, is_leaf=lambda leaf: isinstance(leaf, nnx.Variable))


def cast_to_network(graphdef: nnx.GraphDef, state: nnx.State) -> nnx.State:
    """``state`` cast (`cast_params`) to the dtype its network computes in: the module's
    ``dtype`` attribute (``UNet(..., dtype=...)``, ``NCSNpp(..., dtype=...)``), float32 when
    it has none."""
    return cast_params(state, getattr(nnx.merge(graphdef, state), "dtype", jnp.float32))
