"""One tiny folder-source training run in its own process, for tests/test_train_folder.py.

    python tests/train_folder_check.py VOLUMES WORKDIR [--kill_at STEP]
        [--coordinator HOST:PORT --num_processes P --process_id I] [--compilation_cache DIR]

Trains `tiny_config` (configs/train_folder.py:smoke at 16x16) on the folder ``VOLUMES``,
then writes the final parameters to ``WORKDIR/params.npz`` (process 0) and prints one JSON
line: this process's peak resident memory (VmHWM), its process index and its volume reads.
``--kill_at STEP`` SIGKILLs the process just before that step runs (after the checkpoints
before it), as a crash would. With ``--coordinator`` it is one process of a
``jax.distributed`` run on localhost. ``--compilation_cache DIR`` shares compiled programs
(every one, however quick) between the test's runs: most of a tiny run is compilation.
"""

import argparse
import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from configs.train_folder import get_config  # noqa: E402


def tiny_config(path: str):
    """The smoke folder config shrunk to 16x16 images and a 4-wide U-Net (20 steps)."""
    config = get_config("smoke")
    config.data.update(path=path, resolution=16, val_fraction=0.25, val_planes=2)
    config.model.update(base_width=4, channel_mults=(1, 2), attention_resolutions=(8,),
                        norm_groups=2, embedding_dim=8)
    config.train.update(batch_size=4, num_steps=20, warmup_steps=2, log_every=5,
                        eval_every=10, sample_every=20)
    config.checkpoint.update(every=10, keep=3)
    return config


def peak_rss_mb() -> float:
    """This process's peak resident memory: ``VmHWM`` (its own address space's high-water
    mark; ``ru_maxrss`` would start from the parent's peak, which the fork copied)."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("volumes")
    parser.add_argument("workdir")
    parser.add_argument("--kill_at", type=int, default=-1)
    parser.add_argument("--coordinator", default="")
    parser.add_argument("--num_processes", type=int, default=1)
    parser.add_argument("--process_id", type=int, default=0)
    parser.add_argument("--compilation_cache", default="off")
    args = parser.parse_args()
    import jax
    import numpy as np

    from iscs_jax import compilation_cache, parallel
    from train import loop

    if compilation_cache.enable(args.compilation_cache):
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if args.coordinator:
        parallel.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    if args.kill_at >= 0:
        compile_step = loop.compile_train_step

        def killing(*a, **k):
            step_fn = compile_step(*a, **k)

            def step(state, batch):
                if int(state["step"]) == args.kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
                return step_fn(state, batch)
            return step
        loop.compile_train_step = killing
    config = tiny_config(args.volumes)
    _, state = loop.train(config, args.workdir, progress=False)
    leaves = [np.asarray(x) for x in jax.tree.leaves(state["params"])]
    if jax.process_index() == 0:
        np.savez(os.path.join(args.workdir, "params.npz"), *leaves)
    print(json.dumps({"maxrss_mb": peak_rss_mb(),
                      "process": jax.process_index(), "devices": jax.device_count()}))


if __name__ == "__main__":
    main()
