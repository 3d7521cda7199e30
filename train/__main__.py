"""Train an EDM prior: ``python -m train --config configs/train_phantom.py --workdir DIR``.

Re-running the same command resumes from the newest checkpoint in ``DIR``.
"""

import sys

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

from iscs_jax import parallel
from iscs_jax.checkpoint import CheckpointError
from train import loop

_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (checkpoints, metrics.jsonl).",
                            required=True)
_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file (file.py[:smoke]).",
                                          lock_config=True)


def main(argv):
    del argv
    absl_logging.set_verbosity(absl_logging.WARNING)  # Orbax logs every save at INFO
    config = _CONFIG.value
    try:
        p = config.parallel
        if p.distributed or p.coordinator_address:
            parallel.initialize_distributed(p.coordinator_address, p.num_processes, p.process_id)
        loop.train(config, _WORKDIR.value)
    except (CheckpointError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main)
