"""Limited-angle CT: 90 parallel-beam views over 90 degrees, DDS with ISCS noise.

``python -m sample --config lact.py``; ``lact.py:smoke`` runs in seconds.
"""

from configs import sample_base


def get_config(arg=None):
    """Args: arg: None or "smoke"."""
    config = sample_base.get_sample_config("limited_angle", num_views=90, range_degrees=90.0)
    if arg == "smoke":
        sample_base.shrink_for_smoke(config)
    elif arg not in (None, ""):
        raise ValueError(f"Unknown config argument {arg!r}; use lact.py or lact.py:smoke.")
    return config
