"""Shared config sections; task configs build on `get_base_config`."""

import ml_collections


def get_base_config() -> ml_collections.ConfigDict:
    """Sections every run has: ``parallel`` and ``checkpoint``."""
    config = ml_collections.ConfigDict()
    config.parallel = ml_collections.ConfigDict(dict(
        num_devices=0,        # 0: all devices
        # Multi-host: distributed=True calls jax.distributed.initialize(); empty/0/-1 settings
        # below are detected by JAX (TPU pods, SLURM). Setting coordinator_address implies it.
        distributed=False,
        coordinator_address="",  # "host:port" of process 0
        num_processes=0,
        process_id=-1,
    ))
    config.checkpoint = ml_collections.ConfigDict(dict(every=200, keep=3))
    return config
