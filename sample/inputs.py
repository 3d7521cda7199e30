"""Inputs of a run: the reference volume, its affine, the CT operator and the measurement.

The volume comes from the embedded phantom, a NIfTI file or a DICOM series
(`load_volume`); `preprocess` applies the slice range, the intensity window to
[0, 1] and the in-plane resize to the prior's resolution, updating the affine
at each step. The measurement is simulated from the volume with the configured
geometry and noise (`simulate_measurement`), or read from a ``.npy`` sinogram.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from iscs_jax import io, operators
from iscs_jax.data import packaged, phantom
from sample.errors import UserError, as_user_error

GEOMETRIES = ("sparse_view", "limited_angle")
INTENSITIES = ("hu", "minmax", "none")
MEASUREMENT_NOISES = ("none", "gaussian", "poisson")
#: Photon counts of 0 are raised to this before the log of the Poisson model.
MIN_COUNT = 0.5


@dataclasses.dataclass
class Inputs:
    """What a reconstruction needs.

    Attributes:
      reference: ground truth ``[D, R, R]`` in [0, 1], or None (measured sinogram only).
      affine: ``[4, 4]`` NIfTI affine of the ``[D, R, R]`` grid.
      operator: the operator of ``operator.kind`` (`operators.protocol`).
      measurement: ``A(reference)`` (+ noise): ``[D, views, detectors]`` for slice-wise
        operators, ``[views, rows, cols]`` for the cone beam.
      source: a short description of where the volume came from.
    """
    reference: np.ndarray | None
    affine: np.ndarray
    operator: object
    measurement: np.ndarray
    source: str


#: Embedded default volumes (``data.path`` empty): name -> file inside this package, or
#: ``None`` for the procedural phantom (already in [0, 1]).
EMBEDDED = {
    "chest_ct": "pkg:iscs_jax/data/assets/chest_ct_69-132.nii.gz",
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


def to_unit_range(volume: np.ndarray, data_config) -> np.ndarray:
    """Maps intensities to [0, 1]: HU window, min-max, or unchanged ("none").

    The procedural phantom (see `uses_phantom`) is already in [0, 1] and is left as is.
    """
    if data_config.intensity not in INTENSITIES:
        raise UserError(f"data.intensity={data_config.intensity!r} is not one of {INTENSITIES}.")
    if data_config.intensity == "none" or uses_phantom(data_config):
        return volume.astype(np.float32)
    if data_config.intensity == "minmax":
        low, high = float(volume.min()), float(volume.max())
    else:
        low, high = float(data_config.hu_min), float(data_config.hu_max)
        if not high > low:
            raise UserError(f"Need data.hu_max > data.hu_min, got {low} and {high}.")
    return np.clip((volume - low) / (high - low), 0.0, 1.0).astype(np.float32)


def resize_slices(volume, affine, resolution: int):
    """Resamples every slice to ``resolution x resolution`` (linear, antialiased)."""
    new_shape = (volume.shape[0], resolution, resolution)
    if volume.shape == new_shape:
        return volume, affine
    resized = jax.image.resize(jnp.asarray(volume), new_shape, method="linear", antialias=True)
    return np.asarray(resized, np.float32), io.resized_affine(affine, volume.shape, new_shape)


def preprocess(volume, affine, data_config, resolution: int):
    """Slice range, intensity window and in-plane resize; returns ``([D, R, R], affine)``."""
    volume, affine = select_slices(volume, affine, int(data_config.slice_start),
                                   int(data_config.num_slices))
    volume = to_unit_range(volume, data_config)
    with as_user_error():
        io.validate_volume(volume, name=f"The volume after the intensity window "
                                        f"({data_config.intensity})")
    if not data_config.resize and volume.shape[1:] != (resolution, resolution):
        raise UserError(f"The input slices are {volume.shape[1]}x{volume.shape[2]} but the prior "
                        f"works on {resolution}x{resolution} and data.resize=False; set "
                        "--config.data.resize=True or use a prior trained at that resolution.")
    return resize_slices(volume, affine, resolution)


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


#: ``operator.kind`` -> builder ``(operator_config, volume_shape, filter) -> operator``.
OPERATOR_BUILDERS = {
    "parallel_beam": _parallel_beam,
    "fan_beam": _fan_beam,
    "cone_beam": _cone_beam,
}


def make_operator(operator_config, volume_shape, filter_name: str = "ramp"):
    """The operator of ``operator.kind`` for a ``[D, R, R]`` volume (see `OPERATOR_BUILDERS`).

    Args:
      operator_config: the ``operator`` config section.
      volume_shape: ``(D, R, R)`` of the reconstructed volume.
      filter_name: the baseline's (FBP / FDK) filter.
    """
    kind = operator_config.kind
    if kind not in OPERATOR_BUILDERS:
        raise UserError(f"operator.kind={kind!r} is not one of {sorted(OPERATOR_BUILDERS)}.")
    return OPERATOR_BUILDERS[kind](operator_config, tuple(int(s) for s in volume_shape),
                                   filter_name)


def add_measurement_noise(key: jax.Array, y: jax.Array, operator_config) -> jax.Array:
    """Simulated measurement noise on clean sinograms ``y`` (see `configs.sample_base`).

    "gaussian": ``y + noise_std * N(0, 1)``. "poisson": with
    ``s = attenuation / max(y)``, ``counts ~ Poisson(photons exp(-s y))`` and
    ``y_noisy = -log(max(counts, 0.5) / photons) / s``.
    """
    kind = operator_config.measurement_noise
    if kind not in MEASUREMENT_NOISES:
        raise UserError(f"operator.measurement_noise={kind!r} is not one of {MEASUREMENT_NOISES}.")
    if kind == "gaussian":
        if operator_config.noise_std < 0:
            raise UserError(f"operator.noise_std must be >= 0, got {operator_config.noise_std}.")
        return y + operator_config.noise_std * jax.random.normal(key, y.shape)
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
    """``A(volume)`` plus the configured noise: ``[D, views, detectors]``."""
    y = operator.A(jnp.asarray(volume))
    return np.asarray(add_measurement_noise(key, y, operator_config), np.float32)


def prepare_inputs(key, config, resolution: int) -> Inputs:
    """Loads and preprocesses the volume, builds the operator, simulates or reads ``y``."""
    data = config.data
    reference, affine, source = None, np.eye(4), "measured sinogram"
    if data.path or not data.sinogram:
        volume, affine, source = load_volume(data, resolution)
        reference, affine = preprocess(volume, affine, data, resolution)
    if not data.sinogram:
        operator = make_operator(config.operator, reference.shape, config.sampler.fbp_filter)
        y = simulate_measurement(key, operator, reference, config.operator)
        return Inputs(reference, affine, operator, y, source)
    if config.operator.kind == "cone_beam":
        raise UserError("data.sinogram (measured projections) is supported for slice-wise "
                        "operators only; cone-beam runs simulate y from the volume. Leave "
                        "--config.data.sinogram empty.")
    operator = make_operator(config.operator, (1, resolution, resolution),
                             config.sampler.fbp_filter)
    with as_user_error():
        y = io.read_sinogram(data.sinogram, (None, *operator.measurement_shape()))
    y, _ = select_slices(y, affine, int(data.slice_start), int(data.num_slices))
    if reference is not None and y.shape[0] != reference.shape[0]:
        raise UserError(f"The sinogram has {y.shape[0]} slices but the reference volume has "
                        f"{reference.shape[0]}; give both for the same slices (the slice range "
                        "applies to both).")
    return Inputs(reference, affine, operator, y, f"{source}: {data.sinogram}")
