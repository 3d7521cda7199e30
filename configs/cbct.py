"""Sparse-view cone-beam CT: 20 views over 360 degrees, DDS with ISCS noise (the published
CT setting: 30 steps, 10 CG iterations, sigma_max 5, warm start from FDK).

``python -m sample --config cbct.py`` reconstructs the embedded CT default with the shipped
prior; the geometry is the published magnification scaled to the volume's width
(``operator.preset="scaled"``); ``--config.operator.preset=paper`` uses the published
distances and 512 x 512 detector (for 256-wide volumes, on a GPU). ``cbct.py:smoke`` runs in
seconds.
"""

from iscs_jax.cli import apply_arguments

from . import sample_base

ARGUMENTS = sample_base.ARGUMENTS  # phantom, smoke


def get_config(arg=None):
    """Args: arg: None, or comma-separated names of `ARGUMENTS` ("smoke", "phantom")."""
    config = sample_base.get_sample_config("sparse_view", num_views=20, kind="cone_beam")
    # The central 16 slices of the embedded 64-slice chest slab (cone-beam CG on 2 CPU cores:
    # about 5 minutes);
    # --config.data.num_slices=0 reconstructs all of it.
    config.data.slice_start, config.data.num_slices = 24, 16
    return apply_arguments(config, arg, ARGUMENTS)
