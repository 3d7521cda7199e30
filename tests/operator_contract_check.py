"""Sharded-vs-unsharded checks of every operator example, with 4 fake CPU devices.

Run in a subprocess by `tests/test_operator_contract.py` (XLA_FLAGS must be set
before jax is imported). For each example and 1, 2, 4 devices it applies the
operator the way `samplers.sharded` does (the slice-sharded volume, y sharded by
slice or, for a global operator, replicated and cut by `local_measurement`) and
prints, as one JSON line, the max abs difference to the unsharded
``AT(A(x))`` and ``AT(y)`` relative to their max abs value.
"""

import os

os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = ("--xla_force_host_platform_device_count=4 "
                           "--xla_backend_optimization_level=0 "
                           "--xla_llvm_disable_expensive_passes=true")

import json  # noqa: E402
import sys  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

_TESTS = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(_TESTS), _TESTS]  # this checkout's package and examples

import operator_examples  # noqa: E402
from fixtures import GAUSSIAN  # noqa: E402
from iscs_jax import parallel  # noqa: E402
from iscs_jax.operators import protocol  # noqa: E402
from iscs_jax.samplers import dds, sharded  # noqa: E402
from iscs_jax.samplers.layout import SliceLayout, local_operator  # noqa: E402

SIGMAS = jnp.array([2.0, 0.5, 0.1])
SAMPLER = dict(noise="iscs", cg_iters=2, chunk_size=2, rho=1.0)


def _relative(got, ref):
    ref = np.asarray(ref, np.float64)
    return float(np.abs(np.asarray(got, np.float64) - ref).max() / max(np.abs(ref).max(), 1e-30))


def check(op, volume_shape, num_devices):
    """(normal-operator error, adjoint error, padded-slice max) on ``num_devices`` devices."""
    rng = np.random.default_rng(0)
    depth = volume_shape[0]
    x = jnp.asarray(rng.normal(size=volume_shape), jnp.float32)
    y = jnp.asarray(rng.normal(size=op.measurement_shape(depth)), jnp.float32)
    if jnp.iscomplexobj(op.A(x)):  # complex k-space (MRI)
        y = (y + 1j * jnp.asarray(rng.normal(size=y.shape), jnp.float32)).astype(jnp.complex64)
    mesh = parallel.make_mesh(num_devices)
    size = parallel.padded_size(depth, num_devices)
    is_global = protocol.coupling(op) == "global"
    y_in = y if is_global else parallel.pad_slices(y, size)

    def body(x_local, y_local):
        view = local_operator(op, SliceLayout.shard(x_local.shape[0], depth, "slices"))
        share = protocol.local_measurement(op, y_local, "slices")
        return view.AT(view.A(x_local)), view.AT(share)

    fn = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(P("slices"), P() if is_global
                                                           else P("slices")),
                               out_specs=P("slices"), check_vma=False))
    normal, adjoint = fn(parallel.pad_slices(x, size), y_in)
    padded = float(max(np.abs(normal[depth:]).max(initial=0.0),
                       np.abs(adjoint[depth:]).max(initial=0.0)))
    return (_relative(normal[:depth], op.AT(op.A(x))), _relative(adjoint[:depth], op.AT(y)),
            padded)


def sampler_check(op, volume_shape):
    """max |reconstruct_sharded - dds.reconstruct| on 1, 2, 4 devices, relative to max |ref|."""
    x = jnp.asarray(np.random.default_rng(1).uniform(size=volume_shape), jnp.float32)
    y = op.A(x)
    ref = jax.jit(lambda key, y: dds.reconstruct(key, y, op, GAUSSIAN, sigmas=SIGMAS,
                                                 **SAMPLER))(jax.random.key(2), y)
    out = {}
    for n in (1, 2, 4):
        got = sharded.reconstruct_sharded(jax.random.key(2), y, op, GAUSSIAN,
                                          mesh=parallel.make_mesh(n), sigmas=SIGMAS, **SAMPLER)
        out[n] = [_relative(got, ref), list(got.shape)]
    return out


def main():
    assert jax.device_count() == 4, jax.devices()
    report = {}
    for name, (op, volume_shape) in operator_examples.examples().items():
        for n in (1, 2, 4):
            report[f"{name}_n{n}"] = check(op, volume_shape, n)
        if protocol.coupling(op) != "slicewise":  # slice-wise ones: tests/test_parallel.py
            for n, result in sampler_check(op, volume_shape).items():
                report[f"sampler_{name}_n{n}"] = result
    print(json.dumps(report))


if __name__ == "__main__":
    main()
