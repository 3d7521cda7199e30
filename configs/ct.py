"""Sparse-view CT: 20 parallel-beam views over 180 degrees, DDS with ISCS noise.

``python -m sample --config ct.py`` reconstructs the embedded phantom with the
shipped prior and compares iid with ISCS noise; ``ct.py:smoke`` runs in seconds.
"""

from configs import sample_base


def get_config(arg=None):
    """Args: arg: None or "smoke"."""
    config = sample_base.get_sample_config("sparse_view", num_views=20)
    if arg == "smoke":
        sample_base.shrink_for_smoke(config)
    elif arg not in (None, ""):
        raise ValueError(f"Unknown config argument {arg!r}; use ct.py or ct.py:smoke.")
    return config
