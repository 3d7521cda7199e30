"""The prior file format: ``NAME.json`` (what the network is) + ``NAME.msgpack`` (its weights).

The one reader (`read`) and writer (`write`) of priors; `train/export.py` and
`iscs_jax.convert` write through it, `iscs_jax.priors.load` reads through it.

``NAME.json`` (format version 1)::

    {"format": "iscs-jax-prior", "format_version": 1, "name": ...,
     "architecture": "unet" | "ncsnpp",
     "config": {...},                      # the architecture's config (UNetConfig / NCSNppConfig)
     "parameterisation": {"kind": "edm", "sigma_data": s, "data_mean": mu}
                       | {"kind": "ve_score"},   # D = mu + c_skip.. / x + sigma^2 score(x, sigma)
     "resolution": R, "channels": C,
     "intensity": {"kind": "hu_window", "hu_min": -1000.0, "hu_max": 1600.0},
     "sigma_min": ..., "sigma_max": ...,   # the noise range the network was trained on
     "orientation": "LAS" | null,          # axis codes of the training volumes (below)
     "params_sha256": ...,                 # of NAME.msgpack, checked on read
     "provenance": {...}}                  # free-form: training run, source checkpoint, commands

``NAME.msgpack`` is a flax msgpack of the model's pure state dict
(``nnx.to_pure_dict(nnx.state(model))``). Both files are written to a temporary
file and renamed, weights first, so a reader never sees a half-written file and
the checksum catches a JSON paired with other weights. Files without
``format_version`` (the first layout: U-Net keys at the top level) are read as
EDM U-Net priors.

``orientation`` is the axis codes (`iscs_jax.orientation`: of the NIfTI ``(i, j, k)``
axes, e.g. ``"LAS"``) of the volumes the prior's planes were cut from, as
``python -m sample`` reorients inputs before cutting the same planes; `training_orientation`
gives it for a training config. A file without the field (written before it existed) reads
with `DEFAULT_ORIENTATION`, None: unknown, and inputs are then used in their stored array
order (as before) unless the user names the codes (``prior.orientation``). Converted
score_sde priors get `iscs_jax.convert.score_sde.DEFAULT_ORIENTATION` unless the converter
is told otherwise (``--orientation``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from typing import Any

from flax import serialization

FORMAT = "iscs-jax-prior"
FORMAT_VERSION = 1
ARCHITECTURES = ("unet", "ncsnpp")
PARAMETERISATIONS = {"edm": ("sigma_data", "data_mean"), "ve_score": ()}
#: ``hu_window``: CT HU clipped to [hu_min, hu_max] -> [0, 1]; ``range``: the file's stored
#: values (e.g. an MRI template's 0..255) clipped to [low, high] -> [0, 1].
INTENSITIES = {"hu_window": ("hu_min", "hu_max"), "range": ("low", "high")}
#: The orientation of a prior file without the field: None (unknown; inputs keep their
#: stored array order unless ``prior.orientation`` names the codes).
DEFAULT_ORIENTATION = None
#: The orientation of training data without a file: the procedural phantom of
#: `iscs_jax.data.phantom` (columns towards the patient's left, rows towards posterior,
#: slices towards inferior: LPI).
PHANTOM_ORIENTATION = "LPI"


class PriorFormatError(ValueError):
    """A prior file that cannot be read; the message names the file and the problem."""


@dataclasses.dataclass(frozen=True)
class PriorMeta:
    """Everything about a prior except its weights (the JSON file).

    Attributes:
      name: the prior's name.
      architecture: one of `ARCHITECTURES`.
      config: the architecture's config as a plain dict.
      parameterisation: ``{"kind": "edm", "sigma_data", "data_mean"}`` or ``{"kind": "ve_score"}``.
      resolution: H = W of its images.
      channels: image channels.
      intensity: how image values map to physical units, e.g.
        ``{"kind": "hu_window", "hu_min": -1000.0, "hu_max": 1600.0}`` (HU clipped to the
        window and mapped linearly to [0, 1]).
      sigma_min, sigma_max: the noise range it was trained on.
      provenance: free-form record of where it came from.
      orientation: axis codes of the NIfTI ``(i, j, k)`` axes of its training volumes
        (e.g. ``"LAS"``; `iscs_jax.orientation`), or None (unknown: `DEFAULT_ORIENTATION`).
    """

    name: str
    architecture: str
    config: dict
    parameterisation: dict
    resolution: int
    channels: int
    intensity: dict
    sigma_min: float
    sigma_max: float
    provenance: dict = dataclasses.field(default_factory=dict)
    orientation: str | None = DEFAULT_ORIENTATION

    def __post_init__(self):
        problems = []
        if self.orientation is not None:
            from iscs_jax import orientation

            try:
                codes = "".join(orientation.normalize_codes(self.orientation))
                object.__setattr__(self, "orientation", codes)
            except orientation.OrientationError as err:
                problems.append(f"orientation: {err}")
        if self.architecture not in ARCHITECTURES:
            problems.append(f"architecture {self.architecture!r} is not one of {ARCHITECTURES}")
        kind = self.parameterisation.get("kind")
        if kind not in PARAMETERISATIONS:
            problems.append(f"parameterisation kind {kind!r} is not one of "
                            f"{sorted(PARAMETERISATIONS)}")
        else:
            problems += [f"parameterisation {kind!r} needs {key!r}"
                         for key in PARAMETERISATIONS[kind] if key not in self.parameterisation]
        ikind = self.intensity.get("kind")
        if ikind not in INTENSITIES:
            problems.append(f"intensity kind {ikind!r} is not one of {sorted(INTENSITIES)}")
        else:
            problems += [f"intensity {ikind!r} needs {key!r}"
                         for key in INTENSITIES[ikind] if key not in self.intensity]
        if not 0 < self.sigma_min < self.sigma_max:
            problems.append(f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, "
                            f"{self.sigma_max}")
        if problems:
            raise PriorFormatError("Invalid prior metadata: " + "; ".join(problems) + ".")

    def to_json(self) -> dict[str, Any]:
        """The JSON document (without the checksum)."""
        return {"format": FORMAT, "format_version": FORMAT_VERSION,
                **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "PriorMeta":
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(fields - set(doc) - {"provenance", "orientation"})
        if missing:
            raise PriorFormatError(f"Prior metadata lacks the fields {missing}.")
        return cls(**{k: doc[k] for k in fields if k in doc})


def _upgrade_legacy(doc: dict[str, Any]) -> dict[str, Any]:
    """A format-1 document from the first layout (an EDM U-Net, keys at the top level).

    The HU window is the training config's ``data.hu_min``/``hu_max``, else [-1000, 1600].
    """
    window = doc.get("train_config", {}).get("data", {})
    provenance = {k: doc[k] for k in ("train_steps", "final_loss", "train_config", "command",
                                      "export_command") if k in doc}
    return {"name": doc.get("name", ""), "architecture": "unet", "config": doc["model"],
            "parameterisation": {"kind": "edm", "sigma_data": doc["sigma_data"],
                                 "data_mean": doc.get("data_mean", 0.0)},
            "resolution": doc["resolution"], "channels": doc.get("channels",
                                                                 doc["model"].get("channels", 1)),
            "intensity": {"kind": "hu_window", "hu_min": float(window.get("hu_min", -1000.0)),
                          "hu_max": float(window.get("hu_max", 1600.0))},
            "sigma_min": doc["sigma_min"], "sigma_max": doc["sigma_max"],
            "provenance": provenance}


def training_orientation(codes: str | None = None, path: str | None = None) -> str:
    """The ``orientation`` of a prior trained on the volume ``path`` (NIfTI, or ``pkg:``).

    Args:
      codes: the axis codes the trainer reoriented its volume to, if it did (wins).
      path: the training volume, read in its stored orientation; None or "": no file (the
        procedural phantom, `PHANTOM_ORIENTATION`).

    Returns:
      axis codes such as ``"LAS"``.

    Raises:
      ValueError: ``path`` is not one NIfTI file (a folder or a glob of volumes, whose
        orientations may differ) and no ``codes`` are given.
    """
    from iscs_jax import io, orientation
    from iscs_jax.data import packaged

    if codes:
        return "".join(orientation.normalize_codes(codes))
    if not path:
        return PHANTOM_ORIENTATION
    if not io.is_nifti(path):
        raise ValueError(f"The training data {path!r} is not one NIfTI file, so its "
                         "orientation is not one file's: reorient the training volumes to "
                         "one set of axis codes (iscs_jax.orientation.reorient) and record "
                         "them as data.orientation (e.g. 'LAS').")
    return "".join(orientation.axis_codes(io.read_affine(packaged.resolve(path))))


def _atomic_write(path: str, data: bytes) -> None:
    """Writes ``data`` to a temporary file next to ``path`` and renames it over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600 files; priors are shared, read-only data
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write(stem: str, meta: PriorMeta, params: dict) -> str:
    """Writes ``stem.msgpack`` (``params``, a pure dict of arrays) then ``stem.json``.

    Returns:
      ``stem``.
    """
    os.makedirs(os.path.dirname(os.path.abspath(stem)), exist_ok=True)
    blob = serialization.msgpack_serialize(params)
    doc = {**meta.to_json(), "params_sha256": hashlib.sha256(blob).hexdigest()}
    _atomic_write(stem + ".msgpack", blob)
    _atomic_write(stem + ".json", (json.dumps(doc, indent=2) + "\n").encode())
    return stem


def read_meta(stem: str) -> PriorMeta:
    """The metadata of ``stem.json`` (upgrading the first layout)."""
    return _read_doc(stem)[0]


def _read_doc(stem: str) -> tuple[PriorMeta, str | None]:
    path = stem + ".json"
    try:
        with open(path) as f:
            doc = json.load(f)
    except json.JSONDecodeError as err:
        raise PriorFormatError(f"{path} is not valid JSON: {err}.") from err
    try:
        if "format_version" not in doc:
            doc = _upgrade_legacy(doc)
        elif doc.get("format") != FORMAT or doc["format_version"] > FORMAT_VERSION:
            raise PriorFormatError(f"format {doc.get('format')!r} version "
                                   f"{doc['format_version']} is not {FORMAT!r} <= "
                                   f"{FORMAT_VERSION}; upgrade iscs-jax to read it")
        return PriorMeta.from_json(doc), doc.get("params_sha256")
    except (KeyError, TypeError, PriorFormatError) as err:
        raise PriorFormatError(f"{path}: {err}") from err


def read(stem: str) -> tuple[PriorMeta, dict]:
    """``(meta, params)`` of the prior ``stem.json`` + ``stem.msgpack``.

    Raises:
      PriorFormatError: unreadable or inconsistent files (the message names the file).
    """
    meta, sha = _read_doc(stem)
    with open(stem + ".msgpack", "rb") as f:
        blob = f.read()
    if sha is not None and hashlib.sha256(blob).hexdigest() != sha:
        raise PriorFormatError(f"{stem}.msgpack does not match the checksum in {stem}.json (the "
                               "two files come from different writes); write the prior again.")
    try:
        params = serialization.msgpack_restore(blob)
    except Exception as err:  # msgpack raises several unrelated types
        raise PriorFormatError(f"{stem}.msgpack is not a flax msgpack file: {err}.") from err
    return meta, params
