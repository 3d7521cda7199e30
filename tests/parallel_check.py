"""Multi-device checks for `tests/test_parallel.py`, run in a subprocess with 4 fake CPU devices.

XLA_FLAGS must be set before jax is imported, which the pytest process has already
done with one device; so this script runs on its own and prints one JSON dict of
measured numbers (max abs differences, HLO facts) that the test asserts on.

Usage: python tests/parallel_check.py  (prints JSON on the last line of stdout)
"""

import os

os.environ["JAX_PLATFORMS"] = "cpu"
# 4 fake devices; cheap LLVM optimisation: these programs are tiny, compiling dominates.
os.environ["XLA_FLAGS"] = ("--xla_force_host_platform_device_count=4 "
                           "--xla_backend_optimization_level=0 "
                           "--xla_llvm_disable_expensive_passes=true")

import json  # noqa: E402
import re  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from fixtures import GAUSSIAN, beam, max_diff, zblur  # noqa: E402
from iscs_jax import noise as noise_lib  # noqa: E402
from iscs_jax import parallel, runtime  # noqa: E402
from iscs_jax.operators.zaxis import ZBlur  # noqa: E402
from iscs_jax.samplers import dds, sharded  # noqa: E402

SIZE = 16
SIGMAS = jnp.array([5.0, 1.0, 0.2])
SAMPLER = dict(cg_iters=3, chunk_size=2, rho=1.0)
COLLECTIVES = ("all-reduce", "all-gather", "collective-permute", "all-to-all", "reduce-scatter")


def volume(depth):
    return jax.random.uniform(jax.random.key(0), (depth, SIZE, SIZE))


def operator_checks():
    """Sharded A / AT of ZBlur against the unsharded ones (D = 6, 7; 2 and 4 devices)."""
    out = {}
    for kernel in [(0.25, 0.5, 0.25), (0.1, 0.2, 0.4, 0.2, 0.1)]:
        op = ZBlur(kernel)
        for depth in (6, 7):
            x = volume(depth)
            for n in (2, 4):
                mesh = parallel.make_mesh(n)
                pad = parallel.padded_size(depth, n)

                def apply(x_local, op=op, depth=depth):
                    ids = parallel.local_slice_ids(x_local.shape[0], "slices")
                    mask = (ids < depth).astype(jnp.float32)
                    return (op.A_sharded(x_local, "slices", mask),
                            op.AT_sharded(x_local, "slices", mask))

                f = jax.jit(jax.shard_map(apply, mesh=mesh, in_specs=P("slices"),
                                          out_specs=P("slices")))
                for which, got, ref in zip(("A", "AT"), f(parallel.pad_slices(x, pad)),
                                           (op.A(x), op.AT(x))):
                    tag = f"zblur{len(kernel)}_{which}_D{depth}_n{n}"
                    out[tag] = max_diff(got[:depth], ref)
                    out[tag + "_pad"] = max_diff(got[depth:], 0)
    return out


def sampler_checks():
    """reconstruct_sharded on 1, 2, 4 devices vs single-device dds.reconstruct."""
    cases = [("beam", beam(SIZE), 7, False), ("zblur", zblur(), 7, False),
             ("zblur", zblur(), 6, True)]
    out = {}
    for name, op, depth, warm in cases:
        x = volume(depth)
        y = op.A(x)
        x_init = 0.5 * x if warm else None
        for kind in ("iid", "iscs") if not warm else ("iscs",):
            kwargs = dict(noise=kind, sigmas=SIGMAS, x_init=x_init, **SAMPLER)
            ref = jax.jit(lambda k, y, op=op, kw=kwargs: dds.reconstruct(
                k, y, op, GAUSSIAN, **kw))(jax.random.key(1), y)
            # n = 1 runs the sharded path on one device (once per operator; `ref` is the
            # plain single-device sampler).
            for n in ((1, 2, 4) if kind == "iid" else (2, 4)) if not warm else (4,):
                got = sharded.reconstruct_sharded(jax.random.key(1), y, op, GAUSSIAN,
                                                  mesh=parallel.make_mesh(n), **kwargs)
                tag = f"{name}_{kind}_D{depth}_n{n}" + ("_warm" if warm else "")
                out[tag] = max_diff(got, ref)
                out[tag + "_shape"] = list(got.shape)
        out[f"{name}_D{depth}_ref_vs_truth"] = max_diff(ref, x)
    return out


def _collectives(hlo_text):
    """[(op, result shape)] of every collective instruction in an HLO module's text."""
    pattern = r"= (\S+) (" + "|".join(COLLECTIVES) + r")(?:-start)?\("
    return [(op, shape) for shape, op in re.findall(pattern, hlo_text)]


def _image_buffers(hlo_text):
    """Leading sizes k of every f32[k, SIZE, SIZE] buffer in the per-device program."""
    return sorted({int(k) for k in re.findall(rf"f32\[(\d+),{SIZE},{SIZE}\]", hlo_text)})


def _entry_result(hlo_text):
    """The result shape of the per-device program's ENTRY computation."""
    return re.search(r"ENTRY \S+ \(.*?\) -> (\S+) \{", hlo_text).group(1)


def noise_hlo_checks():
    """The shard_mapped per-step noise draw: no collectives, [D/n, H, W] per device."""
    mesh, depth = parallel.make_mesh(4), 8
    out = {}
    for kind in ("iid", "iscs"):
        def local(key, kind=kind):
            ids = parallel.local_slice_ids(depth // 4, "slices")
            return noise_lib.slice_noise(key, kind, ids, depth, (SIZE, SIZE))

        fn = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=P(), out_specs=P("slices")))
        key = jax.random.key(3)
        text = fn.lower(key).compile().as_text()
        full = noise_lib.slice_noise(key, kind, jnp.arange(depth), depth, (SIZE, SIZE))
        out[kind] = dict(collectives=_collectives(text), entry_result=_entry_result(text),
                         image_buffers=_image_buffers(text),
                         max_diff_vs_full=max_diff(fn(key), full))
    return out


def sampler_hlo_checks():
    """Collectives and per-device image buffers of the compiled sharded sampler (4 devices)."""
    out = {}
    for name, op in (("beam", beam(SIZE)), ("zblur", zblur())):
        depth, mesh = 7, parallel.make_mesh(4)
        recon = runtime.Reconstructor(op, GAUSSIAN, sigmas=SIGMAS, mesh=mesh,
                                      noises=("iscs",), cg_iters=3, chunk_size=2)
        text = recon.lower(recon.prepare(op.A(volume(depth))), len(SIGMAS)).compile().as_text()
        out[name] = dict(collectives=sorted(set(_collectives(text))),
                         image_buffers=_image_buffers(text), local_slices=2, radius=1)
    return out


def main():
    assert jax.device_count() == 4, jax.devices()
    report = dict(operators=operator_checks(), samplers=sampler_checks(),
                  noise_hlo=noise_hlo_checks(), sampler_hlo=sampler_hlo_checks())
    print(json.dumps(report))


if __name__ == "__main__":
    main()
