"""Limited-angle cone-beam CT: 90 views at 1-degree steps over [0, 90) degrees, DDS with ISCS
noise, warm start from FDK (limited-angle weights: each measured line counted once).

``python -m sample --config cbct_lact.py``; ``cbct_lact.py:smoke`` runs in seconds;
``:phantom`` uses the procedural phantom and ``phantom64``;
``--config.operator.preset=paper`` for the published geometry.
"""

from iscs_jax.cli import apply_arguments

from . import sample_base

ARGUMENTS = sample_base.ARGUMENTS  # phantom, smoke


def get_config(arg=None):
    """Args: arg: None, or comma-separated names of `ARGUMENTS` ("smoke", "phantom")."""
    config = sample_base.get_sample_config("limited_angle", num_views=90, range_degrees=90.0,
                                           kind="cone_beam")
    # The central 6 slices of the embedded 64-slice chest slab (90 cone-beam views on 2 CPU cores);
    # --config.data.num_slices=0 reconstructs all of it.
    config.data.slice_start, config.data.num_slices = 29, 6
    return apply_arguments(config, arg, ARGUMENTS)
