"""Inputs of a run: the reference volume, its affine, the operator and the measurement.

The volume comes from an embedded demo (the CT phantom or the MRI slab), a NIfTI
file or a DICOM series (`load_volume`); `preprocess` re-stacks it into the planes
the prior reconstructs (``data.plane``), applies the plane range, and prepares the
planes exactly as the trainer does (`iscs_jax.data.prepare.prepare_planes`: square
padding, resize to the prior's resolution, intensity window to [0, 1]), keeping the
affine of the result's grid in the input's orientation. The measurement is
simulated with the configured operator and noise (`simulate_measurement`), or read
from a ``.npy`` sinogram.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from iscs_jax import io, operators
from iscs_jax.data import mri, packaged, phantom, prepare
from .errors import UserError, as_user_error

GEOMETRIES = ("sparse_view", "limited_angle")
INTENSITIES = ("hu", "minmax", "none")
#: HU below this is padding outside the scan circle and becomes air (CT windows only).
CT_AIR_HU = -1024.0
MEASUREMENT_NOISES = ("none", "gaussian", "poisson")
#: Photon counts of 0 are raised to this before the log of the Poisson model.
MIN_COUNT = 0.5


@dataclasses.dataclass
class Inputs:
    """What a reconstruction needs.

    Attributes:
      reference: ground truth planes ``[N, R, R]`` in [0, 1] (`prepare.to_planes` of the
        volume), or None (measured sinogram only).
      affine: ``[4, 4]`` NIfTI affine of ``prepare.from_planes(reference, plane)``, the
        result's grid in the input's orientation.
      operator: the operator of ``operator.kind`` (`operators.protocol`) acting on the planes.
      measurement: ``A(reference)`` (+ noise): ``[N, views, detectors]`` for parallel beams,
        ``[views, rows, cols]`` for the cone beam, thick slices for ZSR, complex k-space
        lines for CS-MRI; or a measured sinogram.
      source: a short description of where the volume came from.
      plane: the planes reconstructed (``"axial"``, ``"coronal"``, ``"sagittal"``).
    """
    reference: np.ndarray | None
    affine: np.ndarray
    operator: object
    measurement: np.ndarray
    source: str
    plane: str = "axial"


#: Embedded default volumes (``data.path`` empty): name -> file inside this package, or
#: ``None`` for the procedural phantom (already in [0, 1]).
EMBEDDED = {
    "chest_ct": "pkg:iscs_jax/data/assets/chest_ct_69-132.nii.gz",
    "mri": "pkg:iscs_jax/data/assets/mni152_t1_coronal_slab.nii.gz",  # see iscs_jax.data.mri
    "phantom": None,
}


def uses_phantom(data_config) -> bool:
    """Whether the input is the procedural phantom (no ``data.path``, ``embedded="phantom"``)."""
    return not data_config.path and data_config.embedded == "phantom"


def load_volume(data_config, resolution: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The raw volume ``[D, H, W]``, its affine and a description.

    From ``data.path`` when set, else the embedded volume ``data.embedded`` (`EMBEDDED`).
    """
    path, source = data_config.path, str(data_config.path)
    if not path:
        if data_config.embedded not in EMBEDDED:
            raise UserError(f"data.embedded={data_config.embedded!r} is not one of "
                            f"{sorted(EMBEDDED)}; or give a file with --config.data.path.")
        if uses_phantom(data_config):
            shape = (int(data_config.phantom_slices), resolution, resolution)
            if shape[0] < 1:
                raise UserError(f"data.phantom_slices must be >= 1, got {shape[0]}.")
            volume = phantom.phantom_volume(int(data_config.phantom_seed), shape)
            return volume, np.eye(4), f"phantom (seed {data_config.phantom_seed})"
        path = packaged.resolve(EMBEDDED[data_config.embedded])
        source = f"embedded {data_config.embedded}"
    with as_user_error():
        volume, affine = io.read_volume(path)
    return volume, affine, source


def select_slices(volume, affine, start: int, count: int):
    """``volume[start:start + count]`` (count 0: to the end) and its affine."""
    depth = volume.shape[0]
    stop = depth if count == 0 else start + count
    if not (0 <= start < depth and count >= 0 and stop <= depth):
        raise UserError(f"The slice range data.slice_start={start}, data.num_slices={count} does "
                        f"not fit a volume of {depth} slices; use 0 <= slice_start < {depth} and "
                        f"slice_start + num_slices <= {depth} (num_slices=0 means to the end).")
    return volume[start:stop], io.cropped_affine(affine, start)


def select_planes(volume, affine, plane: str, start: int, count: int):
    """The planes ``start .. start + count - 1`` of ``plane`` (count 0: to the end).

    Returns:
      the cropped ``[D, H, W]`` volume (input orientation) and its affine.
    """
    stack_axis = prepare.PLANES[plane][0]
    cropped, _ = select_slices(np.moveaxis(volume, stack_axis, 0), np.eye(4), start, count)
    return np.moveaxis(cropped, 0, stack_axis), io.cropped_affine(affine, start, stack_axis)


def window_settings(data_config) -> tuple[str, tuple[float, float], float | None]:
    """``(window, window_range, floor)`` for `prepare.prepare_planes` from ``data``.

    The procedural phantom is already in [0, 1] ("none"); the embedded MRI slab uses the
    template's stored range (the ``mri128`` prior's window); files (and the embedded chest
    CT) use ``data.intensity``:
    "hu" (the ``[hu_min, hu_max]`` window over the CT air floor), "minmax" or "none".
    """
    intensity = data_config.intensity
    if intensity not in INTENSITIES:
        raise UserError(f"data.intensity={intensity!r} is not one of {INTENSITIES}.")
    if uses_phantom(data_config):
        return "none", (0.0, 1.0), None
    if not data_config.path and data_config.embedded == "mri":
        return "range", mri.INTENSITY_RANGE, None
    if intensity == "hu":
        low, high = float(data_config.hu_min), float(data_config.hu_max)
        if not high > low:
            raise UserError(f"Need data.hu_max > data.hu_min, got {low} and {high}.")
        return "range", (low, high), CT_AIR_HU
    return intensity, (0.0, 1.0), None


def plane_of(data_config) -> str:
    """``data.plane`` (default "axial"), checked."""
    plane = data_config.get("plane", "axial")
    if plane not in prepare.PLANES:
        raise UserError(f"data.plane={plane!r} is not one of {sorted(prepare.PLANES)}.")
    return plane


def preprocess(volume, affine, data_config, resolution: int):
    """Plane range, then `prepare.prepare_planes`; returns ``(planes [N, R, R], affine)``.

    The affine is that of ``prepare.from_planes(planes, plane)`` (input orientation).
    """
    plane = plane_of(data_config)
    volume, affine = select_planes(volume, affine, plane, int(data_config.slice_start),
                                   int(data_config.num_slices))
    window, window_range, floor = window_settings(data_config)
    in_plane = prepare.to_planes(volume, plane).shape[1:]
    if not data_config.resize and max(in_plane) != resolution:
        raise UserError(f"The input planes are {in_plane[0]}x{in_plane[1]} but the prior "
                        f"works on {resolution}x{resolution} and data.resize=False; set "
                        "--config.data.resize=True or use a prior trained at that resolution.")
    planes = prepare.prepare_planes(volume, plane=plane, resolution=resolution, window=window,
                                    window_range=window_range, floor=floor)
    with as_user_error():
        io.validate_volume(planes, name=f"The volume after the intensity window "
                                        f"({data_config.intensity})")
    grid_affine, _ = prepare.plane_grid_affine(affine, volume.shape, plane, resolution)
    return planes, grid_affine


def view_angles(operator_config, full_turn: float) -> np.ndarray:
    """The configured angles: ``num_views`` evenly over [0, full_turn) degrees (sparse view)
    or over [0, range_degrees) (limited angle); radians."""
    geometry, views = operator_config.geometry, operator_config.num_views
    if geometry not in GEOMETRIES:
        raise UserError(f"operator.geometry={geometry!r} is not one of {GEOMETRIES}.")
    if views <= 0:
        raise UserError(f"operator.num_views={views} but at least one view is needed; set "
                        "--config.operator.num_views to a positive number (e.g. 20).")
    if geometry == "sparse_view":
        return (operators.sparse_view_angles(views) if full_turn == 180.0
                else operators.full_orbit_angles(views))
    span = operator_config.range_degrees
    if not 0.0 < span <= full_turn:
        raise UserError(f"operator.range_degrees={span} is outside (0, {full_turn:g}]: "
                        f"{operator_config.kind} views repeat after {full_turn:g} degrees. "
                        "Set --config.operator.range_degrees in that range, e.g. 90.")
    return np.deg2rad(np.arange(views) * (float(span) / views))


def _parallel_beam(operator_config, volume_shape, filter_name):
    detectors = operator_config.num_detectors
    if detectors < 0:
        raise UserError(f"operator.num_detectors={detectors}; use 0 (automatic) or a "
                        "positive count.")
    return operators.ParallelBeam(volume_shape[1:], view_angles(operator_config, 180.0),
                                  detectors or None, filter=filter_name)


#: Published cone-beam geometry (source 700 mm and detector 500 mm from the axis, 512 x 512
#: detector at 2 mm, unit voxels; for volumes 256 voxels across).
PAPER_GEOMETRY = dict(source_origin=700.0, origin_detector=500.0, rows=512, cols=512,
                      spacing=2.0, width=256)
PRESETS = ("scaled", "paper")


def divergent_geometry(operator_config, volume_shape) -> dict:
    """Source/detector distances and detector size of the configured preset.

    "paper": `PAPER_GEOMETRY` as published. "scaled": the same magnification and cone
    angle for a volume ``W`` voxels across: distances times ``W / 256``, ``2 W`` columns at
    2 mm, and just enough 2 mm rows (even) to see every slice from every view.
    """
    preset = operator_config.preset
    if preset not in PRESETS:
        raise UserError(f"operator.preset={preset!r} is not one of {PRESETS}.")
    paper = PAPER_GEOMETRY
    if preset == "paper":
        return dict(source_origin=paper["source_origin"], origin_detector=paper["origin_detector"],
                    rows=paper["rows"], cols=paper["cols"], spacing=paper["spacing"])
    depth, width = volume_shape[0], max(volume_shape[1:])
    scale = width / paper["width"]
    source, detector = paper["source_origin"] * scale, paper["origin_detector"] * scale
    radius = 0.5 * float(np.hypot(*volume_shape[1:]))
    magnification = (source + detector) / (source - radius)  # at the nearest voxel
    rows = 2 * int(np.ceil(depth * magnification / paper["spacing"] / 2)) + 2
    return dict(source_origin=source, origin_detector=detector, rows=rows, cols=2 * width,
                spacing=paper["spacing"])


def _cone_beam(operator_config, volume_shape, filter_name):
    g = divergent_geometry(operator_config, volume_shape)
    with as_user_error():
        return operators.ConeBeam(volume_shape, view_angles(operator_config, 360.0),
                                  source_origin=g["source_origin"],
                                  origin_detector=g["origin_detector"],
                                  detector_shape=(g["rows"], g["cols"]),
                                  detector_spacing=(g["spacing"], g["spacing"]),
                                  filter=filter_name)


def _fan_beam(operator_config, volume_shape, filter_name):
    g = divergent_geometry(operator_config, volume_shape)
    with as_user_error():
        return operators.FanBeam(volume_shape[1:], view_angles(operator_config, 360.0),
                                 source_origin=g["source_origin"],
                                 origin_detector=g["origin_detector"], num_detectors=g["cols"],
                                 detector_spacing=g["spacing"], filter=filter_name)


def _zsr(operator_config, volume_shape, filter_name, plane="axial"):
    """`operators.ZSuperResolution` along z of the planes (in-plane unless axial)."""
    del filter_name
    factor = int(operator_config.factor)
    if factor < 1:
        raise UserError(f"operator.factor={factor}; set --config.operator.factor to the "
                        "slice-thickness ratio, an integer >= 1 (e.g. 4).")
    z_axis = prepare.z_axis(plane)
    return operators.ZSuperResolution(factor, volume_shape[1:], z_axis,
                                      depth=volume_shape[0] if z_axis == 0 else None)


def _cartesian_mri(operator_config, volume_shape, filter_name, plane="axial"):
    """`operators.CartesianMRI` with the configured acceleration, centre and mask seed."""
    del filter_name, plane
    try:
        return operators.CartesianMRI(volume_shape[1:], float(operator_config.acceleration),
                                      float(operator_config.center_fraction),
                                      int(operator_config.mask_seed))
    except ValueError as err:
        raise UserError(str(err)) from err


#: ``operator.kind`` -> builder ``(operator_config, volume_shape, filter) -> operator``; the
#: MRI builders also take the ``plane`` (ZSR acts along z, wherever the planes put it).
OPERATOR_BUILDERS = {
    "parallel_beam": _parallel_beam,
    "fan_beam": _fan_beam,
    "cone_beam": _cone_beam,
    "zsr": _zsr,
    "cartesian_mri": _cartesian_mri,
}
PLANE_AWARE = ("zsr", "cartesian_mri")


def make_operator(operator_config, volume_shape, filter_name: str = "ramp",
                  plane: str = "axial"):
    """The operator of ``operator.kind`` for a ``[D, R, R]`` volume (see `OPERATOR_BUILDERS`).

    Args:
      operator_config: the ``operator`` config section.
      volume_shape: ``(D, R, R)`` of the reconstructed volume (stack of planes).
      filter_name: the baseline's (FBP / FDK) filter.
      plane: the planes reconstructed (``data.plane``); CT kinds need ``"axial"``.
    """
    kind = operator_config.kind
    if kind not in OPERATOR_BUILDERS:
        raise UserError(f"operator.kind={kind!r} is not one of {sorted(OPERATOR_BUILDERS)}.")
    volume_shape = tuple(int(s) for s in volume_shape)
    if kind in PLANE_AWARE:
        return OPERATOR_BUILDERS[kind](operator_config, volume_shape, filter_name, plane)
    if plane != "axial":
        raise UserError(f"operator.kind={kind!r} measures axial slices; data.plane={plane!r} "
                        "is for the MRI kinds (zsr, cartesian_mri). Use --config.data.plane="
                        "axial.")
    return OPERATOR_BUILDERS[kind](operator_config, volume_shape, filter_name)


def add_measurement_noise(key: jax.Array, y: jax.Array, operator_config) -> jax.Array:
    """Simulated measurement noise on clean measurements ``y`` (see `configs.sample_base`).

    "gaussian": ``y + noise_std * N(0, 1)`` (complex ``y``: circular complex Gaussian
    noise with ``E|n|^2 = noise_std^2``). "poisson": with
    ``s = attenuation / max(y)``, ``counts ~ Poisson(photons exp(-s y))`` and
    ``y_noisy = -log(max(counts, 0.5) / photons) / s``.
    """
    kind = operator_config.measurement_noise
    if kind not in MEASUREMENT_NOISES:
        raise UserError(f"operator.measurement_noise={kind!r} is not one of {MEASUREMENT_NOISES}.")
    if kind == "gaussian":
        if operator_config.noise_std < 0:
            raise UserError(f"operator.noise_std must be >= 0, got {operator_config.noise_std}.")
        if jnp.iscomplexobj(y):  # circular complex Gaussian, E|n|^2 = noise_std^2
            parts = jax.random.normal(key, (2,) + y.shape) * (operator_config.noise_std
                                                              / np.sqrt(2.0))
            return y + (parts[0] + 1j * parts[1]).astype(y.dtype)
        return y + operator_config.noise_std * jax.random.normal(key, y.shape)
    if kind == "poisson" and jnp.iscomplexobj(y):
        raise UserError("operator.measurement_noise='poisson' models CT photon counts; use "
                        "'gaussian' (complex Gaussian) for MRI.")
    if kind == "poisson":
        photons, attenuation = operator_config.photons, operator_config.attenuation
        if photons <= 0 or attenuation <= 0:
            raise UserError(f"operator.photons and operator.attenuation must be > 0, got "
                            f"{photons} and {attenuation}.")
        scale = attenuation / jnp.maximum(jnp.max(y), 1e-12)
        counts = jax.random.poisson(key, photons * jnp.exp(-scale * y)).astype(jnp.float32)
        return -jnp.log(jnp.maximum(counts, MIN_COUNT) / photons) / scale
    return y


def simulate_measurement(key, operator, volume, operator_config) -> np.ndarray:
    """``A(volume)`` plus the configured noise (float32, or complex64 for MRI)."""
    y = add_measurement_noise(key, operator.A(jnp.asarray(volume)), operator_config)
    return np.asarray(y, np.complex64 if jnp.iscomplexobj(y) else np.float32)


def prepare_inputs(key, config, resolution: int) -> Inputs:
    """Loads and preprocesses the volume, builds the operator, simulates or reads ``y``."""
    data = config.data
    plane = plane_of(data)
    reference, affine, source = None, np.eye(4), "measured sinogram"
    if data.path or not data.sinogram:
        volume, affine, source = load_volume(data, resolution)
        reference, affine = preprocess(volume, affine, data, resolution)
    if not data.sinogram:
        operator = make_operator(config.operator, reference.shape, config.sampler.fbp_filter,
                                 plane)
        y = simulate_measurement(key, operator, reference, config.operator)
        return Inputs(reference, affine, operator, y, source, plane)
    if config.operator.kind not in ("parallel_beam", "fan_beam"):
        raise UserError("data.sinogram (measured projections) is supported for the slice-wise "
                        "CT operators (parallel_beam, fan_beam) only; other kinds simulate y "
                        "from the volume. Leave --config.data.sinogram empty.")
    operator = make_operator(config.operator, (1, resolution, resolution),
                             config.sampler.fbp_filter)
    with as_user_error():
        y = io.read_sinogram(data.sinogram, (None, *operator.measurement_shape()))
    y, _ = select_slices(y, affine, int(data.slice_start), int(data.num_slices))
    if reference is not None and y.shape[0] != reference.shape[0]:
        raise UserError(f"The sinogram has {y.shape[0]} slices but the reference volume has "
                        f"{reference.shape[0]}; give both for the same slices (the slice range "
                        "applies to both).")
    return Inputs(reference, affine, operator, y, f"{source}: {data.sinogram}", plane)
