"""Sparse-view cone-beam CT: 20 views over 360 degrees, DDS with ISCS noise (the published
CT setting: 30 steps, 10 CG iterations, sigma_max 5, warm start from FDK).

``python -m sample --config cbct.py`` reconstructs the embedded CT default with the shipped
prior; the geometry is the published magnification scaled to the volume's width
(``operator.preset="scaled"``); ``--config.operator.preset=paper`` uses the published
distances and 512 x 512 detector (for 256-wide volumes, on a GPU). ``cbct.py:smoke`` runs in
seconds. ``cbct.py:paper`` is the published reconstruction size (see `use_paper`).
"""

from iscs_jax.cli import apply_arguments

from . import sample_base

#: ``paper``'s denoiser chunk: the largest of 8, 16, 32, 64 whose DDS step fits an 80 GB
#: device with 10% left for the accelerator's workspace, at 20 and 360 views, on one device
#: (``python benchmarks/memory.py``; per-device figures in the README).
PAPER_CHUNK = 64


def use_paper(config):
    """``:paper``: 256 axial slices of 256x256 in the published geometry (source 700 mm and
    detector 500 mm from the axis, 512 x 512 detector at 2 mm), 20 views over 360 degrees
    (``--config.operator.num_views=360`` for the full scan), DDS in chunks of `PAPER_CHUNK`.

    The volume and the 256x256 NCSN++ prior are the user's:
    ``--config.data.path=VOLUME.nii.gz`` (256 axial slices or more) and
    ``--config.prior.path=priors/aapm256`` (``python -m iscs_jax.convert``) or a score_sde
    ``.pth`` with ``--config.prior.kind=score_sde``.
    """
    config.data.slice_start, config.data.num_slices = 0, 256
    config.prior.name = ""  # no shipped prior is 256x256: prior.path must be set
    config.operator.preset = "paper"
    config.sampler.chunk_size = PAPER_CHUNK


ARGUMENTS = {"paper": use_paper, **sample_base.ARGUMENTS}  # paper, phantom, smoke


def get_config(arg=None):
    """Args: arg: None, or comma-separated names of `ARGUMENTS` ("paper", "phantom",
    "smoke")."""
    config = sample_base.get_sample_config("sparse_view", num_views=20, kind="cone_beam")
    # The central 16 slices of the embedded 64-slice chest slab (cone-beam CG on 2 CPU cores:
    # about 5 minutes);
    # --config.data.num_slices=0 reconstructs all of it.
    config.data.slice_start, config.data.num_slices = 24, 16
    return apply_arguments(config, arg, ARGUMENTS)
