"""Multi-device checks for `tests/test_zsr.py`, run in a subprocess with 4 fake CPU devices.

Prints one JSON dict of max abs differences between the sharded and unsharded ZSR
(normal operator and A^T y, on 1, 2 and 4 devices) and between the sharded samplers
(`samplers.reconstruct_sharded`, every sampler) and the one-device runs. Usage: python tests/zsr_parallel_check.py
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
from jax.sharding import PartitionSpec as P  # noqa: E402

from fixtures import GAUSSIAN, max_diff  # noqa: E402
from iscs_jax import parallel  # noqa: E402
from iscs_jax.operators.zsr import ZSuperResolution  # noqa: E402
from iscs_jax import samplers  # noqa: E402
from iscs_jax.samplers import dds, sharded  # noqa: E402

SIZE = 8
SIGMAS = jnp.array([2.0, 0.5, 0.1])


def local_problem(op, depth, x_local, y_full):
    """Inside shard_map: local rows of A^T A x and of A^T y, and the psum-reduced
    <A x - y, A x - y> of the local measurements (must equal ||A x - y||^2)."""
    ids = parallel.local_slice_ids(x_local.shape[0], "slices")
    mask = (ids < depth).astype(jnp.float32)
    local_y = op.local_measurement(y_full, "slices")
    normal = op.AT_sharded(op.A_sharded(x_local, "slices", mask), "slices", mask)
    aty = op.AT_sharded(local_y, "slices", mask)
    residual = op.A_sharded(x_local, "slices", mask) - local_y
    return normal, aty, jax.lax.psum(jnp.sum(residual**2), "slices")


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
                                           in_specs=(P("slices"), P()),
                                           out_specs=(P("slices"), P("slices"), P())))
                y_other = y + 0.1  # a measurement that A x does not match
                normal, aty, norm2 = fn(parallel.pad_slices(x, parallel.padded_size(depth, n)),
                                        y_other)
                tag = f"D{depth}_f{factor}_n{n}"
                out[tag + "_normal"] = max_diff(normal[:depth], op.AT(op.A(x)))
                out[tag + "_aty"] = max_diff(aty[:depth], op.AT(y_other))
                exact = float(jnp.sum((op.A(x) - y_other) ** 2))
                out[tag + "_norm"] = abs(float(norm2) - exact) / exact
    return out


def sampler_checks():
    """reconstruct_sharded (every sampler) with ZSR along the slice axis on 1, 2, 4 devices
    against the single-device sampler."""
    depth, factor = 9, 2
    x = jax.random.uniform(jax.random.key(0), (depth, SIZE, SIZE))
    op = ZSuperResolution(factor, (SIZE, SIZE), depth=depth)
    y = op.A(x)
    key = jax.random.key(1)
    out, vs_truth = {}, 0.0
    for name in sorted(samplers.SAMPLERS):
        kwargs = dict(noise="iscs", sigmas=SIGMAS, chunk_size=2)
        ref = jax.jit(lambda k, y, name=name: samplers.get_sampler(name)(
            k, y, op, GAUSSIAN, **kwargs))(key, y)
        vs_truth = max(vs_truth, max_diff(ref, x))
        for n in (1, 2, 4):
            got = sharded.reconstruct_sharded(key, y, op, GAUSSIAN, sampler=name,
                                              mesh=parallel.make_mesh(n), **kwargs)
            out[f"{name}_n{n}"] = max_diff(got, ref)
    return out, vs_truth


def inplane_checks():
    """z inside the slices: slice-wise, through the existing reconstruct_sharded."""
    x = jax.random.uniform(jax.random.key(2), (6, SIZE, SIZE))
    op = ZSuperResolution(4, (SIZE, SIZE), z_axis=1)
    y = op.A(x)
    kwargs = dict(noise="iscs", sigmas=SIGMAS, cg_iters=3, rho=0.0, chunk_size=2)  # DDS
    ref = dds.reconstruct(jax.random.key(1), y, op, GAUSSIAN, **kwargs)
    got = sharded.reconstruct_sharded(jax.random.key(1), y, op, GAUSSIAN,
                                      mesh=parallel.make_mesh(4), **kwargs)
    return max_diff(got, ref)


if __name__ == "__main__":
    samplers, vs_truth = sampler_checks()
    print(json.dumps({"operator": operator_checks(), "sampler": samplers,
                      "sampler_vs_truth": vs_truth, "inplane_n4": inplane_checks()}))
