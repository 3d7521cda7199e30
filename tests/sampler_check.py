"""Multi-device checks for `tests/test_sampler_contract.py`: every sampler on 1, 2, 4 fake devices.

Runs in a subprocess with 4 fake CPU devices (XLA_FLAGS must be set before jax is imported) and
prints one JSON dict: for each sampler of `SAMPLERS` and each operator (slice-wise
``ParallelBeam``, halo-coupled ``ZBlur``), the max abs difference between
`reconstruct_sharded` on n = 2 and 4 devices and the plain single-device sampler (n = 1), 7
slices (padded to 8 on 2 and 4 devices); and on 4 devices driven one step at a time
(`core.run_in_pieces`, as the CLI does).

Usage: python tests/sampler_check.py  (prints JSON on the last line of stdout)
"""

import os

os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = ("--xla_force_host_platform_device_count=4 "
                           "--xla_backend_optimization_level=0 "
                           "--xla_llvm_disable_expensive_passes=true")

import json  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from fixtures import GAUSSIAN, beam, max_diff, zblur  # noqa: E402
from iscs_jax import parallel, samplers  # noqa: E402

SIZE, DEPTH = 16, 7
SIGMAS = jnp.array([5.0, 1.0, 0.2])
SETTINGS = {
    "dds": dict(cg_iters=3, rho=1.0),
    "ddnm": dict(cg_iters=3),
    "dps": dict(step_size=0.5, start_sigma=2.0),  # warm start: a re-spaced schedule from 2
    "admm_tv": dict(lam=0.05, mu=1.0, admm_iters=2, cg_iters=2),
}


def main():
    assert jax.device_count() == 4, jax.devices()
    x = jax.random.uniform(jax.random.key(0), (DEPTH, SIZE, SIZE))
    out = {}
    for op_name, op in (("beam", beam(SIZE)), ("zblur", zblur())):
        y = op.A(x)
        for name in samplers.SAMPLERS:
            kwargs = dict(noise="iscs", sigmas=SIGMAS, chunk_size=2, x_init=0.5 * x,
                          **SETTINGS.get(name, {}))
            ref = jax.jit(lambda k, y, op=op, name=name, kw=kwargs: samplers.get_sampler(name)(
                k, y, op, GAUSSIAN, **kw))(jax.random.key(1), y)
            for n in (2, 4):
                got = samplers.reconstruct_sharded(jax.random.key(1), y, op, GAUSSIAN,
                                                   mesh=parallel.make_mesh(n), sampler=name,
                                                   **kwargs)
                out[f"{name}_{op_name}_n{n}"] = max_diff(got, ref)
                out[f"{name}_{op_name}_n{n}_shape"] = list(got.shape)
            mesh = parallel.make_mesh(4)
            pieces = samplers.core.run_in_pieces(
                lambda w, kw=kwargs, op=op, name=name: samplers.reconstruct_sharded(
                    jax.random.key(1), y, op, GAUSSIAN, mesh=mesh, sampler=name,
                    window=w, **kw), len(SIGMAS))
            out[f"{name}_{op_name}_pieces_n4"] = max_diff(pieces[:DEPTH], ref)
            out[f"{name}_{op_name}_ref_vs_truth"] = max_diff(ref, x)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
