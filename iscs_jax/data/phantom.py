"""Procedural 3D torso phantoms that look like axial CT, with analytic projections.

Geometry lives in normalised coordinates ``(x, y, z) in [-1, 1]^3`` so any
``[D, H, W]`` grid samples the same continuous object:

- ``x`` runs along columns (W), left to right of the image (patient's right is
  on the image left, the radiological convention);
- ``y`` runs along rows (H), top to bottom of the image (anterior at the top);
- ``z`` runs along slices (D); ``z = -1`` is superior (chest, lungs), ``z = +1``
  inferior (lower abdomen, pelvis).

Voxel ``k`` of an axis of length ``n`` sits at ``-1 + (2k + 1) / n`` (cell centres).

A phantom is a sum of *components*: sheared ellipsoids (`Ellipsoid`), each adding
its ``value`` inside itself (the Shepp-Logan convention, so organs are written
as a value relative to what surrounds them). Every axial cross-section of a
component is an ellipse, so the line integrals of a slice of the component sum
have a closed form (`ellipse_line_integrals`), useful to test projectors.
`phantom_volume` then adds a mild smooth texture inside the body and clips to
``[0, 1]``; the analytic integrals describe the component sum only
(`ellipse_slice`), not the texture.

Values are a contrast-enhanced CT look in the HU window [-1000, 1600] -> [0, 1],
with soft-tissue contrast exaggerated: air 0, lung ~0.03, fat ~0.28,
muscle ~0.38, liver ~0.45, kidney cortex ~0.52, enhanced vessels ~0.55,
cancellous bone ~0.65, cortical bone ~0.9.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

#: Texture amplitudes of the coarse and the fine smooth noise (values in [0, 1]).
TEXTURE_AMPLITUDES = (0.012, 0.008)
#: Lattice sizes ``(z, y, x)`` of the coarse and the fine smooth noise.
TEXTURE_LATTICES = ((6, 10, 10), (12, 28, 28))


@dataclasses.dataclass(frozen=True)
class Ellipsoid:
    """One phantom component: an ellipsoid whose axial centre may drift with z.

    At height ``z`` with ``t = (z - center_z) / axes_c`` and ``|t| < 1`` its
    cross-section is the ellipse with centre
    ``(center_x + shear_x dz + bend_x dz^2, center_y + shear_y dz + bend_y dz^2)``
    (``dz = z - center_z``), semi-axes ``(a, b) * (1 - |t|^p)^(1/p)`` with
    ``p = z_exponent`` (2: an ellipsoid; larger: a rounded cylinder), semi-axis
    ``a`` rotated by ``angle`` radians from the +x towards the +y direction.

    Attributes:
      center: ``(x, y, z)`` centre, normalised coordinates.
      axes: ``(a, b, c)`` semi-axes along the rotated x, rotated y and z.
      angle: in-plane rotation in radians.
      value: attenuation added inside the ellipsoid.
      shear: ``(dx/dz, dy/dz)`` linear drift of the axial centre.
      bend: ``(kx, ky)`` quadratic drift of the axial centre.
      z_exponent: profile exponent ``p`` along z (2 for a true ellipsoid).
    """

    center: tuple[float, float, float]
    axes: tuple[float, float, float]
    angle: float
    value: float
    shear: tuple[float, float] = (0.0, 0.0)
    bend: tuple[float, float] = (0.0, 0.0)
    z_exponent: float = 2.0


def z_scale(t: np.ndarray, z_exponent) -> np.ndarray:
    """Cross-section scale ``(1 - |t|^p)^(1/p)`` at relative height ``t`` (0 where ``|t| >= 1``)."""
    inner = np.clip(1.0 - np.abs(t) ** z_exponent, 0.0, None)
    return inner ** (1.0 / np.asarray(z_exponent, np.float64))


def grid_coordinates(n: int) -> np.ndarray:
    """Cell-centre coordinates ``[n]`` in (-1, 1) of an axis with ``n`` voxels."""
    return (-1.0 + (2.0 * np.arange(n) + 1.0) / n).astype(np.float64)


# --------------------------------------------------------------------------- components


class _Jitter:
    """Seeded perturbations of the nominal anatomy (one generator, fixed draw order)."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def pos(self, x: float, y: float, z: float, amount: float = 0.03):
        dx, dy, dz = self.rng.uniform(-amount, amount, size=3)
        return (x + dx, y + dy, z + dz)

    def size(self, a: float, b: float, c: float, amount: float = 0.12):
        return tuple(float(s) * self.rng.uniform(1 - amount, 1 + amount) for s in (a, b, c))

    def angle(self, phi: float, amount: float = 0.12) -> float:
        return float(phi + self.rng.uniform(-amount, amount))

    def value(self, v: float, amount: float = 0.015) -> float:
        return float(v + self.rng.uniform(-amount, amount))


def _organ(j: _Jitter, body: tuple[float, float], center, axes, angle, value,
           shear=(0.0, 0.0), bend=(0.0, 0.0), pos_jitter=0.03, size_jitter=0.12,
           z_exponent=2.0):
    """An `Ellipsoid` placed relative to the body semi-axes ``body = (A, B)``."""
    big_a, big_b = body
    x, y, z = j.pos(center[0] * big_a, center[1] * big_b, center[2], pos_jitter)
    a, b, c = j.size(axes[0] * big_a, axes[1] * big_b, axes[2], size_jitter)
    return Ellipsoid((x, y, z), (a, b, c), j.angle(angle), j.value(value),
                     tuple(map(float, shear)), tuple(map(float, bend)), float(z_exponent))


def _trunk(j: _Jitter, body):
    """Body outline (fat), muscle wall, visceral cavity; all share one gentle z curve."""
    big_a, big_b = body
    bend = tuple(float(k) for k in j.rng.uniform(-0.04, 0.04, size=2))
    parts = [
        Ellipsoid((0.0, 0.02, 0.0), (big_a, big_b, 6.0), 0.0, 0.28),
        _organ(j, body, (0.0, 0.02, 0.0), (0.93, 0.90, 6.0), 0.0, 0.10, size_jitter=0.02,
               pos_jitter=0.005),
        _organ(j, body, (0.0, -0.03, 0.0), (0.80, 0.70, 6.0), 0.0, -0.06, size_jitter=0.03,
               pos_jitter=0.01),
    ]
    return [dataclasses.replace(part, bend=bend) for part in parts]


def _thorax(j: _Jitter, body):
    """Lungs with a few vessels, heart, ribs."""
    parts = []
    for side in (-1, 1):
        lung = _organ(j, body, (side * 0.42, -0.05, -1.05), (0.34, 0.62, 0.85), side * 0.1,
                      -0.35)
        parts.append(lung)
        for _ in range(6):
            px, py = j.rng.uniform(-0.6, 0.6, size=2)
            pz = j.rng.uniform(-1.2, -0.5)
            parts.append(Ellipsoid(
                (lung.center[0] + px * lung.axes[0], lung.center[1] + py * lung.axes[1], pz),
                (0.018, 0.018, 0.35), 0.0, float(j.rng.uniform(0.2, 0.3)),
                tuple(map(float, j.rng.uniform(-0.25, 0.25, size=2)))))
    parts.append(_organ(j, body, (0.08, -0.25, -0.95), (0.30, 0.32, 0.45), 0.5, 0.08))
    for side in (-1, 1):
        for k in range(5):
            theta = np.pi * (0.15 + 0.17 * k)
            rx, ry = 0.86 * np.cos(theta) * side, -0.84 * np.sin(theta) + 0.05
            parts.append(_organ(
                j, body, (rx, ry, -1.0 + 0.22 * k), (0.11, 0.035, 0.16),
                float(np.arctan2(ry, rx) + np.pi / 2), 0.50,
                shear=(side * 0.3, -0.35), pos_jitter=0.01, size_jitter=0.08))
    return parts


def _spine(j: _Jitter, body):
    """Vertebral bodies (cortical shell, cancellous core), arches, canal; discs between."""
    discs = _organ(j, body, (0.0, 0.52, 0.0), (0.15, 0.20, 8.0), 0.0, 0.08, pos_jitter=0.0,
                   size_jitter=0.0)
    parts = [discs]
    num_vertebrae = 8
    spacing = 2.2 / num_vertebrae
    for k in range(num_vertebrae):
        z = -1.1 + (k + 0.5) * spacing
        shell = _organ(j, body, (0.0, 0.52, z), (0.16, 0.21, 0.42 * spacing), 0.0, 0.52,
                       pos_jitter=0.004, size_jitter=0.04, z_exponent=6.0)
        core = dataclasses.replace(
            shell, axes=tuple(s * f for s, f in zip(shell.axes, (0.75, 0.75, 0.88))),
            value=-0.28)
        arch = _organ(j, body, (0.0, 0.82, z), (0.13, 0.10, 0.40 * spacing), 0.0, 0.50,
                      pos_jitter=0.004, size_jitter=0.04, z_exponent=4.0)
        canal = dataclasses.replace(
            arch, axes=(arch.axes[0] * 0.6, arch.axes[1] * 0.6, arch.axes[2]), value=-0.50)
        spinous = _organ(j, body, (0.0, 0.95, z + 0.04), (0.03, 0.06, 0.35 * spacing), 0.0,
                         0.48, pos_jitter=0.004, size_jitter=0.05)
        parts += [shell, core, arch, canal, spinous]
    return parts


def _vessels(j: _Jitter, body):
    """Aorta and inferior vena cava, tubes through the whole volume."""
    bends = j.rng.uniform(-0.04, 0.04, size=4)
    return [
        _organ(j, body, (0.07, 0.33, 0.0), (0.075, 0.105, 8.0), 0.0, 0.20,
               shear=(0.02, 0.04), bend=(bends[0], bends[1]), pos_jitter=0.01,
               size_jitter=0.08),
        _organ(j, body, (-0.17, 0.30, 0.1), (0.075, 0.09, 8.0), 0.3, 0.15,
               shear=(-0.02, 0.02), bend=(bends[2], bends[3]), pos_jitter=0.01,
               size_jitter=0.08),
    ]


def _abdomen(j: _Jitter, body):
    """Liver (with gallbladder, portal vessels), spleen, stomach, kidneys."""
    parts = [
        _organ(j, body, (-0.38, -0.02, -0.15), (0.42, 0.62, 0.55), 0.35, 0.07),
        _organ(j, body, (-0.20, -0.30, 0.22), (0.09, 0.12, 0.15), 0.2, -0.12),
        _organ(j, body, (-0.34, 0.05, -0.1), (0.04, 0.04, 0.35), 0.0, 0.08,
               shear=(0.2, 0.1)),
        _organ(j, body, (0.55, 0.28, -0.25), (0.16, 0.28, 0.30), -0.6, 0.05),
        _organ(j, body, (0.28, -0.30, -0.3), (0.22, 0.22, 0.30), -0.3, 0.02),
        _organ(j, body, (0.22, -0.48, -0.45), (0.12, 0.07, 0.12), -0.3, -0.38),
    ]
    for side in (-1, 1):
        kidney = _organ(j, body, (side * 0.36, 0.45, 0.25), (0.12, 0.20, 0.30),
                        side * -0.45, 0.14)
        pelvis = dataclasses.replace(
            kidney, center=(kidney.center[0] - side * 0.03, kidney.center[1], kidney.center[2]),
            axes=(kidney.axes[0] * 0.45, kidney.axes[1] * 0.4, kidney.axes[2] * 0.6),
            value=-0.09)
        parts += [kidney, pelvis]
    return parts


def _bowel_and_pelvis(j: _Jitter, body):
    """Bowel loops with gas pockets in the lower abdomen, iliac bones at the bottom."""
    parts = []
    num_loops = int(j.rng.integers(5, 9))
    for _ in range(num_loops):
        x, y = j.rng.uniform(-0.5, 0.5), j.rng.uniform(-0.55, 0.05)
        z = j.rng.uniform(0.25, 0.95)
        loop = _organ(j, body, (x, y, z), (0.12, 0.10, 0.22), j.rng.uniform(0, np.pi), 0.09,
                      size_jitter=0.3)
        parts.append(loop)
        if j.rng.uniform() < 0.6:
            parts.append(dataclasses.replace(
                loop, center=(loop.center[0], loop.center[1] - 0.3 * loop.axes[1],
                              loop.center[2]),
                axes=tuple(s * 0.45 for s in loop.axes), value=-0.39))
    for side in (-1, 1):
        parts.append(_organ(j, body, (side * 0.24, 0.50, 0.75), (0.10, 0.12, 0.65), 0.0, 0.05,
                            shear=(side * 0.12, -0.05), pos_jitter=0.01))
    for side in (-1, 1):
        ilium = _organ(j, body, (side * 0.55, 0.45, 1.1), (0.25, 0.10, 0.35), side * 0.6, 0.55,
                       pos_jitter=0.02)
        marrow = dataclasses.replace(ilium, axes=tuple(s * f for s, f in
                                                       zip(ilium.axes, (0.8, 0.5, 0.9))),
                                     value=-0.25)
        parts += [ilium, marrow]
    return parts


def ellipsoid_components(seed: int) -> list[Ellipsoid]:
    """The ellipsoids of phantom ``seed``, in normalised coordinates (independent of shape).

    Args:
      seed: integer seed; the same seed always gives the same list.

    Returns:
      list of `Ellipsoid`, the body outline first. Their (unclipped) sum is the
      phantom before texture, see `ellipse_slice`.
    """
    j = _Jitter(int(seed))
    body = (float(j.rng.uniform(0.80, 0.90)), float(j.rng.uniform(0.56, 0.66)))
    return (_trunk(j, body) + _thorax(j, body) + _spine(j, body) + _vessels(j, body)
            + _abdomen(j, body) + _bowel_and_pelvis(j, body))


# --------------------------------------------------------------------------- cross-sections


def cross_sections(components: Sequence[Ellipsoid], z: float) -> dict[str, np.ndarray]:
    """The axial ellipses cut by the plane at height ``z``.

    Args:
      components: list of `Ellipsoid`.
      z: normalised slice height in [-1, 1].

    Returns:
      dict of float64 arrays ``[E]`` (E ellipses present at that height):
      ``cx, cy, a, b, angle, value``.
    """
    if not components:
        raise ValueError("components is empty; pass ellipsoid_components(seed).")
    p = {name: np.array([getattr(e, name) for e in components], np.float64)
         for name in ("center", "axes", "shear", "bend")}
    angle, value, power = (np.array([getattr(e, name) for e in components], np.float64)
                           for name in ("angle", "value", "z_exponent"))
    dz = z - p["center"][:, 2]
    t = dz / p["axes"][:, 2]
    keep = np.abs(t) < 1.0
    scale = z_scale(t, power)
    centre = p["center"][:, :2] + p["shear"] * dz[:, None] + p["bend"] * dz[:, None] ** 2
    return {"cx": centre[keep, 0], "cy": centre[keep, 1],
            "a": (p["axes"][:, 0] * scale)[keep], "b": (p["axes"][:, 1] * scale)[keep],
            "angle": angle[keep], "value": value[keep]}


def ellipse_slice(components: Sequence[Ellipsoid], z: float,
                  shape: tuple[int, int]) -> np.ndarray:
    """Rasterise the unclipped component sum at height ``z`` (no texture).

    This is the image whose projections `ellipse_line_integrals` gives exactly
    (up to rasterisation at the ellipse edges).

    Args:
      components: list of `Ellipsoid`.
      z: normalised slice height.
      shape: ``(H, W)``.

    Returns:
      float32 ``[H, W]``.
    """
    e = cross_sections(components, z)
    y = grid_coordinates(shape[0])[None, :, None]
    x = grid_coordinates(shape[1])[None, None, :]
    dx, dy = x - e["cx"][:, None, None], y - e["cy"][:, None, None]
    cos, sin = np.cos(e["angle"])[:, None, None], np.sin(e["angle"])[:, None, None]
    u = (dx * cos + dy * sin) / e["a"][:, None, None]
    v = (-dx * sin + dy * cos) / e["b"][:, None, None]
    inside = (u * u + v * v) <= 1.0
    return np.tensordot(e["value"], inside.astype(np.float64), axes=1).astype(np.float32)


def ellipse_line_integrals(components: Sequence[Ellipsoid], z: float, angles,
                           offsets) -> np.ndarray:
    """Analytic parallel-beam line integrals of the axial cross-section at height ``z``.

    The ray of angle ``theta`` and detector offset ``s`` is the line
    ``{(x, y): x cos(theta) + y sin(theta) = s}`` (x along columns, y along
    rows, both normalised to [-1, 1]). An ellipse of value ``v``, semi-axes
    ``a, b``, rotation ``phi`` and centre ``c`` contributes
    ``2 v a b sqrt(r^2 - t^2) / r^2`` where
    ``r^2 = a^2 cos^2(theta - phi) + b^2 sin^2(theta - phi)`` and
    ``t = s - c . (cos theta, sin theta)`` (zero where ``|t| >= r``).

    Lengths are normalised: for an ``N x N`` image with unit pixels, multiply
    by ``N / 2``, and measure ``s`` as ``2 s_pixels / N``. Texture and clipping
    of `phantom_volume` are not included: compare with `ellipse_slice`.

    Args:
      components: list of `Ellipsoid` (e.g. `ellipsoid_components(seed)`).
      z: normalised slice height.
      angles: ``[num_angles]`` radians.
      offsets: ``[num_offsets]`` normalised detector positions.

    Returns:
      float64 ``[num_angles, num_offsets]``.
    """
    e = cross_sections(components, z)
    theta = np.asarray(angles, np.float64)[:, None, None]
    s = np.asarray(offsets, np.float64)[None, :, None]
    if theta.ndim != 3 or s.ndim != 3:
        raise ValueError("angles and offsets must be 1-D arrays.")
    r2 = (e["a"] * np.cos(theta - e["angle"])) ** 2 + (e["b"] * np.sin(theta - e["angle"])) ** 2
    t = s - (e["cx"] * np.cos(theta) + e["cy"] * np.sin(theta))
    chord = 2.0 * e["a"] * e["b"] * np.sqrt(np.clip(r2 - t * t, 0.0, None)) / r2
    return np.sum(e["value"] * chord, axis=-1)


# --------------------------------------------------------------------------- rendering


def _axis_range(lo: float, hi: float, n: int) -> tuple[int, int]:
    """Indices ``[i0, i1)`` of the voxels of an ``n`` axis whose centres may lie in [lo, hi]."""
    i0 = int(np.floor(((lo + 1.0) * n - 1.0) / 2.0))
    i1 = int(np.ceil(((hi + 1.0) * n - 1.0) / 2.0)) + 1
    return max(i0, 0), min(i1, n)


def _add_component(volume: np.ndarray, e: Ellipsoid, coords) -> None:
    """Add one ellipsoid into ``volume [D, H, W]`` in place, touching only its bounding box."""
    zs, ys, xs = coords
    depth, height, width = volume.shape
    (x0, y0, z0), (a, b, c) = e.center, e.axes
    k0, k1 = _axis_range(z0 - c, z0 + c, depth)
    dz = zs[k0:k1] - z0
    present = np.abs(dz / c) < 1.0
    if k1 <= k0 or not np.any(present):
        return
    scale = z_scale(dz / c, e.z_exponent)
    cx = x0 + e.shear[0] * dz + e.bend[0] * dz ** 2
    cy = y0 + e.shear[1] * dz + e.bend[1] * dz ** 2
    cos, sin = np.cos(e.angle), np.sin(e.angle)
    hx = np.hypot(a * cos, b * sin) * scale
    hy = np.hypot(a * sin, b * cos) * scale
    i0, i1 = _axis_range(float(np.min(cy - hy)), float(np.max(cy + hy)), height)
    j0, j1 = _axis_range(float(np.min(cx - hx)), float(np.max(cx + hx)), width)
    if i1 <= i0 or j1 <= j0:
        return
    ddx = xs[None, None, j0:j1] - cx[:, None, None]
    ddy = ys[None, i0:i1, None] - cy[:, None, None]
    u = (ddx * cos + ddy * sin) / (a * scale[:, None, None] + 1e-12)
    v = (-ddx * sin + ddy * cos) / (b * scale[:, None, None] + 1e-12)
    inside = (u * u + v * v <= 1.0) & present[:, None, None]
    volume[k0:k1, i0:i1, j0:j1] += np.float32(e.value) * inside


def _interp_axis(values: np.ndarray, axis: int, n: int) -> np.ndarray:
    """Linear interpolation of a lattice spanning [-1, 1] along ``axis`` to ``n`` cell centres."""
    m = values.shape[axis]
    pos = (grid_coordinates(n) + 1.0) / 2.0 * (m - 1)
    i0 = np.clip(np.floor(pos).astype(int), 0, m - 2)
    w = (pos - i0).astype(np.float32)
    shape = [1] * values.ndim
    shape[axis] = n
    w = w.reshape(shape)
    return np.take(values, i0, axis) * (1 - w) + np.take(values, i0 + 1, axis) * w


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int, int],
                 lattice: tuple[int, int, int]) -> np.ndarray:
    """Trilinearly interpolated Gaussian lattice noise, float32 ``shape``, std about 1.

    The lattice spans [-1, 1]^3, so the noise is the same continuous field for any ``shape``.
    """
    values = rng.standard_normal(lattice).astype(np.float32)
    for axis, n in enumerate(shape):
        values = _interp_axis(values, axis, n)
    return values


def _check_shape(shape) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be (D, H, W) with positive sizes, got {shape}.")
    return shape


def phantom_volume(seed: int, shape: tuple[int, int, int] = (64, 64, 64)) -> np.ndarray:
    """A CT-like torso phantom, deterministic from ``seed``.

    Args:
      seed: integer seed (only a local ``np.random.default_rng(seed)`` is used).
      shape: ``(D, H, W)``; D slices along z (superior to inferior), any sizes.

    Returns:
      float32 ``[D, H, W]`` in [0, 1], exactly 0 outside the body.
    """
    shape = _check_shape(shape)
    components = ellipsoid_components(seed)
    coords = tuple(grid_coordinates(n) for n in shape)
    volume = np.zeros(shape, np.float32)
    body = np.zeros(shape, np.float32)
    _add_component(body, dataclasses.replace(components[0], value=1.0), coords)
    for component in components:
        _add_component(volume, component, coords)
    rng = np.random.default_rng([int(seed), 1])
    for amplitude, lattice in zip(TEXTURE_AMPLITUDES, TEXTURE_LATTICES):
        volume += amplitude * smooth_noise(rng, shape, lattice)
    volume *= body
    return np.clip(volume, 0.0, 1.0)


def phantom_slices(seed: int, num_volumes: int,
                   shape: tuple[int, int, int] = (64, 64, 64)) -> np.ndarray:
    """Axial slices of ``num_volumes`` phantoms with seeds ``seed, seed + 1, ...``.

    Hold out seeds outside ``[seed, seed + num_volumes)`` for evaluation.

    Args:
      seed: seed of the first volume.
      num_volumes: number of volumes.
      shape: ``(D, H, W)`` of each volume.

    Returns:
      float32 ``[num_volumes * D, H, W]``.
    """
    if num_volumes < 1:
        raise ValueError(f"num_volumes must be >= 1, got {num_volumes}.")
    shape = _check_shape(shape)
    return np.concatenate([phantom_volume(seed + i, shape) for i in range(num_volumes)])
