"""Checks for `tests/test_denoise_sharding.py`, run in a subprocess with 2 fake CPU devices.

Prints one JSON dict of measured differences on the last line of stdout.
"""

import os

os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = ("--xla_force_host_platform_device_count=2 "
                           "--xla_backend_optimization_level=0")

import json  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from iscs_jax.denoise_sharding import shard_denoiser  # noqa: E402
from iscs_jax.models import UNet, make_denoise_fn  # noqa: E402
from iscs_jax.models.unet import UNetConfig  # noqa: E402


def main():
    model = UNet(UNetConfig(base_width=8, channel_mults=(1, 2), attention_resolutions=(8,),
                            norm_groups=4), 16, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    state = jax.tree.map(  # perturbed, so the zero-initialised output layers are not zero
        lambda p: p + 0.05 * jnp.sin(jnp.arange(p.size)).reshape(p.shape), state)
    denoise = make_denoise_fn(graphdef, state, sigma_data=0.5, data_mean=0.1)
    sharded = shard_denoiser(denoise)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(5, 16, 16)), jnp.float32)  # odd: padded
    sigmas = jnp.linspace(0.1, 2.0, 5)
    result = {"devices": len(jax.local_devices()),
              "scale": float(jnp.abs(denoise(x, 0.7)).max()),
              "scalar": float(jnp.abs(jax.jit(sharded)(x, 0.7) - denoise(x, 0.7)).max()),
              "per_sample": float(jnp.abs(jax.jit(sharded)(x, sigmas) - denoise(x, sigmas)).max()),
              "one_device_is_identity": shard_denoiser(denoise, jax.local_devices()[:1]) is denoise}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
