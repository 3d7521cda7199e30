"""Samplers by name: ``SAMPLERS`` maps a name to its ``reconstruct`` function.

Every ``reconstruct`` has the signature
``reconstruct(key, y, operator, denoise_fn, *, noise, sigmas, <own settings>, **common)``
(``common``: `core.sample`'s ``x_init``, ``renoise``, ``eta``, ``chunk_size``,
``layout``, ``final_denoise``, ``python_loop``, ``window``), so the CLI, the sharded path and
the contract tests treat them alike. Adding a sampler here puts it under all of them.
"""

from __future__ import annotations

from typing import Callable

from iscs_jax.samplers import admm_tv, ddnm, dds, dps

SAMPLERS: dict[str, Callable] = {
    "dds": dds.reconstruct,
    "ddnm": ddnm.reconstruct,
    "dps": dps.reconstruct,
    "admm_tv": admm_tv.reconstruct,
}

#: Each sampler's own settings (a frozen dataclass; its fields are ``reconstruct`` keywords).
SETTINGS = {"dds": dds.Settings, "ddnm": ddnm.Settings, "dps": dps.Settings,
            "admm_tv": admm_tv.Settings}


def get_sampler(name: str) -> Callable:
    """Returns the ``reconstruct`` function of a sampler by name (see `SAMPLERS`)."""
    if name not in SAMPLERS:
        raise ValueError(f"Unknown sampler {name!r}; valid samplers: {sorted(SAMPLERS)}.")
    return SAMPLERS[name]
