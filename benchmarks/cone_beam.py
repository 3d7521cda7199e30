"""Cone-beam A and AT: iscs-jax's ConeBeam against RTK's CPU Joseph projector and mbirjax's
cone-beam projector, side by side, as time ratios.

    pip install itk-rtk        # only for this benchmark (not a dependency of iscs-jax)
    python benchmarks/cone_beam.py [--cases small,large] [--threads 2] [--repeats 3]

mbirjax 0.7.3 requires jax 0.10.1, so all three run in a virtual environment of their own:

    python -m venv /tmp/mbirvenv
    /tmp/mbirvenv/bin/pip install "jax==0.10.1" mbirjax itk-rtk
    /tmp/mbirvenv/bin/pip install --no-deps -e .
    /tmp/mbirvenv/bin/python benchmarks/cone_beam.py

Cases (the published geometry scaled to the volume width n: source n/256 * 700 mm,
detector n/256 * 500 mm from the axis, 2 mm pixels, unit voxels, views over 360 degrees):
small = 64^3 with 64 views of 128 x 128, large = 128^3 with 128 views of 256 x 256.
Ours runs jitted on the one JAX CPU device (which uses every core XLA gives it); RTK's
``JosephForwardProjectionImageFilter`` / ``JosephBackProjectionImageFilter`` run with
``--threads`` ITK threads. Each time is the median of ``--repeats`` runs after a warm-up
(compilation excluded). As a check that both compute the same thing, the projections of a
centred isotropic Gaussian (the same from any orbit convention) are compared. mbirjax's
``ConeBeamModel`` gets the same geometry in mm (its ALU): 2 mm channels and rows, unit voxels,
an n^3 volume without its region-of-reconstruction mask (it projects every voxel, as we do);
its ``forward_project`` / ``back_project`` are timed with device-side outputs. Missing packages
are reported and skipped. ``ns/voxel-view`` is our time per voxel per view (the issue asks
that it not grow from the small case to the large one).
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


def mbirjax_projector(n, views, pixels, source, distance):
    """(forward(volume) -> [views, rows, cols], back(projections) -> [D, H, W]) with mbirjax.

    mbirjax volumes are (rows, cols, slices) = (y, x, z): ours are moved to that order and
    back outside the timed calls.
    """
    import mbirjax  # noqa: PLC0415

    model = mbirjax.ConeBeamModel((views, pixels, pixels), full_orbit_angles(views),
                                  source_detector_dist=distance, source_iso_dist=source)
    model.set_params(delta_det_channel=2.0, delta_det_row=2.0, delta_voxel=1.0,
                     recon_shape=(n, n, n), use_ror_mask=False, no_warning=True)

    def forward(volume):
        return jax.block_until_ready(model.forward_project(volume, output_sharded=True))

    def back(projections):
        return jax.block_until_ready(model.back_project(projections, output_sharded=True))

    return forward, back


def compare(label, ours, theirs_fn, args):
    """Times ``theirs_fn() -> (forward, back, check)`` and prints ratios to ``ours``."""
    try:
        forward, back, y_theirs = theirs_fn()
    except ImportError as error:
        print(f"  {label}: not installed ({error.name}): no comparison", flush=True)
        return
    a = median_seconds(forward, args.repeats)
    at = median_seconds(back, args.repeats)
    diff = np.linalg.norm(ours["y"] - y_theirs) / np.linalg.norm(y_theirs)
    print(f"  {label}: A {a:.3f} s, AT {at:.3f} s; ours / {label.split()[0]}: "
          f"A {ours['A'] / a:.2f}x, AT {ours['AT'] / at:.2f}x (time ratio, < 1 = ours "
          f"faster); centred-Gaussian projections differ by {diff:.2%} (rel. L2)", flush=True)


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
    per = 1e9 / (n**3 * views)
    print(f"{name}: {n}^3, {views} views of {pixels}x{pixels}; ours A {ours_a:.3f} s "
          f"({ours_a * per:.2f} ns/voxel-view), AT {ours_at:.3f} s "
          f"({ours_at * per:.2f} ns/voxel-view)", flush=True)
    y_host = np.asarray(y)
    ours = {"A": ours_a, "AT": ours_at, "y": y_host}

    def rtk():
        rtk_forward, rtk_back = rtk_projector(n, views, pixels, source, source + detector,
                                              args.threads)
        return (lambda: rtk_forward(ball)), (lambda: rtk_back(y_host)), rtk_forward(ball)

    def mbir():
        mbir_forward, mbir_back = mbirjax_projector(n, views, pixels, source, source + detector)
        volume = np.ascontiguousarray(np.moveaxis(ball, 0, -1))  # (y, x, z)
        y_mbir = mbir_forward(volume)
        return ((lambda: mbir_forward(volume)), (lambda: mbir_back(y_mbir)), np.asarray(y_mbir))

    compare(f"RTK Joseph ({args.threads} threads)", ours, rtk, args)
    compare("mbirjax", ours, mbir, args)


def main():
    args = parse_args()
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}, {len(jax.devices())} device(s)")
    from importlib import metadata  # noqa: PLC0415
    for package in ("itk-rtk", "mbirjax"):
        try:
            print(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            print(f"{package} not installed")
    for name in args.cases.split(","):
        run_case(name.strip(), args)


if __name__ == "__main__":
    main()
