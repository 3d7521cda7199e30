"""DICOM series reading, done as radiology tools do it (dcm2niix, 3D Slicer).

`read_series` turns a folder of DICOM files into one volume:

1. files are grouped by SeriesInstanceUID; files without pixel data or without
   ImagePositionPatient (reports, DICOMDIR) and localizers (ImageType containing
   LOCALIZER) are left out, with a note for the localizers;
2. more than one image series is an error listing each (UID, description, number
   of images) unless ``series=`` names one, by UID or by a unique SeriesDescription;
3. images whose ImageOrientationPatient differs from the series' majority are left
   out with a note;
4. slices are sorted by ImagePositionPatient along the slice normal (the cross
   product of the row and column direction cosines);
5. uneven spacing (a missing slice) is an error naming the gap, or with
   ``resample=True`` the slices are resampled to uniform spacing (linear along the
   normal) with a note;
6. each file's pixels become ``value * RescaleSlope + RescaleIntercept``.

The volume is ``[D, H, W]`` (a slice's pixel array is ``[rows, columns] = [j, i]``)
with the NIfTI ``(i, j, k)`` affine in RAS+ millimetres (DICOM's LPS with x and y
negated), as `iscs_jax.io` keeps it. Errors name the argument (``series=``,
``resample=``) that changes the outcome.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from pathlib import Path

import numpy as np

from iscs_jax.io import VolumeError

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_DEFAULT_ORIENTATION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
#: Direction cosines equal to this many decimals are one orientation.
ORIENTATION_DECIMALS = 4
#: Slice gaps within this share of the series' spacing (or 1e-3 mm) count as even.
SPACING_TOLERANCE = 0.02


class DicomError(VolumeError):
    """A DICOM folder or file that cannot be read as one volume; the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class Series:
    """One DICOM series read as a volume.

    Attributes:
      volume: float64 ``[D, H, W]`` in the files' rescaled units (HU for CT).
      affine: ``[4, 4]`` NIfTI ``(i, j, k)`` -> RAS+ millimetres.
      uid: SeriesInstanceUID ("" when the files have none).
      description: SeriesDescription ("" when none).
      notes: what was left out or resampled, one sentence each.
    """
    volume: np.ndarray
    affine: np.ndarray
    uid: str
    description: str
    notes: tuple[str, ...] = ()


def _uid(ds) -> str:
    return str(ds.get("SeriesInstanceUID", "") or "")


def _description(ds) -> str:
    return str(ds.get("SeriesDescription", "") or "").strip()


def is_localizer(ds) -> bool:
    """True when the dataset's ImageType contains LOCALIZER (a scout / topogram)."""
    image_type = ds.get("ImageType", None) or []
    image_type = [image_type] if isinstance(image_type, str) else list(image_type)
    return any("LOCALIZER" in str(v).upper() for v in image_type)


def orientation(ds) -> tuple[float, ...]:
    """The dataset's ImageOrientationPatient (row then column cosines), rounded."""
    values = ds.get("ImageOrientationPatient", None) or _DEFAULT_ORIENTATION
    return tuple(round(float(v), ORIENTATION_DECIMALS) + 0.0 for v in values)


def read_images(folder: str | os.PathLike) -> list:
    """Every DICOM image (pixel data and ImagePositionPatient) directly in ``folder``."""
    import pydicom

    images, entries = [], sorted(Path(folder).iterdir())
    for path in (p for p in entries if p.is_file()):
        try:  # large elements (the pixels) are read when used, so other series cost little
            ds = pydicom.dcmread(str(path), defer_size="4 KB")
        except Exception:  # not a DICOM file (e.g. a README)
            continue
        if "PixelData" in ds and "ImagePositionPatient" in ds:
            images.append(ds)
    if not images:
        subfolders = [p.name for p in entries if p.is_dir()][:5]
        hint = (f" It has subfolders ({', '.join(subfolders)}): give the one holding the series."
                if subfolders else "")
        raise DicomError(f"No DICOM image with pixel data and ImagePositionPatient was found in "
                         f"{str(folder)!r}; give the folder of one CT/MR series (files directly "
                         f"in it).{hint}")
    return images


def group_series(images: list) -> tuple[dict[str, list], list[str]]:
    """``({uid: images}, notes)``: images by SeriesInstanceUID, localizers left out."""
    groups, localizers = collections.defaultdict(list), collections.Counter()
    for ds in images:
        if is_localizer(ds):
            localizers[_uid(ds)] += 1
        else:
            groups[_uid(ds)].append(ds)
    notes = [f"left out {count} localizer image(s) (ImageType LOCALIZER) of series "
             f"{uid or '(no UID)'!r}" for uid, count in localizers.items()]
    return dict(groups), notes


def describe_series(groups: dict[str, list]) -> str:
    """One line per series: ``UID 'description' (N images)``."""
    return "; ".join(f"{uid or '(no UID)'} {_description(images[0])!r} ({len(images)} images)"
                     for uid, images in groups.items())


def select_series(groups: dict[str, list], series: str | None, folder: str) -> str:
    """The UID of the one series to read: the only one, or the one ``series`` names (a UID, or
    a SeriesDescription held by one series)."""
    if not groups:
        raise DicomError(f"{folder!r} holds only localizer images (ImageType LOCALIZER); give the "
                         "folder of an image series.")
    if series:
        if series in groups:
            return series
        named = [uid for uid, images in groups.items() if _description(images[0]) == series.strip()]
        if len(named) == 1:
            return named[0]
        which = "several series" if named else "no series"
        raise DicomError(f"series={series!r} names {which} in {folder!r} (by SeriesInstanceUID or "
                         f"SeriesDescription); its series: {describe_series(groups)}. Give "
                         "series= the UID of one of them.")
    if len(groups) > 1:
        raise DicomError(f"{folder!r} holds {len(groups)} image series: "
                         f"{describe_series(groups)}. Choose one with series= its UID or its "
                         "description, or give a folder holding one series.")
    return next(iter(groups))


def majority_orientation(images: list) -> tuple[list, list[str]]:
    """The images in the series' most common orientation, and a note on the others."""
    counts = collections.Counter(orientation(ds) for ds in images)
    majority = counts.most_common(1)[0][0]
    kept = [ds for ds in images if orientation(ds) == majority]
    notes = []
    if len(kept) < len(images):
        others = sorted(set(counts) - {majority})
        notes.append(f"left out {len(images) - len(kept)} image(s) whose ImageOrientationPatient "
                     f"({', '.join(str(list(o)) for o in others)}) differs from the series' "
                     f"{list(majority)}")
    return kept, notes


def slice_normal(images: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(row_dir, col_dir, normal)`` direction cosines ``[3]`` of the series (LPS)."""
    values = np.asarray(images[0].get("ImageOrientationPatient", None) or _DEFAULT_ORIENTATION,
                        float)
    row_dir, col_dir = values[:3], values[3:]
    return row_dir, col_dir, np.cross(row_dir, col_dir)


def sort_by_position(images: list, normal: np.ndarray) -> tuple[list, np.ndarray]:
    """Images sorted along ``normal`` and their positions (mm) on it; equal positions are an
    error (the series holds several volumes: echoes, phases, time points)."""
    positions = np.array([np.dot(np.asarray(ds.ImagePositionPatient, float), normal)
                          for ds in images])
    order = np.argsort(positions, kind="stable")
    images, positions = [images[i] for i in order], positions[order]
    same = np.flatnonzero(np.abs(np.diff(positions)) < 1e-4)
    if same.size:
        raise DicomError(f"{same.size} image(s) of the series lie at the position of another, "
                         f"first at {positions[same[0]]:.3f} mm along the slice normal: it holds "
                         "several volumes (echoes, phases or time points); export one volume "
                         "per folder.")
    return images, positions


def slice_spacing(positions: np.ndarray) -> tuple[float, list[tuple[int, float, float]]]:
    """``(spacing, gaps)``: the series' spacing (its most common gap between sorted
    ``positions``, the smallest of equally common ones) and ``(index, position, next
    position)`` of each gap that differs from it beyond `SPACING_TOLERANCE`."""
    if positions.size < 2:
        return 0.0, []
    steps = np.diff(positions)

    def near(value):
        return np.abs(steps - value) <= max(SPACING_TOLERANCE * value, 1e-3)

    common = max(sorted(steps), key=lambda value: int(np.count_nonzero(near(value))))
    spacing = float(np.median(steps[near(common)]))
    bad = ~near(spacing)
    return spacing, [(int(i), float(positions[i]), float(positions[i + 1]))
                     for i in np.flatnonzero(bad)]


def uneven_spacing_message(gaps, spacing: float, name: str) -> str:
    """The error of unevenly spaced slices, naming the first gaps and the expected spacing."""
    shown = "; ".join(f"slices {i} and {i + 1} at {a:.3f} and {b:.3f} mm (gap {b - a:.3f} mm)"
                      for i, a, b in gaps[:5])
    more = f"; and {len(gaps) - 5} more" if len(gaps) > 5 else ""
    return (f"The slices of DICOM series {name!r} are not evenly spaced (a missing slice?): "
            f"along the slice normal, sorted {shown}{more}, where the series' spacing is "
            f"{spacing:.3f} mm. Give the complete series, or pass resample=True to resample it "
            "linearly to uniform spacing.")


def pixel_volume(images: list, name: str) -> np.ndarray:
    """``[D, H, W]`` float64 of the images' pixels, each file's rescale slope and intercept
    applied."""
    try:
        pixels = [ds.pixel_array for ds in images]
    except Exception as err:  # pydicom raises many types for compressed / corrupt pixel data
        raise DicomError(f"Could not decode the pixel data of the DICOM image(s) {name!r} "
                         f"({err}); install the decoder pydicom names, or convert the series "
                         "to NIfTI.") from err
    if any(p.ndim != 2 for p in pixels):
        raise DicomError(f"The DICOM images {name!r} hold multi-frame or colour pixel data; "
                         "convert the series to NIfTI (e.g. with dcm2niix).")
    shapes = sorted({p.shape for p in pixels})
    if len(shapes) != 1:
        raise DicomError(f"The DICOM slices of {name!r} have different sizes {shapes}; the "
                         "series must hold images of one size.")
    return np.stack([p.astype(np.float64) * float(ds.get("RescaleSlope", 1.0) or 1.0)
                     + float(ds.get("RescaleIntercept", 0.0) or 0.0)
                     for p, ds in zip(pixels, images)])


def resample_uniform(volume: np.ndarray, positions: np.ndarray,
                     spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Linear resampling of ``[D, H, W]`` slices at sorted ``positions`` to uniform ones from the
    first to the last position, about ``spacing`` apart: ``(volume [D', H, W], positions)``."""
    count = int(round((positions[-1] - positions[0]) / spacing)) + 1
    uniform = np.linspace(positions[0], positions[-1], count)
    upper = np.clip(np.searchsorted(positions, uniform, side="right"), 1, len(positions) - 1)
    lower = upper - 1
    weight = (uniform - positions[lower]) / (positions[upper] - positions[lower])
    weight = np.clip(weight, 0.0, 1.0)[:, None, None]
    return (1.0 - weight) * volume[lower] + weight * volume[upper], uniform


def affine_of(images: list, row_dir, col_dir, normal, num_slices: int) -> np.ndarray:
    """NIfTI-convention RAS affine of sorted ``images`` (first and last position span the
    ``num_slices`` slices; one image: SliceThickness along the normal)."""
    row_spacing, col_spacing = (float(v) for v in images[0].get("PixelSpacing", [1.0, 1.0]))
    origin = np.asarray(images[0].ImagePositionPatient, float)
    if num_slices > 1:
        last = np.asarray(images[-1].ImagePositionPatient, float)
        step = (last - origin) / (num_slices - 1)
    else:
        step = normal * float(images[0].get("SliceThickness", 1.0) or 1.0)
    affine = np.eye(4)
    affine[:3, 0] = row_dir * col_spacing  # i: along a row, column spacing
    affine[:3, 1] = col_dir * row_spacing  # j: down a column, row spacing
    affine[:3, 2] = step
    affine[:3, 3] = origin
    return _LPS_TO_RAS @ affine


def series_volume(images: list, name: str, *, resample: bool = False) -> tuple[
        np.ndarray, np.ndarray, list[str]]:
    """``(volume [D, H, W], affine, notes)`` of the images of one series (steps 3-6)."""
    images, notes = majority_orientation(images)
    row_dir, col_dir, normal = slice_normal(images)
    images, positions = sort_by_position(images, normal)
    spacing, gaps = slice_spacing(positions)
    volume = pixel_volume(images, name)
    if gaps:
        if not resample:
            raise DicomError(uneven_spacing_message(gaps, spacing, name))
        count = len(images)
        volume, positions = resample_uniform(volume, positions, spacing)
        notes.append(f"resampled {count} unevenly spaced slices to {len(positions)} slices "
                     f"{np.ptp(positions) / max(len(positions) - 1, 1):.3f} mm apart (linear "
                     "along the slice normal)")
    return volume, affine_of(images, row_dir, col_dir, normal, len(positions)), notes


def read_series(folder: str | os.PathLike, *, series: str | None = None,
                resample: bool = False) -> Series:
    """Reads one series of a DICOM folder (see the module docstring for the rules).

    Args:
      folder: directory holding the series' files (non-DICOM files are skipped).
      series: the SeriesInstanceUID or SeriesDescription of the series to read, when the
        folder holds several; None: the folder must hold one.
      resample: resample unevenly spaced slices to uniform spacing instead of an error.

    Returns:
      the `Series` (volume ``[D, H, W]`` float64, affine, uid, description, notes).

    Raises:
      DicomError: no image, several series and no ``series=``, an unknown ``series=``,
        images at one position, uneven spacing without ``resample=True``, undecodable
        or mixed-size pixel data.
    """
    groups, notes = group_series(read_images(folder))
    uid = select_series(groups, series, str(folder))
    images = groups[uid]
    volume, affine, more = series_volume(images, Path(folder).name, resample=resample)
    return Series(volume, affine, uid, _description(images[0]), tuple(notes + more))


def read_file(path: str | os.PathLike) -> Series:
    """Reads one DICOM image as a one-slice `Series` ``[1, H, W]``.

    Raises:
      DicomError: not a DICOM file, or no pixel data or ImagePositionPatient.
    """
    import pydicom

    path = Path(path)
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as err:  # pydicom raises many types for non-DICOM files
        raise DicomError(f"Cannot read {str(path)!r}: it is neither .nii/.nii.gz nor a DICOM "
                         f"file ({err}); give a NIfTI file, a DICOM file or a DICOM series "
                         "folder.") from err
    if "PixelData" not in ds or "ImagePositionPatient" not in ds:
        raise DicomError(f"The DICOM file {str(path)!r} has no pixel data or no "
                         "ImagePositionPatient; give a CT/MR image file.")
    volume, affine, notes = series_volume([ds], path.name)
    return Series(volume, affine, _uid(ds), _description(ds), tuple(notes))
