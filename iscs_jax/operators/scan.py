"""CT scans from plain settings: view angles and the divergent-beam geometry presets.

A scan's views (`view_angles`) are ``num_views`` angles of a ``geometry`` (`GEOMETRIES`):
``"sparse_view"`` spreads them evenly over a full turn (180 degrees for parallel beams,
360 for the fan and cone beams), ``"limited_angle"`` over ``[0, range_degrees)``.
`angle_coverage` names a set of angles back for a one-line description. A fan- or
cone-beam ``preset`` (`PRESETS`) gives the source and detector distances and the
detector size (`divergent_geometry`). The helpers for other scans (`arc_angles`,
`short_scan_angles`) live here too.

Errors name the offending argument as ``name=value``, so a caller can map them to its
own setting names.
"""

from __future__ import annotations

import numpy as np

#: Scan geometries of `view_angles`.
GEOMETRIES = ("sparse_view", "limited_angle")
#: Published cone-beam geometry (source 700 mm and detector 500 mm from the axis, 512 x 512
#: detector at 2 mm, unit voxels; for volumes 256 voxels across).
PAPER_GEOMETRY = dict(source_origin=700.0, origin_detector=500.0, rows=512, cols=512,
                      spacing=2.0, width=256)
#: Divergent-beam presets of `divergent_geometry`.
PRESETS = ("scaled", "paper")


def _check_num_views(num_views) -> int:
    if int(num_views) != num_views or num_views < 1:
        raise ValueError(f"num_views={num_views!r}: need a positive whole number of views "
                         "(e.g. 20).")
    return int(num_views)


def sparse_view_angles(num_views: int) -> np.ndarray:
    """``num_views`` angles evenly spaced over [0, 180) degrees, in radians, float64
    ``[num_views]``."""
    num_views = _check_num_views(num_views)
    return np.arange(num_views) * (np.pi / num_views)


def full_orbit_angles(num_views: int) -> np.ndarray:
    """Sparse view over a full orbit: ``num_views`` angles evenly spaced over [0, 360)
    degrees, in radians, float64 ``[num_views]``."""
    num_views = _check_num_views(num_views)
    return np.arange(num_views) * (2 * np.pi / num_views)


def limited_angle_angles(num_views: int, range_degrees: float,
                         full_turn: float = 180.0) -> np.ndarray:
    """``num_views`` angles evenly spaced over [0, range_degrees), in radians.

    Args:
      num_views: number of views, > 0.
      range_degrees: angular coverage in degrees, in (0, full_turn].
      full_turn: degrees after which the views repeat (180 parallel, 360 divergent beams).

    Returns:
      float64 ``[num_views]``.
    """
    num_views = _check_num_views(num_views)
    if range_degrees is None or not 0.0 < float(range_degrees) <= full_turn:
        raise ValueError(f"range_degrees={range_degrees!r} is outside (0, {full_turn:g}]: the "
                         f"views repeat after {full_turn:g} degrees; use a range in it, e.g. 90.")
    return np.deg2rad(np.arange(num_views) * (float(range_degrees) / num_views))


def arc_angles(range_degrees: float, step_degrees: float = 1.0) -> np.ndarray:
    """Limited angle: contiguous views every ``step_degrees`` covering [0, range_degrees),
    in radians (90 degrees -> 90 views at 0, 1, ..., 89 degrees)."""
    span, step = float(range_degrees), float(step_degrees)
    if not 0.0 < step <= span <= 360.0:
        raise ValueError(f"Need 0 < step_degrees <= range_degrees <= 360, got "
                         f"range_degrees={range_degrees!r}, step_degrees={step_degrees!r}.")
    count = int(round(span / step))
    if not np.isclose(count * step, span):
        raise ValueError(f"range_degrees={span} is not a whole number of {step}-degree steps.")
    return np.deg2rad(np.arange(count) * step)


def short_scan_angles(num_views: int, fan_half_angle: float) -> np.ndarray:
    """A short scan: ``num_views`` evenly spaced angles from 0 to pi + 2 fan_half_angle
    (both ends included), radians."""
    if int(num_views) != num_views or num_views < 2:
        raise ValueError(f"num_views={num_views!r}: a short scan needs an integer >= 2.")
    return np.linspace(0.0, np.pi + 2 * float(fan_half_angle), int(num_views))


def view_angles(geometry: str, num_views: int, range_degrees: float | None = None,
                full_turn: float = 180.0) -> np.ndarray:
    """The views of a scan, radians ``[num_views]`` (see the module docstring).

    Args:
      geometry: ``"sparse_view"`` (evenly over a full turn) or ``"limited_angle"`` (evenly
        over ``[0, range_degrees)``).
      num_views: number of views, > 0.
      range_degrees: the limited angle's coverage, in (0, full_turn]; unused for sparse view.
      full_turn: 180 (parallel beams) or 360 (fan and cone beams).
    """
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry={geometry!r} is not one of {GEOMETRIES}.")
    if geometry == "limited_angle":
        return limited_angle_angles(num_views, range_degrees, full_turn)
    return sparse_view_angles(num_views) if full_turn == 180.0 else full_orbit_angles(num_views)


def angle_coverage(angles, full_turn: float = 180.0) -> str:
    """The `GEOMETRIES` name of ``angles`` (radians), or ``"custom"``.

    ``"sparse_view"``: evenly over the full turn from 0; ``"limited_angle"``: evenly
    spaced from 0 over less than the full turn.
    """
    angles = np.asarray(angles, np.float64).reshape(-1)
    turn, count = np.deg2rad(full_turn), angles.size
    if np.allclose(angles, np.arange(count) * (turn / count), rtol=0.0, atol=1e-9):
        return "sparse_view"
    step = angles[1] - angles[0] if count > 1 else 0.0
    if (count > 1 and abs(angles[0]) < 1e-9 and step > 0 and count * step < turn
            and np.allclose(np.diff(angles), step, rtol=0.0, atol=1e-9)):
        return "limited_angle"
    return "custom"


def require_axial(plane: str, name: str) -> None:
    """Raises unless ``plane == "axial"``: the CT operators measure axial slices."""
    if plane != "axial":
        raise ValueError(f"plane={plane!r}: {name} measures axial slices; the other planes "
                         "are for operators along z or per image (zsr, cartesian_mri). Use "
                         "plane='axial'.")


def divergent_geometry(preset: str, volume_shape) -> dict:
    """Source/detector distances and detector size of a fan- or cone-beam preset.

    "paper": `PAPER_GEOMETRY` as published. "scaled": the same magnification and cone
    angle for a volume ``W`` voxels across: distances times ``W / 256``, ``2 W`` columns at
    2 mm, and just enough 2 mm rows (even) to see every slice from every view.

    Args:
      preset: one of `PRESETS`.
      volume_shape: ``(D, H, W)`` in unit voxels.

    Returns:
      ``dict(source_origin, origin_detector, rows, cols, spacing)``.
    """
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r} is not one of {PRESETS}.")
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
