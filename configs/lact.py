"""Limited-angle CT: 90 parallel-beam views over 90 degrees, DDS with ISCS noise.

``python -m sample --config lact.py`` (embedded chest CT slab, ``chest128`` prior);
``lact.py:smoke`` runs in seconds; ``lact.py:phantom`` uses the phantom and ``phantom64``.
"""

from iscs_jax.cli import apply_arguments

from . import sample_base

ARGUMENTS = sample_base.ARGUMENTS  # phantom, smoke


def get_config(arg=None):
    """Args: arg: None, or comma-separated names of `ARGUMENTS` ("smoke", "phantom")."""
    config = sample_base.get_sample_config("limited_angle", num_views=90, range_degrees=90.0)
    return apply_arguments(config, arg, ARGUMENTS)
