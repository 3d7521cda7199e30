"""One accelerator benchmark, one table.

    python benchmarks/accelerator.py [--json PATH] [--tiny] [--repeats 3]

Sized to finish in under 10 minutes on one GPU or TPU (the time guard below enforces it);
prints one plain-text table of

* the devices (`jax.devices()`: platform, kind, count) and the JAX version;
* a DDS + ISCS reconstruction of 64 slices of 256x256 (20 parallel-beam views, 10 steps,
  10 CG iterations, chunks of 8) with the NCSN++ of ``configs/models/ncsnpp_256.py``
  (random float32 weights) through `iscs_jax.samplers.reconstruct_sharded` over every
  device: the first call (compilation and one run), a second call, and the peak device
  memory (the largest ``peak_bytes_in_use`` of `jax.Device.memory_stats` over the devices,
  'n/a' where a backend has none; read right after this section, which runs first, so it
  is this reconstruction's peak, weights included);
* slices/s of one denoising pass over those 64 slices (`core.denoise_in_chunks` under
  ``jax.shard_map``) on 1, 2, 4, ... up to N devices (N = the device count);
* the NCSN++ forward pass per slice at batch 8 and 32, in float32 and in bfloat16: the
  model's ``dtype`` argument (`iscs_jax.models.ncsnpp.NCSNpp(dtype=...)`, as
  ``benchmarks/ncsnpp.py --dtype bfloat16``: parameters stay float32 and are cast to bfloat16
  inside each layer, inputs are cast at the first convolution, the score is float32);
* cone-beam ``A`` and ``AT`` at the published geometry (`iscs_jax.operators.ConeBeam`:
  256^3 unit voxels, 360 views over 360 degrees, 512x512 detector at 2 mm, source 700 mm and
  detector 500 mm from the axis) on a centred Gaussian ball.

Each section runs in its own ``try``: a failing one prints its error in the table and the
others still run. A time guard skips the sections that would start after ``--budget``
seconds, and a watchdog prints the table (and writes the JSON) of what has finished and exits
if the whole run passes ``--hard-limit`` seconds. ``--json PATH`` also writes the results as
JSON (rewritten after every section). ``--tiny`` runs everything at toy sizes on a 2-core
CPU in about a minute (the 32x32 ``ncsnpp_256.py:tiny`` network, 4 slices of 32x32, 2
steps, a 16^3 cone beam with 8 views); ``tests/test_accelerator.py`` runs it on two fake
CPU devices.
Times are medians of ``--repeats`` calls after a warm-up call; "compile s" is the first call
(compilation and one run) less the median.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import PartitionSpec  # noqa: E402

from iscs_jax import parallel, xla_options  # noqa: E402
from iscs_jax.convert import score_sde  # noqa: E402
from iscs_jax.denoiser import Denoiser  # noqa: E402
from iscs_jax.models import ncsnpp  # noqa: E402
from iscs_jax.operators import (ConeBeam, ParallelBeam, full_orbit_angles,  # noqa: E402
                                sparse_view_angles)
from iscs_jax.samplers import core, reconstruct_sharded  # noqa: E402

MODEL_CONFIG = ROOT / "configs" / "models" / "ncsnpp_256.py"
SECTIONS = ("devices", "dds", "scaling", "ncsnpp", "cone_beam")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """The problem sizes of a run (`FULL` on an accelerator, `TINY` on a CPU)."""

    model_arg: str | None  # ncsnpp_256.py's config argument
    batches: tuple[int, ...]  # NCSN++ forward batch sizes
    slices: int  # DDS volume: slices of size x size
    size: int
    views: int  # parallel-beam views
    steps: int
    cg_iters: int
    chunk: int  # slices per denoiser call
    cone_n: int  # cone beam: cone_n^3 voxels
    cone_views: int
    cone_detector: tuple[int, int]  # rows, cols at 2 mm
    cone_distances: tuple[float, float]  # source-axis, axis-detector (mm)


FULL = Sizes(None, (8, 32), 64, 256, 20, 10, 10, 8, 256, 360, (512, 512), (700.0, 500.0))
TINY = Sizes("tiny", (2, 4), 4, 32, 8, 2, 2, 2, 16, 8, (24, 32), (43.75, 31.25))
SIGMA_MAX, SIGMA_MIN = 5.0, 0.01  # the published CT schedule's range (configs/sample_base.py)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="also write the results here as JSON")
    parser.add_argument("--tiny", action="store_true",
                        help="toy sizes, about a minute on a 2-core CPU")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after a warm-up")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds after which no new section starts (420; tiny 300)")
    parser.add_argument("--hard-limit", type=float, default=None,
                        help="seconds after which the table is printed and the run stops "
                             "(510; tiny 400)")
    return parser.parse_args(argv)


def load_ncsnpp_benchmark():
    """``benchmarks/ncsnpp.py`` as a module (its ``random_state``)."""
    spec = importlib.util.spec_from_file_location("ncsnpp_benchmark", ROOT / "benchmarks/ncsnpp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def median_time(fn, repeats: int) -> tuple[float, float]:
    """``(first_call_s, median_s)``: the first call (compilation included), then the median
    of ``repeats`` further calls; ``fn()`` returns arrays (blocked on)."""
    start = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - start
    times = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def peak_bytes() -> int | None:
    """The largest ``peak_bytes_in_use`` over the local devices, or None where the backend
    reports no memory statistics (CPU)."""
    peaks = []
    for device in jax.local_devices():
        try:
            stats = device.memory_stats()
        except Exception:  # some backends raise instead of returning None
            stats = None
        if stats and "peak_bytes_in_use" in stats:
            peaks.append(int(stats["peak_bytes_in_use"]))
    return max(peaks) if peaks else None


def random_model(sizes: Sizes, dtype=jnp.float32):
    """``(cfg, graphdef, state)``: NCSN++ of ``ncsnpp_256.py[:model_arg]`` with random weights
    (`benchmarks/ncsnpp.py`'s ``random_state``), the state placed on the default device."""
    cfg, _ = score_sde.ncsnpp_config(str(MODEL_CONFIG) + (f":{sizes.model_arg}"
                                                          if sizes.model_arg else ""))
    graphdef, state = load_ncsnpp_benchmark().random_state(cfg, dtype)
    return cfg, graphdef, jax.device_put(state)


def devices_section(sizes: Sizes, repeats: int) -> dict:
    """Platform, kind and count of `jax.devices()`, and the JAX version."""
    del sizes, repeats
    devices = jax.devices()
    return {"platform": devices[0].platform, "kind": devices[0].device_kind,
            "count": len(devices), "jax": jax.__version__,
            "matmul_precision": str(jax.config.jax_default_matmul_precision),
            "kinds": sorted({d.device_kind for d in devices})}


def test_volume(sizes: Sizes) -> np.ndarray:
    """``[slices, size, size]``: a centred disc of 0.6 with a brighter off-centre disc."""
    c = (np.arange(sizes.size) - sizes.size / 2 + 0.5) / (sizes.size / 2)
    yy, xx = np.meshgrid(c, c, indexing="ij")
    image = 0.6 * (xx**2 + yy**2 < 0.8) + 0.3 * ((xx - 0.3) ** 2 + yy**2 < 0.05)
    return np.broadcast_to(image, (sizes.slices, sizes.size, sizes.size)).astype(np.float32)


def dds_section(sizes: Sizes, repeats: int) -> dict:
    """DDS + ISCS over every device with a random float32 NCSN++ (`reconstruct_sharded`);
    one timed call after the first (a whole reconstruction), whatever ``repeats``."""
    del repeats
    _, graphdef, state = random_model(sizes)
    denoise_fn = ncsnpp.make_denoise_fn(graphdef, state)
    op = ParallelBeam((sizes.size, sizes.size), sparse_view_angles(sizes.views))
    y = np.asarray(jax.jit(op.A)(test_volume(sizes)))
    sigmas = np.geomspace(SIGMA_MAX, SIGMA_MIN, sizes.steps).astype(np.float32)
    mesh = parallel.make_mesh()
    run = lambda: reconstruct_sharded(  # noqa: E731
        jax.random.key(0), y, op, denoise_fn, mesh=mesh, sigmas=sigmas, sampler="dds",
        noise="iscs", cg_iters=sizes.cg_iters, rho=0.0, chunk_size=sizes.chunk)
    first, seconds = median_time(run, 1)
    x = parallel.gather_to_host(run())
    return {"slices": sizes.slices, "size": sizes.size, "views": sizes.views,
            "steps": sizes.steps, "cg_iters": sizes.cg_iters, "chunk": sizes.chunk,
            "devices": mesh.size, "compile_s": max(first - seconds, 0.0), "seconds": seconds,
            "slice_steps_per_s": sizes.slices * sizes.steps / seconds,
            "peak_bytes": peak_bytes(), "finite": bool(np.isfinite(x).all()),
            "mean": float(x.mean())}


def sharded_denoise_pass(denoise_fn: Denoiser, mesh, chunk: int, sigma: float):
    """``f(x [D_pad, H, W] sharded over mesh) -> x0_hat``: each device runs
    `core.denoise_in_chunks` on its own slices (the sampler's denoising pass)."""
    axis = mesh.axis_names[0]
    weights = parallel.replicate(denoise_fn.weights, mesh)

    def body(w, x):
        return core.denoise_in_chunks(Denoiser(denoise_fn.apply, w), x, jnp.float32(sigma),
                                      chunk)

    mapped = jax.shard_map(body, mesh=mesh, in_specs=(PartitionSpec(), PartitionSpec(axis)),
                           out_specs=PartitionSpec(axis), check_vma=False)
    jitted = xla_options.jit(mapped, denoiser=denoise_fn, num_devices=mesh.size)
    return lambda x: jitted(weights, x)


def device_counts(total: int) -> list[int]:
    """1, 2, 4, ... up to ``total``, and ``total`` itself."""
    counts = [n for n in (2**k for k in range(total.bit_length())) if n <= total]
    return counts + ([total] if counts[-1] != total else [])


def scaling_section(sizes: Sizes, repeats: int) -> dict:
    """Slices/s of one denoising pass over the DDS volume on 1..N devices."""
    _, graphdef, state = random_model(sizes)
    denoise_fn = ncsnpp.make_denoise_fn(graphdef, state)
    volume = test_volume(sizes)
    rows = []
    for n in device_counts(jax.device_count()):
        mesh = parallel.make_mesh(n)
        fn = sharded_denoise_pass(denoise_fn, mesh, sizes.chunk, 1.0)
        x = parallel.shard_slices(volume, mesh)
        first, seconds = median_time(lambda: fn(x), repeats)
        rows.append({"devices": n, "compile_s": max(first - seconds, 0.0), "seconds": seconds,
                     "slices_per_s": sizes.slices / seconds})
    return {"slices": sizes.slices, "size": sizes.size, "chunk": sizes.chunk, "rows": rows}


def ncsnpp_section(sizes: Sizes, repeats: int) -> dict:
    """Per-slice forward time of the score network, float32 and bfloat16, per batch size."""
    rows = []
    for dtype in (jnp.float32, jnp.bfloat16):
        cfg, graphdef, state = random_model(sizes, dtype)
        score = jax.jit(lambda state, x, sigma: ncsnpp.make_score_fn(graphdef, state)(x, sigma))
        for batch in sizes.batches:
            x = jax.random.uniform(jax.random.key(1), (batch, cfg.image_size, cfg.image_size,
                                                       cfg.num_channels))
            sigma = jnp.full((batch,), 5.0)
            first, seconds = median_time(lambda: score(state, x, sigma), repeats)
            rows.append({"dtype": jnp.dtype(dtype).name, "batch": batch,
                         "compile_s": max(first - seconds, 0.0), "seconds": seconds,
                         "s_per_slice": seconds / batch})
        del state
    return {"image_size": cfg.image_size, "nf": cfg.nf, "rows": rows,
            "bfloat16": "NCSNpp(dtype=bfloat16): float32 parameters cast in each layer, "
                        "bfloat16 activations, float32 score"}


def gaussian_ball(n: int) -> np.ndarray:
    """``[n, n, n]`` centred isotropic Gaussian of standard deviation n / 8 voxels."""
    c = np.arange(n) - n / 2 + 0.5
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    return np.exp(-(x**2 + y**2 + z**2) / (2 * (n / 8) ** 2)).astype(np.float32)


def cone_beam_section(sizes: Sizes, repeats: int) -> dict:
    """Jitted `ConeBeam.A` and ``AT`` at the (published or tiny) geometry."""
    n = sizes.cone_n
    source, detector = sizes.cone_distances
    op = ConeBeam((n, n, n), full_orbit_angles(sizes.cone_views), source_origin=source,
                  origin_detector=detector, detector_shape=sizes.cone_detector,
                  detector_spacing=(2.0, 2.0))
    x = jax.device_put(gaussian_ball(n))
    forward, adjoint = jax.jit(op.A), jax.jit(op.AT)
    a_first, a_s = median_time(lambda: forward(x), repeats)
    y = forward(x)
    at_first, at_s = median_time(lambda: adjoint(y), repeats)
    return {"volume": n, "views": sizes.cone_views, "detector": list(sizes.cone_detector),
            "source_origin": source, "origin_detector": detector, "view_chunk": op.view_chunk,
            "A_compile_s": max(a_first - a_s, 0.0), "A_s": a_s,
            "AT_compile_s": max(at_first - at_s, 0.0), "AT_s": at_s,
            "finite": bool(np.isfinite(np.asarray(y)).all())}


RUNNERS = {"devices": devices_section, "dds": dds_section, "scaling": scaling_section,
           "ncsnpp": ncsnpp_section, "cone_beam": cone_beam_section}


def _gb(value) -> str:
    return "n/a" if value is None else f"{value / 2**30:.2f} GiB"


def _section_rows(name: str, r: dict) -> list[tuple[str, str, str, str, str]]:
    """Table rows ``(section, case, compile s, time s, figure)`` of one finished section."""
    if name == "devices":
        return [("devices", f"{r['platform']} x{r['count']}: {', '.join(r['kinds'])}", "", "",
                 f"jax {r['jax']}")]
    if name == "dds":
        case = (f"{r['slices']}x{r['size']}^2, {r['views']} views, {r['steps']} steps, "
                f"CG {r['cg_iters']}, {r['devices']} dev")
        return [("DDS+ISCS f32", case, f"{r['compile_s']:.1f}", f"{r['seconds']:.3f}",
                 f"peak {_gb(r['peak_bytes'])}, finite={r['finite']}")]
    if name == "scaling":
        return [("denoise pass", f"{r['slices']}x{r['size']}^2, {row['devices']} dev",
                 f"{row['compile_s']:.1f}", f"{row['seconds']:.3f}",
                 f"{row['slices_per_s']:.1f} slices/s") for row in r["rows"]]
    if name == "ncsnpp":
        short = {"float32": "f32", "bfloat16": "bf16"}
        return [(f"NCSN++ {r['image_size']} {short.get(row['dtype'], row['dtype'])}",
                 f"batch {row['batch']}", f"{row['compile_s']:.1f}", f"{row['seconds']:.4f}",
                 f"{1e3 * row['s_per_slice']:.2f} ms/slice") for row in r["rows"]]
    geometry = (f"{r['volume']}^3, {r['views']} views, {r['detector'][0]}x{r['detector'][1]} "
                f"at 2 mm")
    return [(f"cone-beam {op}", geometry, f"{r[op + '_compile_s']:.1f}", f"{r[op + '_s']:.3f}",
             "") for op in ("A", "AT")]


def format_table(results: dict) -> str:
    """The plain-text table of ``results`` (section name -> result dict or status)."""
    header = ("section", "case", "compile s", "time s", "result")
    rows = []
    for name in SECTIONS:
        r = results.get(name, {"status": "not run"})
        if r.get("status", "ok") != "ok":
            rows.append((name, r["status"][:200], "", "", ""))
            continue
        rows += _section_rows(name, r)
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(4)]
    lines = []
    for row in [header] + rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]),
                 row[3].rjust(widths[3]), row[4]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


class Report:
    """The results so far, printed once (at the end or by the watchdog) and kept as JSON."""

    def __init__(self, sizes: Sizes, json_path: str | None, start: float):
        self.sizes, self.json_path, self.start = sizes, json_path, start
        self.results: dict = {}
        self.lock, self.printed = threading.Lock(), False

    def record(self, name: str, result: dict) -> None:
        with self.lock:
            self.results[name] = result
            self._write_json()

    def _write_json(self) -> None:
        if self.json_path:
            doc = {"tiny": self.sizes.model_arg == "tiny", "elapsed_s": self.elapsed(),
                   "sections": self.results}
            Path(self.json_path).write_text(json.dumps(doc, indent=1, default=str))

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def finish(self, note: str = "") -> None:
        """Prints the table (once) and writes the JSON."""
        with self.lock:
            if self.printed:
                return
            self.printed = True
            self._write_json()
            print(f"\n{format_table(self.results)}")
            print(f"(total {self.elapsed():.0f} s{note})", flush=True)


def run_section(name: str, report: Report, repeats: int, budget: float) -> None:
    """Runs one section into ``report``: its result, its error, or skipped by the guard."""
    if report.elapsed() > budget:
        report.record(name, {"status": f"skipped: time guard ({budget:.0f} s)"})
        return
    start = time.perf_counter()
    print(f"[{report.elapsed():6.1f} s] {name} ...", flush=True)
    try:
        result = {"status": "ok", **RUNNERS[name](report.sizes, repeats)}
    except Exception as err:  # one failing section must not stop the others
        result = {"status": f"error: {type(err).__name__}: {err}".replace("\n", " ")}
    result["section_s"] = time.perf_counter() - start
    report.record(name, result)
    print(f"[{report.elapsed():6.1f} s] {name}: {result['status'][:300]}", flush=True)


def start_watchdog(report: Report, hard_limit: float) -> None:
    """After ``hard_limit`` seconds: print what has finished and exit (a section stuck in
    compilation cannot be interrupted from Python)."""

    def stop():
        report.finish(f"; stopped by the watchdog at {hard_limit:.0f} s")
        os._exit(3)

    timer = threading.Timer(hard_limit, stop)
    timer.daemon = True
    timer.start()


def main(argv=None) -> int:
    args = parse_args(argv)
    sizes = TINY if args.tiny else FULL
    budget = args.budget if args.budget is not None else (300.0 if args.tiny else 420.0)
    hard_limit = args.hard_limit if args.hard_limit is not None else (
        400.0 if args.tiny else 510.0)
    report = Report(sizes, args.json, time.perf_counter())
    start_watchdog(report, hard_limit)
    print(f"iscs-jax accelerator benchmark{' (tiny)' if args.tiny else ''}: "
          f"jax {jax.__version__}, {jax.devices()}", flush=True)
    for name in SECTIONS:
        run_section(name, report, args.repeats, budget)
    report.finish()
    return 0 if all(r.get("status") == "ok" for r in report.results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
