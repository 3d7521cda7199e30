"""Inputs of a run: the reference volume, its affine, the operator and the measurement.

Orchestration only: config sections become keyword arguments of the library (the volume:
`io.read_volume` or `iscs_jax.data.embedded`, oriented and prepared by
`iscs_jax.data.inputs`; the operator: `operators.build`; the noise:
`operators.measurement`), and the library's errors, which name an argument as
``name=value``, become `UserError`s naming the config key.
"""

from __future__ import annotations

import numpy as np

from iscs_jax import io, operators
from iscs_jax.data import embedded, prepare
from iscs_jax.data import inputs as inputs_lib
from iscs_jax.data.inputs import Inputs
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
#: Why an input is not reoriented when there are no codes to reorient to.
NO_CODES = ("the prior records no orientation (set --config.prior.orientation=CODES to "
            "reorient)")


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


def orient(volume, affine, codes, plane: str = "axial", notes: list | None = None,
           why: str = NO_CODES):
    """`inputs_lib.orient` (the volume in the prior's axis ``codes``, None: as stored):
    ``(volume, affine, input codes)``."""
    with config_keys(**DATA_KEYS):
        return inputs_lib.orient(volume, affine, codes, plane, notes, why)


def _reference(volume, affine, data, resolution: int, notes=None, input_codes=None):
    """`inputs_lib.prepare_reference` of the ``data`` section: ``(planes, affine, grid)``.

    The window is ``data.intensity``'s, or the one an embedded volume is stored for; under
    the HU window a volume that cannot be HU is refused unless ``data.check_intensity`` is
    False."""
    with config_keys(**DATA_KEYS):
        window = prepare.intensity_window(data.intensity, data.hu_min, data.hu_max)
        stored = None if data.path else embedded.stored_window(data.embedded)
        check = stored is None and data.intensity == "hu" and data.get("check_intensity", True)
        return inputs_lib.prepare_reference(
            volume, affine, resolution=resolution, plane=data.get("plane", "axial"),
            start=int(data.slice_start), count=int(data.num_slices), resize=data.resize,
            window=stored or window, check_hu=bool(check), notes=notes,
            input_codes=input_codes)


def preprocess(volume, affine, data, resolution: int, notes: list | None = None):
    """The ``data`` section's planes of ``volume``: ``(planes [N, R, R], affine)``."""
    return _reference(volume, affine, data, resolution, notes)[:2]


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
        reference, affine, grid = _reference(volume, affine, data, resolution, notes,
                                             input_codes)
    shape = (1, resolution, resolution) if data.sinogram else reference.shape
    operator = make_operator(config.operator, shape, config.sampler.fbp_filter, plane)
    if data.sinogram:
        with config_keys(**DATA_KEYS):
            y = inputs_lib.read_measurement(
                data.sinogram, operator, start=int(data.slice_start),
                count=int(data.num_slices),
                num_slices=None if reference is None else reference.shape[0])
        source = f"{source}: {data.sinogram}"
    else:
        y = simulate_measurement(key, operator, reference, config.operator)
    return Inputs(reference, affine, operator, y, source, plane, tuple(notes), grid)
