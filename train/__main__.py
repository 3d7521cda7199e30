"""Train an EDM prior: ``python -m train --config configs/train_phantom.py[:smoke]
[--config.KEY=VALUE ...] --workdir DIR [--verbose]`` (installed: ``iscs-train``).

Re-running the same command resumes from the newest checkpoint in ``DIR``. Config and
input problems print one paragraph and exit with status 2 before anything is written
(`iscs_jax.cli.main`).
"""

from __future__ import annotations

import sys

from iscs_jax import cli

PROGRAM = cli.Program(
    name="python -m train",
    summary=("Trains an EDM prior; re-running the same command resumes from the newest "
             "checkpoint in --workdir."),
    config=("a training config: a shipped name (train_phantom.py, train_chest128.py, "
            "train_mri128.py, train_folder.py: your own scans, --config.data.path=DIR) or a "
            "path; ':smoke' trains a tiny model in seconds, "
            "--config.KEY=VALUE sets one field (--config.train.num_steps=500)."),
    configs=cli.sibling(__package__, "configs"),
    flags=(cli.Flag("workdir", "output folder (checkpoints, metrics.jsonl, tensorboard/).",
                    metavar="DIR"),))


def _train(args) -> None:
    from iscs_jax import parallel

    from . import loop

    args.config.lock()  # the trainer reads fields; it never adds one
    p = args.config.parallel
    if p.distributed or p.coordinator_address:
        parallel.initialize_distributed(p.coordinator_address, p.num_processes, p.process_id)
    loop.train(args.config, args.workdir)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    from iscs_jax.checkpoint import CheckpointError

    return cli.main(PROGRAM, _train, argv, errors=(CheckpointError, ValueError, RuntimeError))


if __name__ == "__main__":
    sys.exit(main())
