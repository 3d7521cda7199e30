"""Cone-beam A and AT: iscs-jax's ConeBeam against RTK's CPU Joseph projector, as ratios.

    pip install itk-rtk        # only for this benchmark (not a dependency of iscs-jax)
    python benchmarks/cone_beam.py [--cases small,large] [--threads 2] [--repeats 3]

Cases (the published geometry scaled to the volume width n: source n/256 * 700 mm,
detector n/256 * 500 mm from the axis, 2 mm pixels, unit voxels, views over 360 degrees):
small = 64^3 with 64 views of 128 x 128, large = 128^3 with 128 views of 256 x 256.
Ours runs jitted on the one JAX CPU device (which uses every core XLA gives it); RTK's
``JosephForwardProjectionImageFilter`` / ``JosephBackProjectionImageFilter`` run with
``--threads`` ITK threads. Each time is the median of ``--repeats`` runs after a warm-up
(compilation excluded). As a check that both compute the same thing, the projections of a
centred isotropic Gaussian (the same from any orbit convention) are compared.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from iscs_jax.operators import ConeBeam, full_orbit_angles  # noqa: E402

CASES = {"small": (64, 64, 128), "large": (128, 128, 256)}  # n, views, detector pixels


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="small,large")
    parser.add_argument("--threads", type=int, default=2, help="ITK threads for RTK")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--view-chunk", type=int, default=8)
    return parser.parse_args()


def median_seconds(fn, repeats):
    fn()  # warm-up (compiles ours)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gaussian_ball(n):
    c = np.arange(n) - n / 2 + 0.5
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    return np.exp(-(x**2 + y**2 + z**2) / (2 * (n / 8) ** 2)).astype(np.float32)


def rtk_projector(n, views, pixels, source, distance, threads):
    """(forward(volume) -> [views, rows, cols], back(projections) -> [D, H, W]) with RTK."""
    import itk  # noqa: PLC0415
    from itk import RTK as rtk  # noqa: PLC0415

    itk.MultiThreaderBase.SetGlobalDefaultNumberOfThreads(threads)
    image_type = itk.Image[itk.F, 3]
    geometry = rtk.ThreeDCircularProjectionGeometry.New()
    for angle in np.rad2deg(full_orbit_angles(views)):
        geometry.AddProjection(source, distance, float(angle))

    def image(array, spacing, origin):
        out = itk.image_from_array(np.ascontiguousarray(array, np.float32))
        out.SetSpacing(spacing)
        out.SetOrigin(origin)
        return out

    stack_spacing, stack_origin = [2.0, 2.0, 1.0], [-(pixels - 1.0), -(pixels - 1.0), 0.0]
    volume_origin = [-(n - 1) / 2.0] * 3
    empty_stack = np.zeros((views, pixels, pixels), np.float32)
    empty_volume = np.zeros((n, n, n), np.float32)

    def forward(volume):
        f = rtk.JosephForwardProjectionImageFilter[image_type, image_type].New()
        f.SetInput(0, image(empty_stack, stack_spacing, stack_origin))
        f.SetInput(1, image(volume, [1.0] * 3, volume_origin))
        f.SetGeometry(geometry)
        f.Update()
        return itk.array_from_image(f.GetOutput())

    def back(projections):
        f = rtk.JosephBackProjectionImageFilter[image_type, image_type].New()
        f.SetInput(0, image(empty_volume, [1.0] * 3, volume_origin))
        f.SetInput(1, image(projections, stack_spacing, stack_origin))
        f.SetGeometry(geometry)
        f.Update()
        return itk.array_from_image(f.GetOutput())

    return forward, back


def run_case(name, args):
    n, views, pixels = CASES[name]
    source, detector = 700.0 * n / 256, 500.0 * n / 256
    op = ConeBeam((n, n, n), full_orbit_angles(views), source_origin=source,
                  origin_detector=detector, detector_shape=(pixels, pixels),
                  detector_spacing=(2.0, 2.0), view_chunk=args.view_chunk)
    ball = gaussian_ball(n)
    x = jnp.asarray(ball)
    forward, adjoint = jax.jit(op.A), jax.jit(op.AT)
    y = forward(x).block_until_ready()
    ours_a = median_seconds(lambda: forward(x).block_until_ready(), args.repeats)
    ours_at = median_seconds(lambda: adjoint(y).block_until_ready(), args.repeats)
    print(f"{name}: {n}^3, {views} views of {pixels}x{pixels}; ours A {ours_a:.3f} s, "
          f"AT {ours_at:.3f} s", flush=True)
    try:
        rtk_forward, rtk_back = rtk_projector(n, views, pixels, source, source + detector,
                                              args.threads)
    except ImportError:
        print("  RTK not installed (pip install itk-rtk): no comparison", flush=True)
        return
    y_rtk = rtk_forward(ball)
    diff = np.linalg.norm(np.asarray(y) - y_rtk) / np.linalg.norm(y_rtk)
    rtk_a = median_seconds(lambda: rtk_forward(ball), args.repeats)
    y_host = np.asarray(y)
    rtk_at = median_seconds(lambda: rtk_back(y_host), args.repeats)
    print(f"  RTK Joseph ({args.threads} threads): A {rtk_a:.3f} s, AT {rtk_at:.3f} s; "
          f"ours / RTK: A {ours_a / rtk_a:.2f}x, AT {ours_at / rtk_at:.2f}x (time ratio, "
          f"< 1 = ours faster); centred-Gaussian projections differ by {diff:.2%} (rel. L2)",
          flush=True)


def main():
    args = parse_args()
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}, {len(jax.devices())} device(s)")
    for name in args.cases.split(","):
        run_case(name.strip(), args)


if __name__ == "__main__":
    main()
