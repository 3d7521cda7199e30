"""Training throughput of a training config: ``python benchmarks/train.py [--config configs/train_chest128.py] [--config_arg smoke]``.

Prints compile time, steps/s and samples/s over a few timed steps on random data.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from iscs_jax import cli, parallel  # noqa: E402
from train import loop  # noqa: E402


def load_config(path, arg=None):
    """``get_config(arg)`` of a training config file (a path or a name in ``configs/``)."""
    return cli.load_config(f"{path}:{arg}" if arg else str(path), "configs")[0]


def training_step(config, num_devices: int = 0):
    """(jitted step, state, random batch) of ``config``, data-parallel over ``num_devices``
    devices (0: all)."""
    mesh = parallel.make_mesh(num_devices, "batch")
    tx = loop.make_optimizer(config)
    graphdef, state = loop.create_train_state(config, tx)
    state = loop.place_state(state, mesh)
    step = loop.compile_train_step(graphdef, tx, config, mesh)
    b, r = config.train.batch_size, config.data.resolution
    batch = jax.device_put(np.random.default_rng(0).random((b, r, r), np.float32),
                           parallel.leading_axis_sharding(mesh))
    return step, state, batch


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/train_phantom.py", help="training config file")
    parser.add_argument("--config_arg", default=None, help="e.g. 'smoke'")
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    config = load_config(args.config, args.config_arg)
    step, state, batch = training_step(config, config.parallel.num_devices)
    b, r = config.train.batch_size, config.data.resolution
    t0 = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    dt = (time.perf_counter() - t0) / args.steps
    n = sum(x.size for x in jax.tree.leaves(state["params"]))
    devices = len(batch.sharding.device_set)
    print(f"params={n} batch={b} res={r} devices={devices} compile+first={compile_s:.1f}s "
          f"step={dt:.3f}s steps/s={1 / dt:.2f} samples/s={b / dt:.1f}")


if __name__ == "__main__":
    main()
