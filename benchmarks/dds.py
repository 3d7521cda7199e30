"""Where a DDS step spends its time, and the projector against scikit-image and ASTRA.

``python benchmarks/dds.py [--settings demo,chest,large] [--rounds 5] [--no-projector]
[--no-rates]``

For each setting, every part of a step is jitted on its own and timed side by side
(rounds interleaved, best round kept, so a busy machine slows all parts alike):
the denoiser over the volume (chunks of 8), the CG data consistency, one ``A``, one
``AT``, one ISCS noise draw, the re-noising, and a whole sampler step as the CLI runs
it (one `runtime.Reconstructor.piece`: the step with its noise draw and re-noising,
the run's set-up ``AT(y)`` computed once before). Each is printed with its ratio to the denoiser alone.

* ``demo``: 32 slices of 64x64, 20 views, ``phantom64``, 10 CG iterations.
* ``chest``: 64 slices of 128x128, 20 views, ``chest128`` (the CLI default).
* ``large``: 8 slices of 256x256, 180 views, the ``phantom64`` architecture at 256
  with random weights (speed only).

The projector section times ``A`` and ``AT`` on 8 slices of 256x256 with 180
views against ``skimage.transform.radon`` and, when ``astra-toolbox`` is
installed, ASTRA's CPU ``linear`` projector (the same Joseph matrix in the same
geometric-centre convention) on 1 and 2 threads (slices split over a thread pool).

The rates section divides the XLA cost-analysis FLOPs of the denoiser (a chunk of
8 slices of 64x64) and of a ``train_phantom`` training step by their times, as a
fraction of a jitted 2048x2048 float32 matmul's rate measured in the same run.

Everything is compiled as the CLI and the trainer compile it, with
`iscs_jax.xla_options` (on CPU, for these narrow U-Nets: convolutions by XLA on
every core, not YNNPACK on one); the rates section also times the denoiser with
XLA's defaults (``denoiser, XLA defaults``) for comparison.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _expose_host_devices(argv) -> None:
    """``--host-devices N``: the CPU as N host devices (XLA_FLAGS must be set before JAX
    starts, so this reads argv before the imports below)."""
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--host-devices=") else (
            argv[i + 1] if arg == "--host-devices" and i + 1 < len(argv) else None)
        if value is not None and int(value) > 1:
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                       + f" --xla_force_host_platform_device_count={value}")


_expose_host_devices(sys.argv)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from iscs_jax import noise, parallel, priors, runtime, xla_options  # noqa: E402
from iscs_jax.denoise_sharding import shard_denoiser  # noqa: E402
from iscs_jax.models import UNet, make_denoise_fn  # noqa: E402
from iscs_jax.models.unet import UNetConfig  # noqa: E402
from iscs_jax.operators import ParallelBeam, sparse_view_angles  # noqa: E402
from iscs_jax.samplers import cg, core, renoise  # noqa: E402

SETTINGS = {  # name: (slices, size, views, prior)
    "demo": (32, 64, 20, "phantom64"),
    "chest": (64, 128, 20, "chest128"),
    "large": (8, 256, 180, "phantom64"),
}
CG_ITERS, CHUNK = 10, 8


def best_times(fns: dict, rounds: int) -> dict:
    """name -> best seconds over ``rounds`` interleaved rounds (each fn called once warm)."""
    for fn in fns.values():
        jax.block_until_ready(fn())
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def denoiser_for(prior_name: str, size: int):
    """The shipped prior's denoiser; at another size, its architecture with random weights."""
    prior = priors.load(prior_name)
    if prior.resolution == size:
        return prior.denoise_fn
    meta = prior.metadata
    graphdef, state = nnx.split(UNet(UNetConfig.from_dict(meta["config"]), size,
                                     rngs=nnx.Rngs(0)))
    edm = meta["parameterisation"]
    return make_denoise_fn(graphdef, state, edm["sigma_data"], edm["data_mean"])


def denoise_volume(denoise_fn, x, sigma):
    """The sampler's own denoising pass (`core.denoise_in_chunks`, chunks of `CHUNK`)."""
    return core.denoise_in_chunks(denoise_fn, x, sigma, CHUNK)


def step_breakdown(name: str, rounds: int) -> None:
    slices, size, views, prior_name = SETTINGS[name]
    op = ParallelBeam((size, size), sparse_view_angles(views))
    denoise_fn = denoiser_for(prior_name, size)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((slices, size, size)), jnp.float32)
    y = jax.jit(op.A)(x)
    aty = jax.jit(op.AT)(y)
    key, sigma, ids = jax.random.key(0), jnp.float32(0.5), jnp.arange(slices)
    noise_fn = noise.make_noise_fn("iscs")

    sigmas = jnp.geomspace(1.0, 0.05, 30).astype(jnp.float32)
    # the parts compiled as the runtime compiles its sampler (`xla_options.for_denoiser`)
    jit = functools.partial(xla_options.jit, denoiser=denoise_fn)
    recon = runtime.Reconstructor(op, denoise_fn, sigmas=sigmas, cg_iters=CG_ITERS, rho=0.0,
                                  chunk_size=CHUNK)
    run = recon.prepare(y)  # the run's set-up (A^T y), once
    x_step = parallel.shard_slices(x, recon.mesh)

    parts = {
        "denoiser": (jit(lambda v: denoise_volume(denoise_fn, v, sigma)), x),
        "CG": (jit(lambda v: cg.normal_equations(op, aty, v, 0.0, CG_ITERS)), x),
        "A": (jit(op.A), x),
        "AT": (jit(op.AT), y),
        "noise": (jit(lambda k: noise_fn(k, ids, slices, (size, size))), key),
        "re-noise": (jit(lambda v: renoise.renoise(v, v, v, sigma, 0.5 * sigma, mode="dds",
                                                      eta=0.85)), x),
    }
    fns = {k: (lambda f=f, a=a: f(a)) for k, (f, a) in parts.items()}
    fns["step"] = lambda: recon.piece(key, run, core.Window(x_step, 0, 1))
    t = best_times(fns, rounds)
    print(f"\n[{name}] {slices} slices of {size}x{size}, {views} views, {prior_name}, "
          f"{CG_ITERS} CG iterations, chunks of {CHUNK}")
    for part, seconds in t.items():
        print(f"  {part:<10} {seconds * 1e3:9.1f} ms   {seconds / t['denoiser']:6.3f} x denoiser")


def astra_projector(size: int, views: int):
    """``(forward, backward)`` running ASTRA's CPU linear projector on one slice, or None."""
    try:
        import astra
    except ImportError:
        return None
    projector = astra.create_projector(
        "linear", astra.create_proj_geom("parallel", 1.0, ParallelBeam(
            (size, size), [0.0]).num_detectors, sparse_view_angles(views)),
        astra.create_vol_geom(size, size))

    def forward(image):
        sino_id, sino = astra.create_sino(image, projector)
        astra.data2d.delete(sino_id)
        return sino

    def backward(sino):
        back_id, back = astra.create_backprojection(sino, projector)
        astra.data2d.delete(back_id)
        return back

    return forward, backward


def projector_comparison(rounds: int, slices: int = 8, size: int = 256, views: int = 180):
    from skimage.transform import radon

    op = ParallelBeam((size, size), sparse_view_angles(views))
    x = np.random.default_rng(1).random((slices, size, size)).astype(np.float32)
    y = np.asarray(jax.jit(op.A)(x))
    a, at = jax.jit(op.A), jax.jit(op.AT)
    degrees = np.rad2deg(sparse_view_angles(views))
    fns = {"A": lambda: a(x), "AT": lambda: at(y),
           "skimage radon": lambda: [radon(s, degrees, circle=False) for s in x]}
    astra_fns = astra_projector(size, views)
    if astra_fns is not None:
        forward, backward = astra_fns
        pools = {1: ThreadPoolExecutor(1), 2: ThreadPoolExecutor(2)}
        for n, pool in pools.items():
            fns[f"ASTRA FP {n} thr"] = lambda p=pool: list(p.map(forward, x))
            fns[f"ASTRA BP {n} thr"] = lambda p=pool: list(p.map(backward, y))
    t = best_times(fns, rounds)
    print(f"\n[projector] {slices} slices of {size}x{size}, {views} views")
    reference = {"A": "ASTRA FP 2 thr", "AT": "ASTRA BP 2 thr", "skimage radon": "ASTRA FP 2 thr"}
    for name, seconds in t.items():
        ratio = ""
        if reference.get(name) in t:
            ratio = f"   {seconds / t[reference[name]]:6.3f} x {reference[name]}"
        if name == "A" and "ASTRA FP 2 thr" in t:
            ratio += f"   (AT: {t['AT'] / t['ASTRA FP 2 thr']:.3f} x ASTRA FP 2 thr)"
        print(f"  {name:<16} {seconds * 1e3:9.1f} ms{ratio}")
    if "ASTRA FP 2 thr" not in t:
        print("  (ASTRA not installed: pip install astra-toolbox)")


def flops(jitted, *args) -> float:
    analysis = jitted.lower(*args).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float(analysis["flops"])


def training_step(num_devices: int = 1):
    """(step fn, state, batch) of ``configs/train_phantom.py`` on random data, data-parallel
    over ``num_devices`` devices (the setup of ``benchmarks/train.py``)."""
    spec = importlib.util.spec_from_file_location("train_benchmark", ROOT / "benchmarks/train.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench.training_step(bench.load_config(ROOT / "configs/train_phantom.py"), num_devices)


def rates(rounds: int) -> None:
    """Denoiser and training-step FLOP rates against the matmul's; with several (host)
    devices also the denoiser with its batch split over them (`shard_denoiser`) and the
    training step data-parallel over them."""
    denoise_fn = priors.load("phantom64").denoise_fn
    chunk = jnp.asarray(np.random.default_rng(2).random((CHUNK, 64, 64)), jnp.float32)
    matrix = jnp.asarray(np.random.default_rng(3).random((2048, 2048)), jnp.float32)
    matmul = jax.jit(lambda m: m @ m)
    n = jax.device_count()
    denoisers = {"denoiser": xla_options.jit(denoise_fn, denoiser=denoise_fn),
                 "denoiser, XLA defaults": jax.jit(denoise_fn)}
    steps = {"train step": training_step(1)}
    if n > 1:
        denoisers[f"denoiser/{n} dev"] = xla_options.jit(shard_denoiser(denoise_fn),
                                                         denoiser=denoise_fn, num_devices=n)
        steps[f"train/{n} dev"] = training_step(n)
    # The same work on any device count: XLA's cost analysis of a sharded program counts
    # one device's share, so every variant is credited with the one-device FLOPs.
    one_device = {"denoiser": flops(denoisers["denoiser"], chunk, 0.5),
                  "train": flops(*steps["train step"])}
    work = {name: one_device["denoiser" if name.startswith("denoiser") else "train"]
            for name in list(denoisers) + list(steps)}
    fns = {"matmul": lambda: matmul(matrix)}
    fns.update({name: (lambda fn=fn: fn(chunk, 0.5)) for name, fn in denoisers.items()})
    for name, (step, state, batch) in steps.items():
        holder = [state]  # the step donates its state: carry it from call to call

        def train_once(step=step, holder=holder, batch=batch):
            holder[0], metrics = step(holder[0], batch)
            return metrics

        fns[name] = train_once
    t = best_times(fns, rounds)
    peak = 2 * 2048**3 / t["matmul"]
    print(f"\n[rates] jitted 2048^2 matmul: {peak / 1e9:.0f} GFLOP/s ({n} device(s) visible)")
    for name in list(denoisers) + list(steps):
        rate = work[name] / t[name]
        print(f"  {name:<22} {t[name] * 1e3:8.1f} ms  {work[name] / 1e9:6.2f} GFLOP  "
              f"{rate / 1e9:6.1f} GFLOP/s  {rate / peak:5.2f} of the matmul rate")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="demo,chest,large")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-projector", action="store_true")
    parser.add_argument("--no-rates", action="store_true")
    parser.add_argument("--host-devices", type=int, default=1,
                        help="expose the CPU as N host devices (rates then also split the "
                             "denoiser's batch and the training batch over them)")
    args = parser.parse_args()
    print(f"devices: {jax.devices()}")
    for name in [s for s in args.settings.split(",") if s]:
        if name not in SETTINGS:
            parser.error(f"unknown setting {name!r}; valid: {', '.join(SETTINGS)}")
        step_breakdown(name, args.rounds)
    if not args.no_projector:
        projector_comparison(args.rounds)
    if not args.no_rates:
        rates(args.rounds)


if __name__ == "__main__":
    main()
