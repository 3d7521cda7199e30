"""Shared reconstruction config (``python -m sample``); `ct.py` and `lact.py` build on it.

Sections: ``data`` (input volume and preprocessing), ``prior`` (the 2D
denoiser), ``sde`` (noise schedule), ``sampler`` (which sampler, with one
section per sampler: ``sampler.dds``, ``sampler.ddnm``, ...), ``noise``
(noise control of a single run), ``operator`` (CT geometry and simulated
measurement noise), ``parallel``, plus ``compare``, ``num_samples`` and
``seed``. Every field can be overridden on the command line, e.g.
``--config.sampler.steps=50``.
"""

from __future__ import annotations

import ml_collections

from . import base


def data_config() -> ml_collections.ConfigDict:
    """Input volume: an embedded volume, a NIfTI file or a DICOM series folder (or file)."""
    data = ml_collections.ConfigDict()
    # A .nii/.nii.gz file, a DICOM series folder or one DICOM file; "" = `embedded`. A folder
    # of NIfTI files and DICOM series folders, or a glob, is a cohort (sample/cohort.py).
    data.path = ""
    # Embedded input when path is "": "chest_ct" (held-out real chest CT slices 69-132, int16
    # HU at 128x128, see README), "mri" (held-out coronal MNI152 T1 planes, see README) or
    # "phantom" (procedural, generated at the prior's size).
    data.embedded = "chest_ct"
    # The planes the 2D prior reconstructs, stacked along the remaining axis: "axial"
    # ([D, H, W] slices), "coronal" or "sagittal" (planes containing z).
    data.plane = "axial"
    data.phantom_seed = 1234  # held out: the phantom64 prior trains on phantom seeds < 1000.
    data.phantom_slices = 32  # D of the procedural phantom (in-plane size = prior resolution).
    # Files (the phantom is already in [0, 1]): "hu" maps the window [hu_min, hu_max] to [0, 1]
    # (clipped); "minmax" the volume's own range; "none" keeps the values.
    data.intensity = "hu"
    data.hu_min = -1000.0  # window of the shipped priors (and of the published CT priors).
    data.hu_max = 1600.0
    # With "hu": refuse a volume that cannot be HU (values within [0, 1], or no air below
    # -500 HU); False skips the check (e.g. a crop holding no air).
    data.check_intensity = True
    # A DICOM folder holding several series: the SeriesInstanceUID or SeriesDescription of
    # the one to read ("" = the folder must hold one image series).
    data.series = ""
    # A DICOM series with uneven slice spacing (a missing slice): True resamples it linearly to
    # uniform spacing (noted in the log); False (default) stops with an error naming the gap.
    data.dicom_resample = False
    data.slice_start = 0  # first plane used (of data.plane; after sorting).
    data.num_slices = 0  # planes used from slice_start; 0 = all.
    # Pad planes to a square and resample to the prior's resolution (else sizes must match).
    data.resize = True
    data.sinogram = ""  # a measured sinogram .npy [D, views, detectors] used instead of A(x).
    # The grid of the written volumes: "prior" (the planes at the prior's resolution, squared)
    # or "input" (resampled back onto the input's own voxels and affine, the slice range kept).
    data.output_grid = "prior"
    # Their values: "unit" (the window's [0, 1]) or "input" (the window undone: HU for CT).
    # metrics.json is computed on the prior's grid in [0, 1] either way.
    data.output_units = "unit"
    return data


def prior_config() -> ml_collections.ConfigDict:
    """The 2D prior: a shipped name, a checkpoint path, or "gaussian" (no learned prior)."""
    prior = ml_collections.ConfigDict()
    prior.name = "chest128"  # trained on slices 0-64 of the chest CT; "phantom64" for phantoms
    # A prior file instead of a name (wins over name when set): the stem of NAME.json +
    # NAME.msgpack (e.g. priors/aapm256 written by python -m iscs_jax.convert), or a score_sde
    # .pth checkpoint, converted on load with prior.kind=score_sde (needs PyTorch).
    prior.path = ""
    # "auto": the parameterisation the file records; "edm" or "score_sde": require it.
    prior.kind = "auto"
    # Only for a .pth path: its network config ("" = configs/models/ncsnpp_256.py).
    prior.model_config = ""
    # What the network computes in: "float32", or "bfloat16" (weights cast once at load; for
    # GPUs/TPUs, not faster on CPU). Sampler state, data consistency and metrics stay float32.
    prior.dtype = "float32"
    # Axis codes (of the NIfTI (i, j, k) axes, e.g. "LAS") of the prior's training volumes,
    # which inputs are reoriented to before their planes are cut; "" = the prior file's own
    # (an older file without it, or the Gaussian: inputs are used in their stored order).
    prior.orientation = ""
    # Only for name="gaussian" (a closed-form MMSE denoiser of a per-pixel Gaussian, for tests
    # and ablations): image size, prior mean and standard deviation.
    prior.resolution = 64
    prior.gaussian_mean = 0.3
    prior.gaussian_std = 0.3
    return prior


def sde_config() -> ml_collections.ConfigDict:
    """VE schedule; sigma_min <= 0 uses the prior's own sigma_min."""
    sde = ml_collections.ConfigDict()
    sde.sigma_min = 0.0
    sde.sigma_max = 5.0  # published CT setting (warm start from FBP, so no need for 378).
    return sde


def sampler_config() -> ml_collections.ConfigDict:
    """The sampler (``name``), the settings every sampler shares, and one section per sampler.

    ``sampler.<name>`` holds that sampler's own settings (the keyword arguments of
    ``iscs_jax.samplers.SAMPLERS[name]``); only the selected sampler's section is used.
    """
    sampler = ml_collections.ConfigDict()
    sampler.name = "dds"  # dds, ddnm, dps or admm_tv.
    sampler.steps = 30  # NFE of the published CT setting.
    sampler.renoise = "dds"  # re-noising rule: dds, ddpm, ddim, diffpir.
    # Stochasticity of the re-noising in [0, 1]; < 0 uses the rule's own default
    # (dds 0.85, ddim 1, ddpm 1, diffpir 0.5).
    sampler.eta = -1.0
    sampler.chunk_size = 8  # slices per denoiser call.
    sampler.final_denoise = False  # one last Tweedie step at sigma_min.
    # "baseline" (the operator's classical reconstruction: FBP, FDK) or "none" (pure noise).
    sampler.warm_start = "baseline"
    sampler.fbp_filter = "ramp"  # filter of the baseline (FBP / FDK).
    # DDS: CG on (A^T A + rho I) x = A^T y + rho x0_hat from x0_hat (the published CT setting
    # uses rho = 0).
    sampler.dds = ml_collections.ConfigDict(dict(cg_iters=10, rho=0.0))
    # DDNM: x0_hat + A^+ (y - A x0_hat); A^+ exact where the operator has pinv, else CG.
    sampler.ddnm = ml_collections.ConfigDict(dict(cg_iters=30))
    # DPS: x_next = renoise(x0_hat) - step_size / ||A||^2 * grad_x 1/2 ||y - A x0_hat(x)||^2
    # (||A||^2 from power_iters power iterations; step_size < 2 is a stable Landweber step
    # where the denoiser is about the identity). With a warm start DPS runs the shared
    # schedule from start_sigma down (SDEdit; re-spaced to sampler.steps steps), not from
    # sde.sigma_max: from sigma 5 its guidance is too weak to recover the data in 30 steps.
    sampler.dps = ml_collections.ConfigDict(dict(step_size=1.8, start_sigma=0.1, power_iters=20))
    # ADMM z-TV: 1/2 ||Ax - y||^2 + lam ||D_z x||_1 + rho/2 ||x - x0_hat||^2, ADMM penalty mu.
    sampler.admm_tv = ml_collections.ConfigDict(dict(lam=0.5, rho=0.0, mu=5.0, admm_iters=2,
                                                     cg_iters=5))
    return sampler


def noise_config() -> ml_collections.ConfigDict:
    """Noise control of a single run (used when ``compare`` is empty)."""
    noise = ml_collections.ConfigDict()
    noise.kind = "iscs"  # iid, iscs or shared.
    return noise


def operator_config(geometry: str, num_views: int, range_degrees: float,
                    kind: str = "parallel_beam") -> ml_collections.ConfigDict:
    """CT geometry and simulated measurement noise.

    ``kind``: "parallel_beam" (views over 180 degrees), "fan_beam" or "cone_beam"
    (views over 360 degrees; geometry from ``preset``: "scaled", the published
    magnification for the volume's size, or "paper", the published distances and
    512 x 512 detector; see `iscs_jax.operators.scan.divergent_geometry`).

    ``measurement_noise``: "none"; "gaussian" (additive, std ``noise_std`` in
    sinogram units); or "poisson": photon counts
    ``y_noisy = -log(Poisson(I0 exp(-s y)) / I0) / s`` with ``I0 = photons``
    and ``s = attenuation / max(y)``, i.e. the most attenuating ray of the
    clean sinogram keeps ``exp(-attenuation)`` of its photons (counts of 0 are
    clamped to 0.5 before the log).
    """
    operator = ml_collections.ConfigDict()
    operator.kind = kind  # parallel_beam, fan_beam or cone_beam.
    operator.preset = "scaled"  # fan_beam / cone_beam geometry: "scaled" or "paper".
    # "sparse_view" (num_views over 180 deg, 360 for fan/cone beams) or "limited_angle"
    # (num_views over [0, range_degrees)).
    operator.geometry = geometry
    operator.num_views = num_views
    operator.range_degrees = float(range_degrees)  # only for limited_angle.
    operator.num_detectors = 0  # 0 = enough to cover the image diagonal.
    # fan_beam / cone_beam: views projected together; cone-beam memory grows with it
    # (O(view_chunk * cols * (rows + D)) per A/AT pass; benchmarks/memory.py).
    operator.view_chunk = 8
    operator.measurement_noise = "none"
    operator.noise_std = 0.0
    operator.photons = 1e5
    operator.attenuation = 4.0
    return operator


def mri_operator_config(kind: str) -> ml_collections.ConfigDict:
    """MRI operators: ``"zsr"`` (z super-resolution) or ``"cartesian_mri"`` (CS-MRI).

    ``measurement_noise`` "gaussian" adds ``noise_std`` Gaussian noise (complex circular
    for the k-space of CS-MRI, ``E|n|^2 = noise_std^2``) in the units of the [0, 1] images.
    """
    operator = ml_collections.ConfigDict()
    operator.kind = kind
    operator.factor = 4  # zsr: thin slices per measured thick slice.
    operator.acceleration = 4.0  # cartesian_mri: R, a 1/R share of phase-encoding lines kept.
    operator.center_fraction = 0.08  # cartesian_mri: fully sampled centre of k-space.
    operator.mask_seed = 0  # cartesian_mri: seed of the random outer lines.
    operator.measurement_noise = "none"
    operator.noise_std = 0.0
    return operator


def get_mri_config(operator_kind: str):
    """A reconstruction config on the embedded MRI slab with the ``mri128`` prior."""
    config = get_sample_config("sparse_view", num_views=1)
    config.operator = mri_operator_config(operator_kind)
    config.data.embedded = "mri"
    config.data.plane = "coronal"  # planes containing z, stacked along y
    config.data.intensity = "minmax"  # for files given with data.path
    # The 16 central planes of the embedded slab (template planes 108..123), so a run takes
    # minutes on 2 CPU cores; --config.data.slice_start=0 --config.data.num_slices=0 takes
    # every plane (of a file given with data.path too).
    config.data.slice_start = 16
    config.data.num_slices = 16
    config.prior.name = "mri128"
    config.sde.sigma_max = 5.0
    config.sampler.warm_start = "baseline"  # linear (ZSR) / zero-filled (CS) reconstruction
    return config


def get_sample_config(geometry: str, num_views: int, range_degrees: float = 180.0,
                      kind: str = "parallel_beam"):
    """The full reconstruction config for one CT geometry."""
    config = ml_collections.ConfigDict()
    config.data = data_config()
    config.prior = prior_config()
    config.sde = sde_config()
    config.sampler = sampler_config()
    config.noise = noise_config()
    config.operator = operator_config(geometry, num_views, range_degrees, kind)
    config.parallel = base.get_base_config().parallel  # num_devices (0 = all), multi-host
    # every > 0: checkpoint each reconstruction's iterate every that many steps, so that
    # `python -m sample ... --resume` continues a killed run (0: no checkpoints).
    config.checkpoint = ml_collections.ConfigDict(dict(every=0))
    config.compare = "iid,iscs"  # noise controls run with the same key; "" = noise.kind only.
    config.num_samples = 1  # K > 1: K keys per control -> mean and voxel-wise std written.
    config.seed = 0
    # Cohort evaluation (sample/cohort.py): "0,1,2" runs every volume once per seed (each as
    # `seed`) and writes summary.json with paired statistics; "" = `seed` alone.
    config.seeds = ""
    return config


def shrink_for_smoke(config):
    """``:smoke``: a few slices and steps so a run takes seconds (the prior is kept)."""
    config.data.phantom_slices = 4
    config.data.num_slices = 4 if config.data.num_slices == 0 else min(config.data.num_slices, 4)
    config.sampler.steps = 3
    config.sampler.dds.cg_iters = 3
    config.sampler.ddnm.cg_iters = 3
    config.sampler.admm_tv.cg_iters = 2
    config.sampler.chunk_size = 2  # two denoiser calls per step (exercises the chunking)
    return config


def use_phantom(config):
    """``:phantom``: the procedural phantom with the ``phantom64`` prior it was trained for."""
    config.data.path = ""
    config.data.embedded = "phantom"
    config.data.slice_start, config.data.num_slices = 0, 0  # every phantom slice
    config.prior.name = "phantom64"
    return config


#: Config arguments of the CT configs (``ct.py:phantom,smoke``), applied in this order by
#: `iscs_jax.cli.apply_arguments`.
ARGUMENTS = {"phantom": use_phantom, "smoke": shrink_for_smoke}
#: Config arguments of the MRI configs (``mri_zsr.py:smoke``).
MRI_ARGUMENTS = {"smoke": shrink_for_smoke}
