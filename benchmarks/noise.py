"""Time one sampler step's noise draw: iid vs ISCS vs the naive 16·D SLERP path.

    python benchmarks/noise.py [--repeats 20] [--size 256]

The three are compiled once and then timed interleaved (round-robin), so machine noise hits all
of them alike; the median of the repeats is reported with the ratios iscs/iid and naive/iscs.
Target: iscs / iid <= 1.05.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from iscs_jax import noise


def naive_iscs(key, num_slices, slice_shape):
    """Reference-style ISCS: materialise all 16·D path points, keep D centre-out (stride 16)."""
    key0, key1 = jax.random.split(key)
    z0 = jax.random.normal(key0, slice_shape)
    z1 = jax.random.normal(key1, slice_shape)
    path_alphas = jnp.linspace(0.0, 1.0, 16 * num_slices + 2)[1:-1]
    path = noise.slerp(z0, z1, path_alphas)  # [16 D, H, W]
    # As in eager PyTorch, the whole path exists in memory; without the barrier XLA would fuse
    # the strided selection into the slerp and compute only the D kept points.
    path = jax.lax.optimization_barrier(path)
    start = 0 if num_slices % 2 == 0 else 8
    return path[start::16][:num_slices]


def build(num_slices, slice_shape):
    ids = jnp.arange(num_slices)
    return {
        "iid": jax.jit(lambda k: noise.slice_noise(k, "iid", ids, num_slices, slice_shape)),
        "iscs": jax.jit(lambda k: noise.slice_noise(k, "iscs", ids, num_slices, slice_shape)),
        "naive16D": jax.jit(lambda k: naive_iscs(k, num_slices, slice_shape)),
    }


def time_interleaved(fns, repeats):
    keys = jax.random.split(jax.random.key(0), repeats)
    for fn in fns.values():
        fn(keys[0]).block_until_ready()  # compile
    times = {name: [] for name in fns}
    for key in keys:
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(key).block_until_ready()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--slices", type=int, nargs="+", default=[32, 64, 128])
    args = parser.parse_args()
    shape = (args.size, args.size)
    print(f"device: {jax.devices()[0].device_kind}, slice {shape}, median of {args.repeats}")
    print(f"{'D':>5} {'iid ms':>9} {'iscs ms':>9} {'naive ms':>10} {'iscs/iid':>9} {'naive/iscs':>11}")
    for num_slices in args.slices:
        t = time_interleaved(build(num_slices, shape), args.repeats)
        print(f"{num_slices:>5} {1e3 * t['iid']:>9.2f} {1e3 * t['iscs']:>9.2f} "
              f"{1e3 * t['naive16D']:>10.2f} {t['iscs'] / t['iid']:>9.3f} "
              f"{t['naive16D'] / t['iscs']:>11.2f}")


if __name__ == "__main__":
    main()
