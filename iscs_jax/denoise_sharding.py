"""Splitting one denoiser call's batch over the local devices.

`shard_denoiser(denoise_fn)` returns a `DenoiseFn` with the same signature
that pads the batch ``[n, H, W]`` to a multiple of the device count, runs
``denoise_fn`` on each device's share under ``jax.shard_map`` and returns the
first n results. Each image is denoised by the same function on the same
input, so results equal the unsharded ones up to the devices' float
reassociation (identical on CPU).

Where it pays: several accelerators on one host, or a CPU whose cores are
exposed as host devices (``XLA_FLAGS=--xla_force_host_platform_device_count=N``
before JAX starts), where one U-Net call otherwise leaves most cores idle in
its small convolutions. With one device it returns ``denoise_fn`` itself.

Everything outside the wrapped call stays where it was placed: inside a
jitted sampler on a one-device array the rest of the program is replicated
over the mesh, so use it where the denoiser dominates, or shard the whole
sampler instead (`samplers.reconstruct_sharded`).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, PartitionSpec

from iscs_jax.sde import DenoiseFn

#: Mesh axis the batch is split over.
AXIS = "denoise_batch"


def shard_denoiser(denoise_fn: DenoiseFn, devices: Sequence[jax.Device] | None = None) -> DenoiseFn:
    """``denoise_fn`` with its batch split over ``devices`` (default: the local devices).

    Args:
      denoise_fn: ``DenoiseFn(x [n, H, W], sigma scalar or [n]) -> x0_hat [n, H, W]``.
      devices: the devices to split over; one device (or none given on a
        one-device host) returns ``denoise_fn`` unchanged.

    Returns:
      a `DenoiseFn` with the same signature and results.
    """
    devices = tuple(jax.local_devices() if devices is None else devices)
    if len(devices) < 1:
        raise ValueError("shard_denoiser needs at least one device.")
    if len(devices) == 1:
        return denoise_fn
    mesh = jax.sharding.Mesh(np.asarray(devices), (AXIS,), axis_types=(AxisType.Auto,))
    split, whole = PartitionSpec(AXIS), PartitionSpec()
    per_sample = jax.shard_map(denoise_fn, mesh=mesh, in_specs=(split, split), out_specs=split)
    shared = jax.shard_map(denoise_fn, mesh=mesh, in_specs=(split, whole), out_specs=split)

    def sharded_denoise_fn(x: jax.Array, sigma: jax.Array) -> jax.Array:
        count = x.shape[0]
        extra = -(-count // len(devices)) * len(devices) - count
        x_padded = jnp.pad(x, [(0, extra)] + [(0, 0)] * (x.ndim - 1))
        sigma = jnp.asarray(sigma, jnp.float32)
        if sigma.ndim == 0:  # one noise level, passed to every device as a scalar
            return shared(x_padded, sigma)[:count]
        sigma = jnp.pad(sigma, (0, extra), constant_values=1.0)  # padding: any sigma > 0
        return per_sample(x_padded, sigma)[:count]

    return sharded_denoise_fn
