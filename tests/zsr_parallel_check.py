"""Multi-device checks for `tests/test_zsr.py`, run in a subprocess with 4 fake CPU devices.

Prints one JSON dict of max abs differences between the sharded and unsharded ZSR
(normal operator and A^T y, on 1, 2 and 4 devices) and between a sharded DDS run
and the one-device run. Usage: python tests/zsr_parallel_check.py
"""

import os

os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = ("--xla_force_host_platform_device_count=4 "
                           "--xla_backend_optimization_level=0 "
                           "--xla_llvm_disable_expensive_passes=true")

import functools  # noqa: E402
import json  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from iscs_jax import parallel  # noqa: E402
from iscs_jax.operators.zsr import ZSuperResolution  # noqa: E402
from iscs_jax.samplers import dds, sharded  # noqa: E402

SIZE = 8
SIGMAS = jnp.array([2.0, 0.5, 0.1])


def gaussian_denoiser(x, sigma):
    """E[x0 | x0 + sigma n] for x0 ~ N(0.5, 0.1) per pixel."""
    return (0.1 * x + sigma**2 * 0.5) / (0.1 + sigma**2)


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def local_problem(op, depth, x_local, y_full):
    """Inside shard_map: (local rows of A^T A x, local rows of A^T y)."""
    ids = parallel.local_slice_ids(x_local.shape[0], "slices")
    mask = (ids < depth).astype(jnp.float32)
    normal = op.AT_sharded(op.A_sharded(x_local, "slices", mask), "slices", mask)
    aty = op.AT_sharded(op.local_measurement(y_full, "slices"), "slices", mask)
    return normal, aty


def operator_checks():
    out = {}
    for depth in (8, 9, 13):
        x = jax.random.normal(jax.random.key(depth), (depth, SIZE, SIZE))
        for factor in (2, 3):
            op = ZSuperResolution(factor, (SIZE, SIZE), depth=depth)
            y = op.A(x)
            for n in (1, 2, 4):
                mesh = parallel.make_mesh(n)
                fn = jax.jit(jax.shard_map(functools.partial(local_problem, op, depth), mesh=mesh,
                                           in_specs=(P("slices"), P()), out_specs=P("slices")))
                normal, aty = fn(parallel.pad_slices(x, parallel.padded_size(depth, n)), y)
                tag = f"D{depth}_f{factor}_n{n}"
                out[tag + "_normal"] = max_diff(normal[:depth], op.AT(op.A(x)))
                out[tag + "_aty"] = max_diff(aty[:depth], op.AT(y))
    return out


def sharded_dds(op, depth, n, y, key):
    """DDS with ZSR along the slice axis over n devices (y replicated, x sharded)."""
    mesh = parallel.make_mesh(n)
    size = parallel.padded_size(depth, n)

    def body(key, y_full, x_template):
        ids = parallel.local_slice_ids(x_template.shape[0], "slices")
        mask = (ids < depth).astype(jnp.float32)
        local = sharded.local_operator(op, "slices", mask)
        return dds.reconstruct(key, op.local_measurement(y_full, "slices"), local,
                               gaussian_denoiser, noise="iscs", sigmas=SIGMAS, cg_iters=3,
                               rho=0.0, chunk_size=2, axis_name="slices", slice_ids=ids,
                               num_slices=depth, slice_mask=mask)

    fn = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(P(), P(), P("slices")),
                               out_specs=P("slices"), check_vma=False))
    return fn(key, y, jnp.zeros((size, SIZE, SIZE)))[:depth]


def sampler_checks():
    depth, factor = 9, 2
    x = jax.random.uniform(jax.random.key(0), (depth, SIZE, SIZE))
    op = ZSuperResolution(factor, (SIZE, SIZE), depth=depth)
    y = op.A(x)
    key = jax.random.key(1)
    ref = jax.jit(lambda k, y: dds.reconstruct(
        k, y, op, gaussian_denoiser, noise="iscs", sigmas=SIGMAS, cg_iters=3, rho=0.0,
        chunk_size=2))(key, y)
    out = {f"n{n}": max_diff(sharded_dds(op, depth, n, y, key), ref) for n in (1, 2, 4)}
    return out, max_diff(ref, x)


def inplane_checks():
    """z inside the slices: slice-wise, through the existing reconstruct_sharded."""
    x = jax.random.uniform(jax.random.key(2), (6, SIZE, SIZE))
    op = ZSuperResolution(4, (SIZE, SIZE), z_axis=1)
    y = op.A(x)
    kwargs = dict(noise="iscs", sigmas=SIGMAS, cg_iters=3, rho=0.0, chunk_size=2)
    ref = dds.reconstruct(jax.random.key(1), y, op, gaussian_denoiser, **kwargs)
    got = sharded.reconstruct_sharded(jax.random.key(1), y, op, gaussian_denoiser,
                                      mesh=parallel.make_mesh(4), **kwargs)
    return max_diff(got, ref)


if __name__ == "__main__":
    samplers, vs_truth = sampler_checks()
    print(json.dumps({"operator": operator_checks(), "sampler": samplers,
                      "sampler_vs_truth": vs_truth, "inplane_n4": inplane_checks()}))
