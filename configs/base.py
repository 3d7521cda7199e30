"""Shared config sections; task configs build on `get_base_config`."""

import ml_collections


def get_base_config() -> ml_collections.ConfigDict:
    """Sections every run has: ``parallel`` and ``checkpoint``."""
    config = ml_collections.ConfigDict()
    config.parallel = ml_collections.ConfigDict(dict(
        num_devices=0,        # 0: all local devices
        distributed=False,    # True: call jax.distributed.initialize() (multi-host)
    ))
    config.checkpoint = ml_collections.ConfigDict(dict(every=200, keep=3))
    return config
