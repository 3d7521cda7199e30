"""Samplers: pure functions taking a `DenoiseFn`, an operator and a noise control.

``SAMPLERS`` maps a sampler name (``dds``, ``ddnm``, ``dps``, ``admm_tv``) to its
``reconstruct`` function; use `get_sampler` for a clear error on unknown names.
All share one core (`core.sample`: step loop, initial draw, re-noising, chunked
denoising) and run sharded through `reconstruct_sharded(..., sampler=name)`.
"""

from iscs_jax.samplers import admm_tv, cg, core, ddnm, dds, dps, renoise
from iscs_jax.samplers.cg import conjugate_gradient
from iscs_jax.samplers.dds import reconstruct
from iscs_jax.samplers.dispatch import SAMPLERS, SETTINGS, get_sampler
from iscs_jax.samplers.layout import SliceLayout
from iscs_jax.samplers.renoise import DEFAULT_ETAS, RENOISE_MODES
from iscs_jax.samplers.sharded import reconstruct_sharded

__all__ = ["SAMPLERS", "SETTINGS", "get_sampler", "reconstruct", "reconstruct_sharded",
           "conjugate_gradient", "SliceLayout", "RENOISE_MODES", "DEFAULT_ETAS", "admm_tv", "cg",
           "core", "ddnm", "dds", "dps", "renoise"]
