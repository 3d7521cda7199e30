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
      operator: the `operators.ParallelBeam` of the geometry.
      measurement: ``[D, num_views, num_detectors]``.
      source: a short description of where the volume came from.
    """
    reference: np.ndarray | None
    affine: np.ndarray
    operator: operators.ParallelBeam
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


def make_operator(operator_config, resolution: int) -> operators.ParallelBeam:
    """The parallel-beam operator of the configured geometry for ``R x R`` slices."""
    geometry, views = operator_config.geometry, operator_config.num_views
    if geometry not in GEOMETRIES:
        raise UserError(f"operator.geometry={geometry!r} is not one of {GEOMETRIES}.")
    if views <= 0:
        raise UserError(f"operator.num_views={views} but at least one view is needed; set "
                        "--config.operator.num_views to a positive number (e.g. 20).")
    if geometry == "limited_angle":
        span = operator_config.range_degrees
        if not 0.0 < span <= 180.0:
            raise UserError(f"operator.range_degrees={span} is outside (0, 180]: parallel-beam "
                            "views repeat after 180 degrees. Set --config.operator.range_degrees "
                            "to a value in (0, 180], e.g. 90.")
        angles = operators.limited_angle_angles(views, span)
    else:
        angles = operators.sparse_view_angles(views)
    detectors = operator_config.num_detectors
    if detectors < 0:
        raise UserError(f"operator.num_detectors={detectors}; use 0 (automatic) or a "
                        "positive count.")
    return operators.ParallelBeam((resolution, resolution), angles, detectors or None)


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
    operator = make_operator(config.operator, resolution)
    data = config.data
    reference, affine, source = None, np.eye(4), "measured sinogram"
    if data.path or not data.sinogram:
        volume, affine, source = load_volume(data, resolution)
        reference, affine = preprocess(volume, affine, data, resolution)
    if not data.sinogram:
        y = simulate_measurement(key, operator, reference, config.operator)
        return Inputs(reference, affine, operator, y, source)
    with as_user_error():
        y = io.read_sinogram(data.sinogram, (None, *operator.measurement_shape()))
    y, _ = select_slices(y, affine, int(data.slice_start), int(data.num_slices))
    if reference is not None and y.shape[0] != reference.shape[0]:
        raise UserError(f"The sinogram has {y.shape[0]} slices but the reference volume has "
                        f"{reference.shape[0]}; give both for the same slices (the slice range "
                        "applies to both).")
    return Inputs(reference, affine, operator, y, f"{source}: {data.sinogram}")
