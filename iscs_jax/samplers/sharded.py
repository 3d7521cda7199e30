"""`reconstruct_sharded`: any sampler of `SAMPLERS` with the slices sharded over a device mesh.

A one-call form of the runtime (`iscs_jax.runtime.Reconstructor`, where the
program lives and the sharding is described): the slice count D is zero-padded
to a multiple of the device count and split in blocks; every device denoises
its own slices and draws their noise from the shared key and their global ids,
slice-coupling operators exchange halos or cut their share of a global
measurement, global sums are ``lax.psum`` reductions. The result equals the
single-device one up to float reassociation of those sums.
"""

from __future__ import annotations

from typing import Callable

import jax
from jax.sharding import Mesh

from iscs_jax.samplers import core


def reconstruct_sharded(key: jax.Array, y, operator, denoise_fn: Callable, *, mesh: Mesh,
                        sigmas, sampler: str = "dds", x_init=None,
                        window: core.Window | None = None, **sampler_kwargs) -> jax.Array:
    """Any sampler of `SAMPLERS` with the slices sharded over ``mesh``; same result on any count.

    Args:
      key: ``jax.random`` key (shared by all devices).
      y: measurements, host data with slices leading for slice-wise and halo operators
        (e.g. ``[D, angles, detectors]``), the same on every process of a multi-host run.
      operator: slice-wise, or with ``A_sharded`` / ``AT_sharded`` (and
        ``local_measurement`` when its coupling is ``"global"``).
      denoise_fn: ``DenoiseFn(x [c, H, W], sigma) -> [c, H, W]`` or a `Denoiser`.
      mesh: one-axis mesh over the devices to use (`parallel.make_mesh`).
      sigmas: ``[N]`` noise levels.
      sampler: a key of `SAMPLERS` (``"dds"``, ``"ddnm"``, ``"dps"``, ``"admm_tv"``).
      x_init: optional warm start ``[D, H, W]``.
      window: run one piece of the steps (`core.Window`); its ``x`` is ``None`` or what
        the previous piece returned.
      **sampler_kwargs: ``noise`` (required), ``renoise``, ``eta``, ``chunk_size`` (per
        device), ``final_denoise`` and the sampler's own settings.

    Returns:
      the reconstruction ``[D, H, W]``, a global array over ``mesh`` (use
      `parallel.gather_to_host` for numpy on every process); with a ``window``, the
      padded iterate ``[D_pad, H, W]`` (feed it to the next piece; strip ``[:D]`` after
      the last).
    """
    from iscs_jax import runtime  # noqa: PLC0415 (the runtime builds on this package)

    if "noise" not in sampler_kwargs:
        raise ValueError("noise is required: a noise kind ('iid', 'iscs', 'shared') or NoiseFn.")
    if window is None:
        return runtime.reconstruct(key, y, operator, denoise_fn, sigmas=sigmas, sampler=sampler,
                                   mesh=mesh, x_init=x_init, **sampler_kwargs)
    noise = sampler_kwargs.pop("noise")
    recon = runtime.Reconstructor(operator, denoise_fn, sigmas=sigmas, sampler=sampler,
                                  noises=(noise,), mesh=mesh, **sampler_kwargs)
    return recon.piece(key, recon.prepare(y, x_init), window, noise=noise)
