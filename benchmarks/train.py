"""Training throughput and memory: the folder source next to the in-memory one.

    python benchmarks/train.py [--config configs/train_folder.py] [--config_arg smoke]
        [--steps 4] [--rounds 3] [--volume_shape 48,160,160] [--memory_volumes 4,16]

Writes synthetic CT-like NIfTI volumes (a disc of soft tissue in air; nothing is downloaded)
into a temporary folder, then prints

* per source (``memory``: the training planes prepared and augmented up front and batched by
  `iscs_jax.data.batches.batch_at`, as ``data.source=nifti`` does; ``folder``: `train.dataset`
  streaming the same volumes through grain with on-the-fly augmentation): seconds per step
  including the batch (the best of ``--rounds`` rounds of ``--steps`` steps, the sources
  alternating so both see the same load), samples/s, and the fraction of this machine's
  float32 matmul rate that the step's FLOPs (XLA's cost analysis) reach; and the
  folder/memory step-time ratio;
* the peak resident memory of ``python -m train --config configs/train_folder.py:smoke`` on
  folders of 4 and 16 volumes (the child's own ``VmHWM``).
"""

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from iscs_jax import cli, io, parallel  # noqa: E402
from train import dataset, loop  # noqa: E402


def load_config(path, arg=None):
    """``get_config(arg)`` of a training config file (a path or a name in ``configs/``)."""
    return cli.load_config(f"{path}:{arg}" if arg else str(path), "configs")[0]


def training_step(config, num_devices: int = 0):
    """(jitted step, state, random batch) of ``config``, data-parallel over ``num_devices``
    devices (0: all); `benchmarks/dds.py` uses it."""
    mesh = parallel.make_mesh(num_devices, "batch")
    tx = loop.make_optimizer(config)
    graphdef, state = loop.create_train_state(config, tx)
    state = loop.place_state(state, mesh)
    step = loop.compile_train_step(graphdef, tx, config, mesh)
    b, r = config.train.batch_size, config.data.resolution
    batch = jax.device_put(np.random.default_rng(0).random((b, r, r), np.float32),
                           parallel.leading_axis_sharding(mesh))
    return step, state, batch


def write_volumes(folder: Path, count: int, shape) -> Path:
    """``count`` CT-like volumes ``shape`` ``[D, H, W]`` (air around a disc) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:shape[1], :shape[2]]
    disc = (yy - shape[1] / 2) ** 2 + (xx - shape[2] / 2) ** 2 < (0.35 * min(shape[1:])) ** 2
    for i in range(count):
        levels = np.linspace(-200.0, 400.0, shape[0])[:, None, None] + 20.0 * i
        volume = np.where(disc, levels, -1000.0).astype(np.float32)
        io.write_nifti(folder / f"vol{i:02d}.nii.gz", volume, np.diag([-1.0, 1.0, 2.0, 1.0]))
    return folder


def matmul_rate(size: int = 1024, repeats: int = 10) -> float:
    """float32 FLOP/s of a ``size`` x ``size`` matrix product on the default device."""
    a = jnp.ones((size, size), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(repeats):
        out = f(a)
    out.block_until_ready()
    return 2.0 * size**3 * repeats / (time.perf_counter() - t0)


def memory_slices(config, folder: Path) -> np.ndarray:
    """The in-memory source's training set of the same volumes: every plane prepared, then
    `augment_slices` with 2 copies (``[N * 2, R, R]``)."""
    from iscs_jax.data import augment

    prep = dataset.preparation(config.data)
    planes = [dataset.read_planes(p, prep) for p in sorted(folder.glob("*.nii.gz"))]
    aug = dataclasses.replace(dataset.augmentation(config.data), copies=2)
    return np.concatenate([augment.augment_slices(p, aug, seed=i) for i, p in enumerate(planes)])


def prepare_source(config, workdir: str, slices):
    """``(run(steps) -> seconds per step, step FLOPs)`` of the real loop on one source: the
    next batch, then the step (compiled here, first batch included)."""
    mesh = parallel.make_mesh(config.parallel.num_devices, "batch")
    tx = loop.make_optimizer(config)
    graphdef, state = loop.create_train_state(config, tx)
    holder = {"state": loop.place_state(state, mesh)}
    step = loop.compile_train_step(graphdef, tx, config, mesh)
    batches, _ = dataset.training_data(config, workdir, mesh, slices)
    stream = batches(0, 1_000_000)
    batch = next(stream)
    cost = step.lower(holder["state"], batch).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    holder["state"], metrics = step(holder["state"], batch)
    jax.block_until_ready(metrics)

    def run(steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            holder["state"], metrics = step(holder["state"], next(stream))
        jax.block_until_ready(metrics)
        return (time.perf_counter() - t0) / steps
    return run, float(cost.get("flops", 0.0))


#: Runs the training CLI, then prints this process's peak resident memory (VmHWM, kB): the
#: child's own high-water mark (``ru_maxrss`` of a child starts at its parent's peak).
PEAK_SCRIPT = """
import sys
from train.__main__ import main
status = main(sys.argv[1:])
print([line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1])
sys.exit(status)
"""


def peak_memory(folder: Path, workdir: Path) -> float:
    """Peak resident MB of the smoke training command on ``folder``."""
    args = ["--config", "configs/train_folder.py:smoke", f"--config.data.path={folder}",
            "--workdir", str(workdir)]
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, *args], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"python -m train {' '.join(args)} failed: {done.stderr[-2000:]}")
    return int(done.stdout.strip().splitlines()[-1]) / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/train_folder.py")
    parser.add_argument("--config_arg", default=None, help="e.g. 'smoke'")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="best round of each source")
    parser.add_argument("--num_volumes", type=int, default=4)
    parser.add_argument("--volume_shape", default="48,160,160")
    parser.add_argument("--memory_volumes", default="4,16", help="'' to skip")
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.volume_shape.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = write_volumes(tmp / "vols", args.num_volumes, shape)
        config = load_config(args.config, args.config_arg)
        config.data.update(path=str(folder), val_fraction=0.0)
        rate = matmul_rate()
        b, r = config.train.batch_size, config.data.resolution
        print(f"batch={b} res={r} devices={jax.device_count()} volumes={args.num_volumes}x"
              f"{shape} matmul={rate / 1e9:.1f} GFLOP/s")
        print(f"{'source':<8} {'s/step':>8} {'samples/s':>10} {'of matmul':>10}")
        runs = {name: prepare_source(config, str(tmp / name),
                                     memory_slices(config, folder) if name == "memory" else None)
                for name in ("memory", "folder")}
        times = {name: [] for name in runs}
        for _ in range(args.rounds):  # alternate, so both see the same machine load
            for name, (run, _) in runs.items():
                times[name].append(run(args.steps))
        times = {name: min(values) for name, values in times.items()}
        for name, (_, flops) in runs.items():
            seconds = times[name]
            print(f"{name:<8} {seconds:8.3f} {b / seconds:10.1f} {flops / seconds / rate:10.1%}")
        print(f"folder / memory step time: {times['folder'] / times['memory']:.3f}")
        counts = [int(v) for v in args.memory_volumes.split(",") if v.strip()]
        for count in counts:
            vols = write_volumes(tmp / f"mem{count}", count, shape)
            mb = peak_memory(vols, tmp / f"work{count}")
            print(f"peak RSS, train_folder.py:smoke on {count:>2} volumes: {mb:7.0f} MB")


if __name__ == "__main__":
    main()
