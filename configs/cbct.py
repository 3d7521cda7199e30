"""Sparse-view cone-beam CT: 20 views over 360 degrees, DDS with ISCS noise (the published
CT setting: 30 steps, 10 CG iterations, sigma_max 5, warm start from FDK).

``python -m sample --config cbct.py`` reconstructs the embedded CT default with the shipped
prior; the geometry is the published magnification scaled to the volume's width
(``operator.preset="scaled"``); ``--config.operator.preset=paper`` uses the published
distances and 512 x 512 detector (for 256-wide volumes, on a GPU). ``cbct.py:smoke`` runs in
seconds.
"""

from configs import sample_base


def get_config(arg=None):
    """Args: arg: None, or comma-separated "smoke" / "phantom" (see `sample_base.ARGUMENTS`)."""
    config = sample_base.get_sample_config("sparse_view", num_views=20, kind="cone_beam")
    return sample_base.apply_arguments(config, arg, "cbct.py")
