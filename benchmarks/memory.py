"""Per-device memory of the paper-size reconstruction, read from XLA's compiled programs.

    python benchmarks/memory.py [--tiny] [--slices 256] [--views 20,360] [--devices 1,8]
                                [--chunks 8,16,32,64] [--view-chunk 8] [--json PATH]

Nothing runs: every program is lowered from abstract inputs (``jax.ShapeDtypeStruct``) and
compiled, and its ``compiled.memory_analysis()`` is read. For each view count and device count
it compiles

* the FDK baseline (``operator.baseline``, one jitted program on one device: the CLI runs
  it unsharded whatever the device count, so its figure is the same for 1 and 8 devices), and
* one DDS step of the library runtime (`iscs_jax.runtime.Reconstructor`, ``count=1``: the
  program a reconstruction calls once per step) for each denoiser chunk size, with the
  NCSN++ of ``configs/models/ncsnpp_256.py`` (random float32 weights, the architecture is all
  that matters), ISCS and iid noise controls and the settings of ``cbct.py:paper``.

The problem is the ``paper`` preset of ``configs/cbct.py``: 256 slices of 256x256 and the
published cone-beam geometry (source 700 mm and detector 500 mm from the axis, 512 x 512
detector at 2 mm). The figure per program and device is XLA's

    peak = argument + output + temp - alias bytes

of the per-device (SPMD-partitioned) executable: the inputs it reads (weights, y, the iterate,
the warm start, ``A^T y``), the outputs it writes (the next iterate) and the largest set of
temporaries its buffer assignment keeps live at once; alias bytes (outputs written into donated
inputs) are counted once. Generated code is not counted (0 on CPU). The runtime keeps exactly
the step's arguments alive between steps, so the step's peak is the run's steady state.

These are XLA:CPU's buffer assignments standing in for an accelerator's: a GPU or TPU compiler
fuses differently and its convolution libraries add workspace of their own, which is why the
plan keeps ``--headroom`` (10%) of the device free. ``--tiny`` runs the whole plan at toy sizes
in seconds (the 32x32 test network, 8 slices of 32x32, a scaled cone beam on 1 and 2 devices).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: The published reconstruction and the toy one of ``--tiny``.
FULL = dict(slices=256, views="20,360", devices="1,8", chunks="8,16,32,64", model_arg=None,
            preset="paper")
TINY = dict(slices=8, views="8", devices="1,2", chunks="2,4", model_arg="tiny",
            preset="scaled")
DEVICE_BYTES = 80e9  # an 80 GB accelerator (A100 / H100 80GB)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="toy sizes, seconds on a CPU")
    parser.add_argument("--slices", type=int, default=None, help="D (256; tiny 8)")
    parser.add_argument("--views", default=None, help="comma-separated view counts (20,360)")
    parser.add_argument("--devices", default=None, help="comma-separated device counts (1,8)")
    parser.add_argument("--chunks", default=None, help="denoiser chunk sizes (8,16,32,64)")
    parser.add_argument("--view-chunk", type=int, default=None,
                        help="cone-beam view_chunk (default: the config's)")
    parser.add_argument("--device-gb", type=float, default=DEVICE_BYTES / 1e9,
                        help="device memory in GB (1e9 bytes) the plan fits (80)")
    parser.add_argument("--headroom", type=float, default=0.10,
                        help="share of the device left to the accelerator's own workspace")
    parser.add_argument("--json", default=None, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    sizes = TINY if args.tiny else FULL
    for name in ("slices", "views", "devices", "chunks"):
        if getattr(args, name) is None:
            setattr(args, name, sizes[name])
    ints = lambda text: [int(v) for v in str(text).split(",") if v.strip()]  # noqa: E731
    args.views, args.devices, args.chunks = ints(args.views), ints(args.devices), ints(args.chunks)
    args.model_arg, args.preset = sizes["model_arg"], sizes["preset"]
    return args


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and "xla_force_host_platform_device_count" not in os.environ.get(
        "XLA_FLAGS", ""):
    # Fake CPU devices for the multi-device programs; set before JAX is imported.
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_"
                               f"device_count={max(ARGS.devices)}").strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

from iscs_jax import cli, operators, parallel, runtime  # noqa: E402
from iscs_jax.convert import score_sde  # noqa: E402
from iscs_jax.models import ncsnpp  # noqa: E402
from iscs_jax.samplers import core  # noqa: E402

MODEL_CONFIG = ROOT / "configs" / "models" / "ncsnpp_256.py"


@dataclasses.dataclass(frozen=True)
class Memory:
    """``compiled.memory_analysis()`` of one per-device executable, in bytes.

    Attributes:
      argument: XLA's argument bytes (the inputs the program reads; jit drops unused ones).
      resident: the bytes of every input the caller holds on the device while the program
        runs (a DDS step does not read ``y``, but the run keeps it), >= ``argument``.
      output, temp, alias: XLA's output, temporary and aliased (donated) bytes.
      compile_s: seconds the compilation took.
    """

    argument: int
    resident: int
    output: int
    temp: int
    alias: int
    compile_s: float

    @property
    def peak(self) -> int:
        """resident + output + temp - alias: what the device holds at the program's peak."""
        return max(self.resident, self.argument) + self.output + self.temp - self.alias

    @classmethod
    def of(cls, lowered, resident: int = 0) -> "Memory":
        start = time.perf_counter()
        stats = lowered.compile().memory_analysis()
        return cls(int(stats.argument_size_in_bytes), int(resident),
                   int(stats.output_size_in_bytes), int(stats.temp_size_in_bytes),
                   int(stats.alias_size_in_bytes), time.perf_counter() - start)


def device_bytes(tree) -> int:
    """Bytes one device holds of ``tree``'s arrays (sharded leaves: their shard; leaves
    without a sharding: whole, as replicated weights are)."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        sharding = getattr(leaf, "sharding", None)
        shape = sharding.shard_shape(leaf.shape) if sharding is not None else np.shape(leaf)
        total += int(np.prod(shape)) * np.dtype(leaf.dtype).itemsize
    return total


def paper_config():
    """``cbct.py:paper``: the sampler settings, view count and ``view_chunk`` planned for."""
    return cli.load_config("cbct.py:paper", "configs")[0]


def make_operator(config, args, num_views: int):
    """The cone beam of the config's ``operator`` section at ``num_views`` views for
    ``args.slices`` slices of the prior's size."""
    section = config.operator
    settings = {name: section[name] for name in operators.setting_names("cone_beam")
                if name in section}
    settings.update(num_views=num_views, preset=args.preset)
    if args.view_chunk is not None:
        settings["view_chunk"] = args.view_chunk
    return operators.build("cone_beam", (args.slices, args.size, args.size), **settings)


def random_denoiser(model_arg: str | None):
    """``(Denoiser, image size)``: NCSN++ of ``ncsnpp_256.py[:model_arg]``, random weights."""
    spec = importlib.util.spec_from_file_location("ncsnpp_benchmark", ROOT / "benchmarks/ncsnpp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cfg, _ = score_sde.ncsnpp_config(str(MODEL_CONFIG) + (f":{model_arg}" if model_arg else ""))
    graphdef, state = module.random_state(cfg, jnp.float32)
    return ncsnpp.make_denoise_fn(graphdef, state), cfg.image_size


def abstract_run(recon: runtime.Reconstructor, operator, num_slices: int) -> runtime.Run:
    """A `runtime.Run` of shapes only: ``y`` replicated (a ``"global"`` operator), the warm
    start and ``A^T y`` ``[D_pad, H, W]`` sharded by slice (what `Reconstructor.prepare`
    would place, without placing or computing anything)."""
    mesh = recon.mesh
    size = parallel.padded_size(num_slices, mesh.size)
    sliced = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
    volume = jax.ShapeDtypeStruct((size, *operator.volume_shape[1:]), jnp.float32,
                                  sharding=sliced)
    y = jax.ShapeDtypeStruct(operator.measurement_shape(), jnp.float32,
                             sharding=parallel.replicated(mesh))
    return runtime.Run(y, volume, core.Setup(volume, None), num_slices)


def dds_step(operator, denoiser, config, mesh, chunk: int) -> Memory:
    """Memory of one DDS step (`Reconstructor.lower` of a one-step piece)."""
    s = config.sampler
    sigmas = np.geomspace(config.sde.sigma_max, 0.01, s.steps).astype(np.float32)
    recon = runtime.Reconstructor(
        operator, denoiser, sigmas=sigmas, sampler="dds", noises=("iid", "iscs"), mesh=mesh,
        renoise=s.renoise, chunk_size=chunk, final_denoise=bool(s.final_denoise),
        **s.dds.to_dict())
    run = abstract_run(recon, operator, operator.volume_shape[0])
    # Held during a step: the run (y, warm start, A^T y), the iterate and the weights.
    resident = device_bytes((run.y, run.x_init, run.setup, run.setup.aty, denoiser.weights))
    return Memory.of(recon.lower(run, 1), resident)


def fdk(operator) -> Memory:
    """Memory of the jitted FDK baseline on one device."""
    y = jax.ShapeDtypeStruct(operator.measurement_shape(), jnp.float32)
    return Memory.of(jax.jit(operator.baseline).lower(y), device_bytes(y))


def plan(args) -> dict:
    """Every program's memory: ``{"fdk": {views: Memory}, "dds": [row, ...]}``."""
    config = paper_config()
    denoiser, args.size = random_denoiser(args.model_arg)
    results = {"fdk": {}, "dds": []}
    for views in args.views:
        operator = make_operator(config, args, views)
        results["fdk"][views] = fdk(operator)
        print(f"fdk {views} views: {gib(results['fdk'][views].peak)} (compiled in "
              f"{results['fdk'][views].compile_s:.0f} s)", flush=True)
        for devices in args.devices:
            mesh = parallel.make_mesh(devices)
            for chunk in args.chunks:
                memory = dds_step(operator, denoiser, config, mesh, chunk)
                results["dds"].append(dict(views=views, devices=devices, chunk=chunk,
                                           view_chunk=operator.view_chunk, memory=memory))
                print(f"dds {views} views, {devices} dev, chunk {chunk}: {gib(memory.peak)} "
                      f"(compiled in {memory.compile_s:.0f} s)", flush=True)
    results["config_chunk"] = int(config.sampler.chunk_size)
    results["view_chunk"] = int(config.operator.view_chunk if args.view_chunk is None
                                else args.view_chunk)
    return results


def unit(tiny: bool) -> tuple[str, int]:
    """``("GiB", 2**30)``, or ``("MiB", 2**20)`` for the toy sizes."""
    return ("MiB", 2**20) if tiny else ("GiB", 2**30)


def gib(value: float) -> str:
    return f"{value / 2**30:.2f} GiB"


def largest_fitting(rows, devices: int, budget: float, max_chunk: int | None = None
                    ) -> int | None:
    """The largest chunk (at most ``max_chunk``) whose DDS step fits ``budget`` bytes at every
    view count."""
    chunks = sorted({r["chunk"] for r in rows if r["devices"] == devices
                     and (max_chunk is None or r["chunk"] <= max_chunk)})
    fits = [c for c in chunks if all(r["memory"].peak <= budget for r in rows
                                     if r["devices"] == devices and r["chunk"] == c)]
    return max(fits) if fits else None


def format_table(results: dict, args) -> str:
    """One line per program: views, devices, chunk, XLA's bytes, what the device holds, the
    peak."""
    scale = unit(args.tiny)[1]
    columns = ("xla args", "resident", "output", "temp", "peak")
    header = (f"{'program':<7} {'views':>5} {'dev':>3} {'chunk':>5} "
              + " ".join(f"{c:>8}" for c in columns) + f" {'compile s':>9}")
    lines = [header]

    def line(program, views, devices, chunk, m):
        values = (m.argument, m.resident, m.output, m.temp, m.peak)
        lines.append(f"{program:<7} {views:>5} {devices:>3} {chunk:>5} "
                     + " ".join(f"{v / scale:>8.2f}" for v in values) + f" {m.compile_s:>9.1f}")

    for views, m in results["fdk"].items():
        line("fdk", views, 1, "-", m)
    for r in results["dds"]:
        line("dds", r["views"], r["devices"], r["chunk"], r["memory"])
    return "\n".join(lines)


def summary(results: dict, args) -> list[str]:
    """The plan: per device count, the largest chunk that fits, and the preset's check."""
    budget = args.device_gb * 1e9 * (1 - args.headroom)
    name, scale = unit(args.tiny)
    lines = [f"budget: {args.device_gb:g} GB device, {args.headroom:.0%} left for the "
             f"accelerator's workspace -> {budget / scale:.2f} {name} per device (XLA:CPU "
             "buffer assignment standing in for an accelerator's)"]
    for devices in args.devices:
        # A chunk above a device's slice count pads them with zeros: more work, no gain.
        local = parallel.padded_size(args.slices, devices) // devices
        best = largest_fitting(results["dds"], devices, budget, max_chunk=local)
        if best is None:
            lines.append(f"{devices} device(s): no chunk tried fits")
            continue
        peak = max(r["memory"].peak for r in results["dds"]
                   if r["devices"] == devices and r["chunk"] == best)
        padded = sorted(c for c in args.chunks if c > local)
        lines.append(f"{devices} device(s), {local} slices each: largest chunk that fits = "
                     f"{best} (peak {peak / scale:.2f} {name} per device, worst view count)"
                     + (f"; chunks {padded} only pad the slices" if padded else ""))
    one = largest_fitting(results["dds"], 1, budget) if 1 in args.devices else None
    if not args.tiny and one is not None:
        verdict = "matches" if one == results["config_chunk"] else "DIFFERS from"
        lines.append(f"cbct.py:paper sampler.chunk_size={results['config_chunk']} {verdict} "
                     f"the plan's one-device choice {one}")
    return lines


def to_json(results: dict, args) -> dict:
    memory = lambda m: {**dataclasses.asdict(m), "peak": m.peak}  # noqa: E731
    return {"tiny": args.tiny, "slices": args.slices, "size": args.size,
            "preset": args.preset, "view_chunk": results["view_chunk"],
            "budget_bytes": args.device_gb * 1e9 * (1 - args.headroom),
            "fdk": [{"views": v, **memory(m)} for v, m in results["fdk"].items()],
            "dds": [{**{k: v for k, v in r.items() if k != "memory"}, **memory(r["memory"])}
                    for r in results["dds"]]}


def main(args) -> int:
    print(f"iscs-jax memory plan{' (tiny)' if args.tiny else ''}: jax {jax.__version__}, "
          f"{jax.device_count()} {jax.devices()[0].platform} devices; compile only", flush=True)
    results = plan(args)
    print(f"\n{args.slices} slices of {args.size}x{args.size}, cone beam ({args.preset} "
          f"geometry, view_chunk {results['view_chunk']}), FDK and one DDS step; "
          f"{unit(args.tiny)[0]} per device, peak = resident + output + temp - alias")
    print(format_table(results, args))
    print("\n".join(summary(results, args)))
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(results, args), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
