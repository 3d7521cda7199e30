"""Samplers: pure functions taking a `DenoiseFn`, an operator and a noise control.

``SAMPLERS`` maps a sampler name to its ``reconstruct`` function; use
`get_sampler` for a clear error on unknown names.
"""

from iscs_jax.samplers import cg, dds, renoise
from iscs_jax.samplers.cg import conjugate_gradient
from iscs_jax.samplers.dds import reconstruct
from iscs_jax.samplers.renoise import DEFAULT_ETAS, RENOISE_MODES
from iscs_jax.samplers.sharded import reconstruct_sharded

SAMPLERS = {"dds": dds.reconstruct}


def get_sampler(name: str):
    """Returns the ``reconstruct`` function of a sampler by name (see `SAMPLERS`)."""
    if name not in SAMPLERS:
        raise ValueError(f"Unknown sampler {name!r}; valid samplers: {sorted(SAMPLERS)}.")
    return SAMPLERS[name]


__all__ = ["SAMPLERS", "get_sampler", "reconstruct", "reconstruct_sharded", "conjugate_gradient", "RENOISE_MODES",
           "DEFAULT_ETAS", "cg", "dds", "renoise"]
