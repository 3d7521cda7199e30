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
(compilation excluded), the six projections timed round-robin so that a shared machine's
load falls on all alike. As a check that both compute the same thing, the projections of a
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


def interleaved_medians(fns, repeats):
    """Median seconds of each callable in ``fns`` (name -> fn), after one warm-up call each,
    timed round-robin (one call of each per round) so that a shared machine's load falls
    on all of them alike."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


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
    y_host = np.asarray(y)
    fns = {("ours", "A"): lambda: forward(x).block_until_ready(),
           ("ours", "AT"): lambda: adjoint(y).block_until_ready()}
    checks = {}
    try:
        rtk_forward, rtk_back = rtk_projector(n, views, pixels, source, source + detector,
                                              args.threads)
        fns[("RTK", "A")], fns[("RTK", "AT")] = (lambda: rtk_forward(ball)), (
            lambda: rtk_back(y_host))
        checks["RTK"] = rtk_forward(ball)
    except ImportError:
        print("  RTK not installed (pip install itk-rtk): no comparison", flush=True)
    try:
        mbir_forward, mbir_back = mbirjax_projector(n, views, pixels, source, source + detector)
        volume = np.ascontiguousarray(np.moveaxis(ball, 0, -1))  # (y, x, z)
        y_mbir = mbir_forward(volume)
        fns[("mbirjax", "A")], fns[("mbirjax", "AT")] = (lambda: mbir_forward(volume)), (
            lambda: mbir_back(y_mbir))
        checks["mbirjax"] = np.asarray(y_mbir)
    except ImportError:
        print("  mbirjax not installed (see the module docstring): no comparison", flush=True)
    t = interleaved_medians(fns, args.repeats)
    per = 1e9 / (n**3 * views)
    print(f"{name}: {n}^3, {views} views of {pixels}x{pixels}; ours A {t['ours', 'A']:.3f} s "
          f"({t['ours', 'A'] * per:.2f} ns/voxel-view), AT {t['ours', 'AT']:.3f} s "
          f"({t['ours', 'AT'] * per:.2f} ns/voxel-view)", flush=True)
    for label, y_theirs in checks.items():
        a, at = t[label, "A"], t[label, "AT"]
        diff = np.linalg.norm(y_host - y_theirs) / np.linalg.norm(y_theirs)
        threads = f" ({args.threads} ITK threads)" if label == "RTK" else ""
        print(f"  {label}{threads}: A {a:.3f} s, AT {at:.3f} s; ours / {label}: "
              f"A {t['ours', 'A'] / a:.2f}x, AT {t['ours', 'AT'] / at:.2f}x (time ratio, "
              f"< 1 = ours faster); centred-Gaussian projections differ by {diff:.2%} "
              "(rel. L2)", flush=True)


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
