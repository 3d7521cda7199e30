"""What ``train.dtype=bfloat16`` costs per training step, side by side with float32.

    python benchmarks/train_dtype.py [--config configs/train_phantom.py] [--steps 4]
        [--rounds 3] [--set train.batch_size=8 ...]

Builds the train step of the config (its model, batch and ``train.chains``) in float32 and
in bfloat16 (`train.models`: bf16 convolutions and products, float32 parameters, optimizer
state, EMA and loss) in this one process, compiles both, then times ``--steps`` steps of
each, alternating float32 / bfloat16 for ``--rounds`` rounds so that a busy machine slows
both alike, and prints the median seconds per step of each and their ratio. A step is
timed to its result (``block_until_ready``) on a fixed batch of the config's data.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402

from iscs_jax import cli, parallel  # noqa: E402
import train.__main__ as train_main  # noqa: E402
from train import data, loop  # noqa: E402


def step_for(config, mesh):
    """``(jitted step, fresh state)`` of ``config`` on ``mesh``."""
    tx = loop.make_optimizer(config)
    graphdef, state = loop.create_train_state(config, tx)
    return loop.compile_train_step(graphdef, tx, config, mesh), loop.place_state(state, mesh)


def time_steps(step, state, batch, steps: int):
    """``(state, seconds per step)`` of ``steps`` calls."""
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    return state, (time.perf_counter() - start) / steps


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/train_phantom.py")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. train.batch_size=8")
    args = parser.parse_args(argv)
    config = cli.parse(train_main.PROGRAM, ["--config", args.config, "--workdir", "unused",
                                            *[f"--config.{kv}" for kv in args.set]]).config
    mesh = parallel.make_mesh(1, "batch")
    batch = jax.device_put(loop.get_batch(data.load_slices(config), config, 0),
                           parallel.leading_axis_sharding(mesh))
    runs, times = {}, {"float32": [], "bfloat16": []}
    for name in times:
        config.train.dtype = name
        step, state = step_for(config, mesh)
        start = time.perf_counter()
        state, _ = time_steps(step, state, batch, 1)  # compile + one step
        runs[name] = [step, state]
        print(f"{name}: compiled and ran one step in {time.perf_counter() - start:.1f} s",
              flush=True)
    for _ in range(args.rounds):
        for name, run in runs.items():
            run[1], seconds = time_steps(run[0], run[1], batch, args.steps)
            times[name].append(seconds)
    f32, bf16 = (statistics.median(times[n]) for n in ("float32", "bfloat16"))
    print(f"{args.config} {' '.join(args.set)}: batch {config.train.batch_size} of "
          f"{config.data.resolution}x{config.data.resolution}, {args.rounds} rounds x "
          f"{args.steps} steps, {jax.devices()[0].platform}")
    print(f"  float32  {f32 * 1e3:8.1f} ms/step   (rounds: "
          f"{', '.join(f'{t * 1e3:.0f}' for t in times['float32'])})")
    print(f"  bfloat16 {bf16 * 1e3:8.1f} ms/step   (rounds: "
          f"{', '.join(f'{t * 1e3:.0f}' for t in times['bfloat16'])})")
    print(f"  bfloat16 / float32 = {bf16 / f32:.2f}x")


if __name__ == "__main__":
    main()
