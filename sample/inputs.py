"""Inputs of a run: the reference volume, its affine, the operator and the measurement.

Orchestration only: config sections become keyword arguments of the library (the volume:
`io.read_volume` or `iscs_jax.data.embedded`, reoriented to the prior's axis codes by
`orientation.reorient` before anything else (`orient`), prepared by `prepare.prepare_volume`; the
operator: `operators.build`; the noise: `operators.measurement`), and the library's
errors, which name an argument as ``name=value``, become `UserError`s naming the config key.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from iscs_jax import io, operators, orientation
from iscs_jax.data import embedded, prepare
from iscs_jax.operators import measurement
from .errors import UserError, config_keys

#: Config keys of the arguments of `prepare.prepare_volume` and `embedded.load`.
DATA_KEYS = dict(plane="data.plane", start="data.slice_start", count="data.num_slices",
                 resize="data.resize", intensity="data.intensity", hu_min="data.hu_min",
                 hu_max="data.hu_max", name="data.embedded", phantom_seed="data.phantom_seed",
                 phantom_slices="data.phantom_slices", series="data.series",
                 check_intensity="data.check_intensity",
                 resample="data.dicom_resample")
#: ``operator`` keys of the noise -> arguments of `measurement.add_noise`.
NOISE_SETTINGS = dict(measurement_noise="kind", noise_std="noise_std", photons="photons",
                      attenuation="attenuation")


@dataclasses.dataclass
class Inputs:
    """What a reconstruction needs.

    Attributes:
      reference: ground truth planes ``[N, R, R]`` in [0, 1] (`prepare.to_planes` of the
        volume), or None (measured sinogram only).
      affine: ``[4, 4]`` NIfTI affine of ``prepare.from_planes(reference, plane)``, the
        result's grid in the prior's orientation (``prepare.restore_orientation`` with
        ``grid`` puts it back in the input's).
      operator: the operator of ``operator.kind`` (`operators.protocol`) acting on the planes.
      measurement: ``A(reference)`` (+ noise), of ``operator.measurement_shape(N)``; or a
        measured sinogram.
      source: a short description of where the volume came from.
      plane: the planes reconstructed (``"axial"``, ``"coronal"``, ``"sagittal"``).
      notes: the input's orientation and what was done to it, what the reader left out or
        resampled, and intensity notes, for the log.
      grid: the input's grid and window (`prepare.InputGrid`), to write results back on it
        (``data.output_grid="input"``, ``data.output_units="input"``) and in its own
        orientation (``grid.orientation``); None without a volume.
    """
    reference: np.ndarray | None
    affine: np.ndarray
    operator: object
    measurement: np.ndarray
    source: str
    plane: str = "axial"
    notes: tuple[str, ...] = ()
    grid: prepare.InputGrid | None = None


def load_volume(data, resolution: int, notes: list | None = None
                ) -> tuple[np.ndarray, np.ndarray, str]:
    """The raw volume ``[D, H, W]``, its affine and a description: ``data.path`` (a DICOM
    folder's series ``data.series``, resampled to even spacing if ``data.dicom_resample``),
    else the embedded volume ``data.embedded``; the reader's notes go to ``notes``."""
    with config_keys(**DATA_KEYS):
        if data.path:
            volume = io.read_volume(data.path, series=data.get("series", "") or None,
                                    resample=bool(data.get("dicom_resample", False)),
                                    notes=notes)
            return (*volume, str(data.path))
        return embedded.load(data.embedded, resolution=resolution,
                             phantom_seed=data.phantom_seed, phantom_slices=data.phantom_slices)


#: Why an input is not reoriented when there are no codes to reorient to.
NO_CODES = ("the prior records no orientation (set --config.prior.orientation=CODES to "
            "reorient)")


def orientation_plan(affine, codes, why: str = NO_CODES
                     ) -> tuple[tuple[str, str, str] | None, str, list[str]]:
    """``(input codes, log line, obliquity notes)`` of reorienting ``affine`` to ``codes``.

    The input codes are None when there is nothing to do (``codes`` None, for the reason
    ``why``, or the input already in them). Without ``codes`` an oblique affine is no
    problem (nothing is reoriented); with them, `orientation.check_obliquity` refuses an
    ambiguous one.
    """
    if codes is None:
        try:
            name = "".join(orientation.axis_codes(affine))
        except orientation.OrientationError:
            name = "oblique"
        return None, f"input orientation {name}: used in its stored array order; {why}", []
    with config_keys(**DATA_KEYS):
        found, tilt = orientation.axis_codes(affine), orientation.check_obliquity(affine)
    name, codes = "".join(found), tuple(codes)
    if codes == found:
        return None, f"input orientation {name}: already in the prior's orientation", tilt
    return found, (f"input orientation {name} -> the prior's {''.join(codes)}: "
                   f"{orientation.describe(found, codes)}"), tilt


def orient(volume, affine, codes, plane: str = "axial", notes: list | None = None,
           why: str = NO_CODES) -> tuple[np.ndarray, np.ndarray, tuple[str, str, str] | None]:
    """The volume in the prior's axis ``codes`` (`orientation.reorient`), before anything else.

    Args:
      volume: ``[D, H, W]`` as read; affine: its ``[4, 4]`` NIfTI affine.
      codes: the prior's axis codes (`prior.plane_orientation`), or None (used as stored).
      plane: ``data.plane``, whose images must have more than one row and column.
      notes: receives a line naming the input's codes and what was done (`orientation_plan`).
      why: the reason logged when ``codes`` is None.

    Returns:
      ``(volume, affine, input codes)``; the input codes are None when nothing was done
      (the arrays are then the input's own, bit for bit).

    Raises:
      UserError: an oblique or degenerate affine, or images that are not ``plane`` planes.
    """
    found, line, tilt = orientation_plan(affine, codes, why)
    if found is not None:
        volume, affine = orientation.reorient(volume, affine, codes)
    if notes is not None:
        notes.extend([line, *(f"note: {note}" for note in tilt)])
    with config_keys(**DATA_KEYS):  # plane= -> data.plane=
        images = prepare.to_planes(volume, plane).shape
    if min(images[1:]) == 1 and max(images) > 1:
        raise UserError(f"The input (shape [D, H, W] = {list(volume.shape)} in the prior's "
                        f"orientation) holds no {plane} images: its {plane} planes would be "
                        f"{images[1]}x{images[2]}, so its slices are not stacked along the axis "
                        f"the {plane} planes need. Give a volume of {plane} images (or several "
                        "slices), or set --config.data.plane to the planes it holds.")
    return volume, affine, found


def preprocess(volume, affine, data, resolution: int, notes: list | None = None):
    """`prepare.prepare_volume` of the ``data`` section: ``(planes [N, R, R], affine)``.

    The window is ``data.intensity``'s, or the one an embedded volume is stored for. Under
    the HU window, `prepare.check_hu` refuses a volume that cannot be HU (unless
    ``data.check_intensity`` is False) and its notes go to ``notes``.
    """
    with config_keys(**DATA_KEYS):
        window = prepare.intensity_window(data.intensity, data.hu_min, data.hu_max)
        stored = None if data.path else embedded.stored_window(data.embedded)
        planes, grid = prepare.prepare_volume(
            volume, affine, resolution=resolution, plane=data.get("plane", "axial"),
            start=int(data.slice_start), count=int(data.num_slices), resize=data.resize,
            window=(stored or window)[0], window_range=(stored or window)[1],
            floor=(stored or window)[2])
        if stored is None and data.intensity == "hu" and data.get("check_intensity", True):
            problems, hu_notes = prepare.check_hu(volume, data.hu_min, data.hu_max, window[2])
            if problems:
                raise ValueError(" ".join(problems) + " (check_intensity=False skips this "
                                 "check.)")
            if notes is not None:
                notes.extend(hu_notes)
        return planes, grid


def input_grid(volume, affine, data, resolution: int, input_codes=None) -> prepare.InputGrid:
    """`prepare.input_grid` of the ``data`` section (the window `preprocess` applies);
    ``input_codes``: the input's own axis codes when ``volume`` was reoriented (`orient`)."""
    with config_keys(**DATA_KEYS):
        window = prepare.intensity_window(data.intensity, data.hu_min, data.hu_max)
        window = (None if data.path else embedded.stored_window(data.embedded)) or window
        return prepare.input_grid(
            volume, affine, resolution=resolution, plane=data.get("plane", "axial"),
            start=int(data.slice_start), count=int(data.num_slices), window=window[0],
            window_range=window[1], floor=window[2], orientation=input_codes)


def make_operator(operator_config, volume_shape, filter_name: str = "ramp",
                  plane: str = "axial"):
    """`operators.build` of ``operator.kind`` with the section's settings of that kind, for
    a ``(D, R, R)`` stack of ``plane`` images and the baseline's ``filter_name``."""
    keys = {name: f"operator.{name}" for name in operator_config.keys()}
    with config_keys(**keys, plane="data.plane", filter_name="sampler.fbp_filter"):
        kind = operator_config.kind
        settings = {name: operator_config[name] for name in operators.setting_names(kind)
                    if name in operator_config}
        return operators.build(kind, volume_shape, plane=plane, filter_name=filter_name,
                               **settings)


def simulate_measurement(key, operator, volume, operator_config) -> np.ndarray:
    """``A(volume)`` plus the configured noise (float32, or complex64 for MRI)."""
    noise = {argument: operator_config[name] for name, argument in NOISE_SETTINGS.items()
             if name in operator_config}
    with config_keys(**{argument: f"operator.{name}" for name, argument in
                        NOISE_SETTINGS.items()}):
        y = measurement.simulate(key, operator, volume, **noise)
    return np.asarray(y, np.complex64 if np.iscomplexobj(y) else np.float32)


def read_measurement(data, operator, reference) -> np.ndarray:
    """The measured sinogram ``data.sinogram``, its slice range applied."""
    with config_keys(**DATA_KEYS):
        y = io.read_sinogram(data.sinogram, (None, *operator.measurement_shape()))
        y, _ = prepare.select_planes(y, np.eye(4), "axial", int(data.slice_start),
                                     int(data.num_slices))
    if reference is not None and y.shape[0] != reference.shape[0]:
        raise UserError(f"The sinogram has {y.shape[0]} slices but the reference volume has "
                        f"{reference.shape[0]}; give both for the same slices (the slice range "
                        "applies to both).")
    return y


def prepare_inputs(key, config, resolution: int, codes=None) -> Inputs:
    """Loads the volume, reorients it to the prior's axis ``codes`` (`orient`; None: as
    stored), preprocesses it, builds the operator, simulates or reads ``y``."""
    data, kind = config.data, config.operator.kind
    if data.sinogram and kind not in operators.SINOGRAM_KINDS:
        raise UserError(f"data.sinogram (measured projections) is supported for the operator "
                        f"kinds {operators.SINOGRAM_KINDS} only; operator.kind={kind!r} "
                        "simulates y from the volume. Leave --config.data.sinogram empty.")
    plane, reference, affine = data.get("plane", "axial"), None, np.eye(4)
    source, notes, grid = "measured sinogram", [], None
    if data.path or not data.sinogram:
        volume, affine, source = load_volume(data, resolution, notes)
        why = NO_CODES
        if data.sinogram and codes is not None:  # y was measured in the stored orientation
            codes, why = None, (f"a measured sinogram (data.sinogram) fixes the slices' "
                                f"orientation, so it is not reoriented to the prior's "
                                f"{''.join(codes)}")
        volume, affine, input_codes = orient(volume, affine, codes, plane, notes, why)
        grid = input_grid(volume, affine, data, resolution, input_codes)
        reference, affine = preprocess(volume, affine, data, resolution, notes)
    shape = (1, resolution, resolution) if data.sinogram else reference.shape
    operator = make_operator(config.operator, shape, config.sampler.fbp_filter, plane)
    if data.sinogram:
        y, source = read_measurement(data, operator, reference), f"{source}: {data.sinogram}"
    else:
        y = simulate_measurement(key, operator, reference, config.operator)
    return Inputs(reference, affine, operator, y, source, plane, tuple(notes), grid)
