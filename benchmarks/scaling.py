"""Strong scaling of sharded reconstruction: slices per second on 1, 2, 4, 8 devices.

    python benchmarks/scaling.py [--max-devices 8] [--slices 32] [--size 64] [--steps 4]
                                 [--operator beam|zblur] [--noise iscs] [--repeats 3]

One volume of ``--slices`` slices is reconstructed with `runtime.Reconstructor` on
meshes of 1, 2, 4, ... up to ``--max-devices`` devices (the same key, so the
same result); each program is compiled once, then timed (median of
``--repeats``). Efficiency = t(1) / (n t(n)): 100% is linear scaling.

Without an accelerator, ``--max-devices`` fake CPU devices are made with
``XLA_FLAGS=--xla_force_host_platform_device_count`` (set here, before jax is
imported); they share the machine's cores, so on a small CPU the figures only
show that it runs. On GPUs / TPUs the real devices are used and counts above the
number visible are skipped. The denoiser is a closed-form Gaussian one (cheap),
so the timing is dominated by data consistency and the noise draws.
"""

from __future__ import annotations

import argparse
import os
import time


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-devices", type=int, default=8)
    parser.add_argument("--slices", type=int, default=32, help="D, slices of the volume")
    parser.add_argument("--size", type=int, default=64, help="H = W of a slice")
    parser.add_argument("--steps", type=int, default=4, help="sampler steps")
    parser.add_argument("--cg-iters", type=int, default=5)
    parser.add_argument("--angles", type=int, default=30, help="parallel-beam views")
    parser.add_argument("--operator", choices=("beam", "zblur"), default="beam")
    parser.add_argument("--noise", default="iscs")
    parser.add_argument("--chunk-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args()


def main():
    args = parse_args()
    flag = f"--xla_force_host_platform_device_count={args.max_devices}"
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    import jax  # noqa: PLC0415  (after XLA_FLAGS)
    import jax.numpy as jnp  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from iscs_jax import parallel  # noqa: PLC0415
    from iscs_jax.operators.parallel_beam import ParallelBeam  # noqa: PLC0415
    from iscs_jax.operators.zaxis import ZBlur  # noqa: PLC0415
    from iscs_jax import runtime  # noqa: PLC0415

    shape = (args.size, args.size)
    beam = ParallelBeam(shape, tuple(np.linspace(0, np.pi, args.angles, endpoint=False)))
    operator = beam if args.operator == "beam" else ZBlur((0.25, 0.5, 0.25), inner=beam)
    denoise = lambda x, sigma: (0.1 * x + sigma**2 * 0.5) / (0.1 + sigma**2)
    volume = jax.random.uniform(jax.random.key(0), (args.slices, *shape))
    y = operator.A(volume)
    sigmas = jnp.geomspace(10.0, 0.05, args.steps)
    counts = [n for n in (1, 2, 4, 8, 16, 32, 64) if n <= min(args.max_devices,
                                                              jax.device_count())]
    print(f"{jax.device_count()} {jax.devices()[0].platform} device(s); D={args.slices}, "
          f"{args.size}x{args.size}, {args.steps} steps, {args.cg_iters} CG iters, "
          f"operator={args.operator}, noise={args.noise}")
    print(f"{'devices':>7} {'seconds':>9} {'slices/s':>9} {'efficiency':>10} {'max|diff|':>10}")
    first = base = None
    for n in counts:
        recon = runtime.Reconstructor(operator, denoise, sigmas=sigmas, noises=(args.noise,),
                                      mesh=parallel.make_mesh(n), cg_iters=args.cg_iters,
                                      chunk_size=args.chunk_size)
        prepared = recon.prepare(y)
        run = lambda recon=recon, prepared=prepared: recon.reconstruct(
            jax.random.key(1), prepared, noise=args.noise)
        out = parallel.gather_to_host(run())  # compile; gathered for the comparison
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            run().block_until_ready()
            times.append(time.perf_counter() - start)
        seconds = float(np.median(times))
        first = out if first is None else first
        base = seconds if base is None else base
        print(f"{n:>7} {seconds:>9.3f} {args.slices / seconds:>9.1f} "
              f"{100 * base / (n * seconds):>9.0f}% {float(np.abs(out - first).max()):>10.1e}")


if __name__ == "__main__":
    main()
