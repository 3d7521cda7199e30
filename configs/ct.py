"""Sparse-view CT: 20 parallel-beam views over 180 degrees, DDS with ISCS noise.

``python -m sample --config ct.py`` reconstructs the embedded held-out chest CT slab with the
shipped ``chest128`` prior and compares iid with ISCS noise; ``ct.py:smoke`` runs in seconds;
``ct.py:phantom`` uses the procedural phantom and the ``phantom64`` prior instead.
"""

from iscs_jax.cli import apply_arguments

from . import sample_base

ARGUMENTS = sample_base.ARGUMENTS  # phantom, smoke


def get_config(arg=None):
    """Args: arg: None, or comma-separated names of `ARGUMENTS` ("smoke", "phantom")."""
    config = sample_base.get_sample_config("sparse_view", num_views=20)
    return apply_arguments(config, arg, ARGUMENTS)
