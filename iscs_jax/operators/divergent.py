"""Shared core of the divergent-beam projectors (`ConeBeam`, `FanBeam`): geometry,
a Joseph-style forward projection and filtered backprojection (FDK / fan-beam FBP).

Geometry (world units, e.g. mm; see `cone_beam` for the full statement). At angle
a the source is at ``S (sin a, -cos a, 0)``, the flat detector's centre at
``O (-sin a, cos a, 0)``, its u axis (columns) is ``(cos a, sin a, 0)`` and its v
axis (rows) is +z. Voxel i of an axis of n voxels of size s is centred at
``(i - n/2 + 0.5) s``.

Forward projection (Joseph's method, one choice per ray). Each ray is sampled
where it crosses the planes of the in-plane axis it advances most along, in voxel
units: y planes (``y = const``) when ``|d_y| / dy >= |d_x| / dx``, else x planes.
In each plane the volume is bilinearly interpolated, in the other in-plane axis
and in z, and the samples are summed times the ray length between two planes.
Because the in-plane ray through detector column c does not depend on the row,
the interpolation is separable: per plane, a gather of the two in-plane taps for
every (view, column) gives a ``[views, cols, D]`` sheet of z-profiles, and a
gather of two z taps per row gives ``[views, cols, rows]``. The loop runs over
planes (``lax.scan``) with all (view, pixel) pairs of a chunk of views
vectorised; views run in chunks (``lax.map``) so memory stays
O(chunk * cols * (rows + D)).

Views whose rays all step along y form the "y pass", those with some rays
stepping along x also join the "x pass" (a view can be in both: a per-ray mask
picks the pass; `cone_beam` packs each pass's own rays instead, and its adjoint
backprojects each view once with each ray's own pass's parameters). The adjoint
(`backproject_pass`) is the transpose of this exact program written as gathers:
voxel-driven, a scan over views, each voxel reading the few detector columns (and rows)
whose interpolation taps reach it with the forward's own weights; it equals
``jax.linear_transpose`` of the forward (`transpose_pass`, scatter-adds) to float32
rounding, so <A x, y> = <x, AT y> up to float rounding.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from iscs_jax.operators import filters
from iscs_jax.operators.parallel_beam import _hat, _linear_taps, _scan_sum

#: The two passes, by the in-plane axis the planes are normal to.
MODES = ("y", "x")
#: Rows of the per-view parameter table (see `plane_params`).
NUM_PARAMS = 6
#: Most candidate columns / rows per voxel the gather-based transpose unrolls.
MAX_TAPS = 12


def centres(n: int, spacing: float) -> np.ndarray:
    """Voxel / pixel centre coordinates ``(i - n/2 + 0.5) * spacing``, float64 ``[n]``."""
    return (np.arange(n) - n / 2 + 0.5) * spacing


def ray_directions(angles: np.ndarray, source_origin: float, origin_detector: float,
                   u: np.ndarray):
    """Source position and in-plane ray direction per (view, column).

    Returns:
      ``(sx, sy)`` each ``[V, 1]`` and ``(dx, dy)`` each ``[V, C]``: the ray through
      column u goes from the source towards source + (dx, dy) (length: source to
      detector pixel, in-plane).
    """
    a = np.asarray(angles, np.float64)[:, None]
    distance = source_origin + origin_detector
    sx, sy = source_origin * np.sin(a), -source_origin * np.cos(a)
    dx = -distance * np.sin(a) + u[None, :] * np.cos(a)
    dy = distance * np.cos(a) + u[None, :] * np.sin(a)
    return (sx, sy), (dx, dy)


def y_pass_mask(dx: np.ndarray, dy: np.ndarray, spacing_yx) -> np.ndarray:
    """Per ray: True when it advances at least as much along y as along x, in voxels."""
    return np.abs(dy) / spacing_yx[0] >= np.abs(dx) / spacing_yx[1]


def plane_params(mode: str, source, direction, plane_shape, spacing_yx) -> np.ndarray:
    """Per (view, column) the affine plane-crossing parameters of one pass.

    The ray crosses plane j (index along the stepping axis) at ray parameter
    ``lam = lam0 + lam1 j`` (0 at the source, 1 at the detector) and at index
    ``t = t0 + t1 j`` along the other in-plane axis.

    Args:
      mode: "y" (planes y = const, lines along x) or "x".
      source, direction: from `ray_directions`.
      plane_shape: (H, W).
      spacing_yx: (dy, dx).

    Returns:
      float32 ``[V, NUM_PARAMS, C]``: lam0, lam1, t0, t1, the step length per
      plane divided by the ray length (0 for rays of the other pass), and the
      squared in-plane ray length.
    """
    (sx, sy), (dx, dy) = source, direction
    inside = y_pass_mask(dx, dy, spacing_yx)
    if mode == "x":
        sx, sy, dx, dy = sy, sx, dy, dx
        plane_shape, spacing_yx, inside = plane_shape[::-1], spacing_yx[::-1], ~inside
    step, along = spacing_yx  # plane spacing, spacing of the interpolated axis
    num_planes, num_lines = plane_shape
    safe_dy = np.where(inside, dy, 1.0)
    lam0 = (centres(num_planes, step)[0] - sy) / safe_dy
    lam1 = step / safe_dy
    first = centres(num_lines, along)[0]
    t0 = (sx + lam0 * dx - first) / along
    t1 = lam1 * dx / along
    weight = np.where(inside, step / np.abs(safe_dy), 0.0)
    table = [lam0, lam1, t0, t1, weight, dx ** 2 + dy ** 2]
    table = [np.broadcast_to(np.where(inside, p, 0.0), dx.shape) for p in table]
    return np.stack(table, axis=1).astype(np.float32)


def passes(angles, source_origin, origin_detector, u, plane_shape, spacing_yx):
    """The static passes: ``[(mode, view indices [n], params [n, NUM_PARAMS, C])]``."""
    source, direction = ray_directions(np.asarray(angles), source_origin, origin_detector, u)
    in_y = y_pass_mask(*direction, spacing_yx)
    out = []
    for mode, member in zip(MODES, (in_y.any(axis=1), (~in_y).any(axis=1))):
        index = np.nonzero(member)[0]
        if index.size:
            params = plane_params(mode, (source[0][index], source[1][index]),
                                  (direction[0][index], direction[1][index]), plane_shape,
                                  spacing_yx)
            out.append((mode, index, params))
    return out


def planes_first(volume: jax.Array, mode: str) -> jax.Array:
    """``[H, W, B] -> [planes, lines, B]``: identity for the y pass, H <-> W for x."""
    return volume if mode == "y" else jnp.swapaxes(volume, 0, 1)


def _project_chunk(planes: jax.Array, params: jax.Array, z_rows) -> jax.Array:
    """One chunk of views (or of rays packed as views) of one pass.

    Args:
      planes: ``[P, L, B]`` (B: z for cone beam, slices for fan beam).
      params: ``[n, NUM_PARAMS, C]``.
      z_rows: None (fan beam: no z interpolation), or ``(scale [R], offset)``
        with the z index of row r at ray parameter lam ``lam * scale[r] + offset``.

    Returns:
      ``[n, C, R]`` (cone) or ``[n, C, B]`` (fan): line integrals.
    """
    if z_rows is not None:
        return _project_chunk_cone(planes, params, z_rows)
    lam0, lam1, t0, t1, weight, inplane2 = (params[:, k] for k in range(NUM_PARAMS))
    num_lines = planes.shape[1]

    def plane_term(inputs):
        plane, j = inputs  # [L, B], scalar
        t = t0 + t1 * j
        return sum(w[..., None] * plane[k] for k, w in _linear_taps(t, num_lines))  # [n, C, B]

    total = _scan_sum(plane_term, (planes, jnp.arange(planes.shape[0], dtype=jnp.float32)))
    return total * (weight * jnp.sqrt(inplane2))[..., None]


def _project_chunk_cone(planes: jax.Array, params: jax.Array, z_rows) -> jax.Array:
    """`_project_chunk` of the cone beam: the bilinear (line, z) interpolation of each plane
    at every (ray, row), as four gathers from the zero-padded volume.

    The per-(plane, ray) line taps, weights and ray parameters are computed for all planes
    of the chunk before the scan over planes (``[P, n, C]`` tables), so the fused gather of
    each plane only computes z. Reading zeros outside the volume replaces the forward's
    bounds tests: a tap outside the grid has weight 0 there and reads 0 here; positions
    further out are clamped next to the grid, where their weights are 0.
    """
    lam0, lam1, t0, t1, weight, inplane2 = (params[:, k] for k in range(NUM_PARAMS))
    num_planes, num_lines, depth = planes.shape
    width = depth + 2  # padded z
    flat = jnp.pad(planes, ((0, 0), (1, 1), (1, 1))).reshape(-1)
    j = jnp.arange(num_planes, dtype=jnp.float32)[:, None, None]  # [P, 1, 1]
    t = t0 + t1 * j  # [P, n, C]
    line = jnp.clip(jnp.floor(t), -1.0, num_lines - 1.0)
    base = ((jnp.arange(num_planes, dtype=jnp.int32)[:, None, None] * (num_lines + 2)
             + line.astype(jnp.int32) + 1) * width + 1)  # padded (plane, line, z = 0)
    tables = (_hat(t - line), _hat(t - line - 1.0), lam0 + lam1 * j, base)
    scale, offset = z_rows[0], z_rows[1]

    def plane_term(inputs):
        w0, w1, lam, base = (x[..., None] for x in inputs)  # [n, C, 1]
        z = lam * scale + offset  # [n, C, R]
        k = jnp.clip(jnp.floor(z), -1.0, depth - 1.0)
        index = (base + k.astype(jnp.int32)).astype(jnp.uint32)  # >= 0: no wrap test
        read = lambda shift: flat.at[index + np.uint32(shift)].get(  # noqa: E731
            mode="promise_in_bounds")
        return (_hat(z - k) * (w0 * read(0) + w1 * read(width))
                + _hat(z - k - 1.0) * (w0 * read(1) + w1 * read(width + 1)))

    total = _scan_sum(plane_term, tables)
    length = jnp.sqrt(inplane2[..., None] + z_rows[2] ** 2)  # [n, C, R] source-pixel length
    return total * weight[..., None] * length


def project_pass(volume: jax.Array, mode: str, params: jax.Array, z_rows,
                 chunk: int) -> jax.Array:
    """All views of one pass, ``chunk`` views at a time.

    Args:
      volume: ``[H, W, B]``.
      mode, params: a pass of `passes` (params as a jax array ``[n, NUM_PARAMS, C]``).
      z_rows: see `_project_chunk` (cone beam: ``(scale, offset, v)``).
      chunk: views per `lax.map` step.

    Returns:
      ``[n, C, R or B]``.
    """
    planes = planes_first(volume, mode)
    count = params.shape[0]
    num_chunks = -(-count // chunk)
    padded = jnp.pad(params, ((0, num_chunks * chunk - count), (0, 0), (0, 0)))
    chunks = padded.reshape(num_chunks, chunk, *params.shape[1:])
    out = jax.lax.map(lambda p: _project_chunk(planes, p, z_rows), chunks)
    return out.reshape(num_chunks * chunk, *out.shape[2:])[:count]


def transpose_pass(values: jax.Array, volume_shape, mode: str, params: jax.Array, z_rows,
                   chunk: int) -> jax.Array:
    """The exact transpose of `project_pass` by ``jax.linear_transpose`` (scatter-adds):
    ``[n, C, R or B] -> [H, W, B]``. The reference for `backproject_pass`."""
    fn = functools.partial(project_pass, mode=mode, params=params, z_rows=z_rows, chunk=chunk)
    (volume,) = jax.linear_transpose(fn, jax.ShapeDtypeStruct(volume_shape, jnp.float32))(values)
    return volume


class Orbit(NamedTuple):
    """Static scalars the gather-based transpose needs (hashable)."""
    source_origin: float
    origin_detector: float
    du: float
    cols: int
    plane_shape: tuple[int, int]  # (H, W)
    spacing_yx: tuple[float, float]
    column_reach: float  # columns within one voxel (along the line axis) of a point
    column_taps: int  # candidate columns per (view, voxel line)
    row_taps: int  # candidate detector rows per (ray, z voxel); 0 for the fan beam
    dv_over_dz: float

    @property
    def gathers_fit(self) -> bool:
        """Whether `backproject_pass` applies (tap counts at most `MAX_TAPS`)."""
        return max(self.column_taps, self.row_taps) <= MAX_TAPS


def make_orbit(source_origin, origin_detector, du, cols, plane_shape, spacing_yx,
               rows=None, dv=1.0, dz=1.0) -> Orbit:
    """The `Orbit` of a geometry, with tap counts bounding how many detector columns
    (rows) a voxel's interpolation footprint can reach.

    Rays of adjacent columns are at least ``(S - r) du cos^2(gamma_max) / (S + O)`` apart
    inside the volume (r: its in-plane radius), so the columns reaching a voxel line point lie
    strictly within ``column_reach = 1 / spacing`` of the column through it (spacing in units
    of the interpolated axis): at most ``ceil(2 column_reach)`` of them, the first being the
    first integer above ``centre - column_reach``; likewise rows, whose z index advances at
    least ``lam_min dv / dz`` per row.
    """
    distance = source_origin + origin_detector
    radius = 0.5 * float(np.hypot(plane_shape[0] * spacing_yx[0], plane_shape[1] * spacing_yx[1]))
    radius += 2 * max(spacing_yx)  # interpolation reaches one voxel past the volume
    u_max = cols * du / 2
    cos2 = distance**2 / (distance**2 + u_max**2)
    spacing = (source_origin - radius) * du * cos2 / (distance * max(spacing_yx))
    column_reach = 1.0 / spacing
    column_taps = int(np.ceil(2 * column_reach))
    row_taps = 0
    if rows is not None:
        lam_min = (source_origin - radius) / np.hypot(distance, u_max)
        row_taps = int(np.ceil(2 / (lam_min * dv / dz)))
    return Orbit(float(source_origin), float(origin_detector), float(du), int(cols),
                 tuple(plane_shape), tuple(spacing_yx), float(column_reach), column_taps, row_taps,
                 float(dv / dz))


def _view_setup(values, params, trig, z_rows, mode: str, orbit: Orbit, in_y=None):
    """Per-view tables of the gather-based transpose of `_project_chunk` (see
    `backproject_pass`): ``(val, candidates)``.

    ``val``: the view's values times the forward's per-ray weights, ``[C, B]`` (fan), or for
    the cone beam ``[C, R]`` with ``orbit.row_taps`` zero rows padded on both sides of R,
    flattened. ``candidates``: for each of the ``orbit.column_taps`` detector columns that
    can reach a (plane, line) point (the first being the first column above
    ``centre - column_reach``), ``[P, L]`` arrays: the forward's in-plane weight of that
    column at the point (recomputed from its plane-crossing parameters), the column (fan)
    or the offset of its padded row 0 in ``val`` (cone), and for the cone beam the z index
    of its row 0, its step per row and the inverse step at the point's plane.

    ``in_y`` (``[C]`` bool, mode "y" only): the view's rays of both passes at once, each
    column with its own pass's parameters (a y ray's plane is the point's y index and its
    line the x index, an x ray's the reverse), so a view in both passes is set up and
    backprojected once.
    """
    lam0, lam1, t0, t1, weight, inplane2 = (params[k] for k in range(NUM_PARAMS))  # [C]
    plane_shape, spacing = orbit.plane_shape, orbit.spacing_yx
    if mode == "x":
        plane_shape, spacing = plane_shape[::-1], spacing[::-1]
    lines = jnp.asarray(centres(plane_shape[1], spacing[1]), jnp.float32)[None, :]  # [1, L]
    planes = jnp.asarray(centres(plane_shape[0], spacing[0]), jnp.float32)[:, None]  # [P, 1]
    line_index = jnp.arange(plane_shape[1], dtype=jnp.float32)
    j = jnp.arange(plane_shape[0], dtype=jnp.float32)[:, None]  # [P, 1]
    px, py = (lines, planes) if mode == "y" else (planes, lines)
    sin, cos = trig[0], trig[1]
    distance = orbit.source_origin + orbit.origin_detector
    u = distance * (px * cos + py * sin) / (orbit.source_origin - (px * sin - py * cos))
    centre = u / orbit.du + orbit.cols / 2 - 0.5  # [P, L] column through each point
    start = jnp.floor(centre - orbit.column_reach) + 1.0
    if z_rows is None:
        val = values * (weight * jnp.sqrt(inplane2))[:, None]
    else:
        val = values * weight[:, None] * jnp.sqrt(inplane2[:, None] + z_rows[2] ** 2)
        val = jnp.pad(val, ((0, 0), (orbit.row_taps, orbit.row_taps))).reshape(-1)
        scale, offset = z_rows[0], z_rows[1]
        rows = scale.shape[0]
        step = (scale[-1] - scale[0]) / max(rows - 1, 1)
    candidates = []
    for m in range(orbit.column_taps):
        c = start + m
        index = jnp.clip(c, 0, orbit.cols - 1).astype(jnp.int32)  # [P, L]
        plane, line = j, line_index
        if in_y is not None:  # each column in its own pass's (plane, line) coordinates
            mine = in_y[index]
            plane, line = jnp.where(mine, j, line_index), jnp.where(mine, line_index, j)
        t = t0[index] + t1[index] * plane
        w = jnp.where((c >= 0) & (c <= orbit.cols - 1),
                      jnp.maximum(0.0, 1.0 - jnp.abs(t - line)), 0.0)
        if z_rows is None:
            candidates.append((w, index))
            continue
        lam = lam0[index] + lam1[index] * plane  # as in the forward
        slope = jnp.where(lam > 0, lam * orbit.dv_over_dz, 1.0)
        candidates.append((w, index * (rows + 2 * orbit.row_taps) + orbit.row_taps,
                           lam * scale[0] + offset, lam * step, 1.0 / slope))
    return val, tuple(candidates)


def _view_apply(val, candidates, depth: int, row_taps: int, rows: int) -> jax.Array:
    """One view's backprojection from its `_view_setup` tables: ``[P, L, D|B]``.

    Cone beam: rows r of a column reaching z voxel k satisfy |z_r - k| < 1 with
    z_r = z0 + r dz_r (the forward's z index, scale[r] as scale[0] + r step, equal to its
    table up to float32 rounding); the ``row_taps`` candidates start at the first row
    above k - 1, and those outside the detector read the zero padding (no bounds test).
    """
    total = 0.0
    if row_taps == 0:  # fan beam: a slice-contiguous gather per candidate
        for w, index in candidates:
            total = total + w[..., None] * val[index]
        return total
    k = jnp.arange(depth, dtype=jnp.float32)
    for w, base, z0, dz, inverse in candidates:
        z0, dz, inverse = z0[..., None], dz[..., None], inverse[..., None]
        first = jnp.clip(jnp.floor((k - 1.0 - z0) * inverse) + 1.0, -row_taps, rows)
        # Unsigned (the padding makes every index >= 0): no negative-index wrap per gather.
        index = (base[..., None] + first.astype(jnp.int32)).astype(jnp.uint32)  # [P, L, D]
        sheet = 0.0
        for m in range(row_taps):
            weight = jnp.maximum(0.0, 1.0 - jnp.abs(z0 + (first + m) * dz - k))
            sheet = sheet + weight * val.at[index + np.uint32(m)].get(mode="promise_in_bounds")
        total = total + w[..., None] * sheet
    return total


def backproject_pass(values: jax.Array, mode: str, params: jax.Array, trig: jax.Array, z_rows,
                     orbit: Orbit, depth: int, chunk: int, in_y=None) -> jax.Array:
    """The transpose of `project_pass` written as gathers (no scatter):
    ``[n, C, R or B] -> [H, W, D or B]`` (D: z voxels; B: the fan beam's slices).

    Voxel-driven, a scan over the views: every (plane, line) point of the volume finds the
    ``orbit.column_taps`` detector columns whose rays can reach it, and (cone beam) for each
    z voxel the ``orbit.row_taps`` rows of that column, with the forward's own weights. The
    per-view ``[P, L]`` tables (`_view_setup`) are computed one step ahead and carried, so
    that XLA materialises them instead of recomputing them for every voxel inside the fused
    gather (`_view_apply`); memory is the volume plus a view's tables.

    Args:
      values: ``[n, C, R|B]``; params ``[n, NUM_PARAMS, C]``; trig ``[n, 2]`` (sin, cos of
        each view's angle); z_rows as for `project_pass`; orbit from `make_orbit`;
      depth: D (cone) or B (fan); chunk: unused (the forward's views per step);
      in_y: None, or (mode "y") ``[n, C]`` bool, True for the y pass's rays: then params
        holds each ray's own pass's parameters (`plane_params` of both modes summed) and
        every view is backprojected once, whichever passes its rays belong to.
    """
    del chunk
    if in_y is None:
        in_y = jnp.zeros(values.shape[:2], bool)
        setup = lambda v, p, t, _: _view_setup(v, p, t, z_rows, mode, orbit)  # noqa: E731
    else:
        setup = lambda v, p, t, m: _view_setup(v, p, t, z_rows, mode, orbit, m)  # noqa: E731
    plane_shape = orbit.plane_shape if mode == "y" else orbit.plane_shape[::-1]
    rows = 0 if z_rows is None else z_rows[0].shape[0]
    row_taps = 0 if z_rows is None else orbit.row_taps
    apply = lambda tables: _view_apply(*tables, depth, row_taps, rows)  # noqa: E731

    def step(carry, view):
        volume, tables = carry
        return (volume + apply(tables), setup(*view)), None

    volume = jnp.zeros((*plane_shape, depth), jnp.float32)
    (volume, tables), _ = jax.lax.scan(
        step, (volume, setup(values[0], params[0], trig[0], in_y[0])),
        (values[1:], params[1:], trig[1:], in_y[1:]))
    return planes_first(volume + apply(tables), mode)


# ----- filtered backprojection ---------------------------------------------------------------


def scan_weights(angles: np.ndarray, fan_angles: np.ndarray) -> tuple[np.ndarray, str]:
    """Per (view, column) angular quadrature weights of FDK / fan-beam FBP, and the scan kind.

    * "full": angles cover 360 degrees: ``step / 2`` (every line is measured twice);
    * "short": they cover 180 degrees plus the fan (evenly spaced from angles[0]):
      ``step * parker(beta, gamma)`` (Parker 1982, over the scan's own range
      ``pi + 2 delta``), so each line counts once;
    * "limited": less than that: ``step`` (each measured line once; missing lines
      are missing).

    Args:
      angles: ``[V]`` radians, evenly spaced.
      fan_angles: ``[C]`` fan angle gamma = atan(u / (S + O)) of each column.

    Returns:
      (float64 ``[V, C]``, kind).
    """
    angles = np.asarray(angles, np.float64)
    count = angles.size
    step = 2 * np.pi if count == 1 else abs(angles[-1] - angles[0]) / (count - 1)
    coverage = count * step
    gamma = np.asarray(fan_angles)[None, :]
    ones = np.ones((count, gamma.size))
    if coverage >= 2 * np.pi * (1 - 1e-6):
        return ones * (2 * np.pi / count) / 2, "full"
    scan_range = (count - 1) * step  # beta of the last view
    delta = (scan_range - np.pi) / 2
    if delta < np.abs(gamma).max():
        return ones * step, "limited"
    beta = np.abs(angles - angles[0])[:, None]
    return step * parker_weights(beta, gamma, delta), "short"


def parker_weights(beta: np.ndarray, gamma: np.ndarray, delta: float) -> np.ndarray:
    """Parker's short-scan weights for this geometry's orientation.

    The ray (beta, gamma) is measured again at (beta + pi - 2 gamma, -gamma); the
    weights of each such pair sum to 1 over beta in [0, pi + 2 delta].

    Args:
      beta: ``[V, 1]`` angle from the first view (radians).
      gamma: ``[1, C]`` fan angle of each column, |gamma| <= delta.
      delta: half the overscan, (scan range - pi) / 2.
    """
    rise = np.clip(beta / np.maximum(2 * (delta + gamma), 1e-12), 0.0, 1.0)
    fall = np.clip((np.pi + 2 * delta - beta) / np.maximum(2 * (delta - gamma), 1e-12), 0.0, 1.0)
    return np.sin(np.pi / 2 * rise) ** 2 * np.sin(np.pi / 2 * fall) ** 2


def ramp_filter_rows(y: jax.Array, filter_name: str, spacing: float) -> jax.Array:
    """Ramp-filters ``y [..., C]`` along its last axis for detector spacing ``spacing``."""
    cols = y.shape[-1]
    response = filters.fbp_filter(filter_name, filters.padded_length(cols))
    size = 2 * (response.shape[0] - 1)
    spectrum = jnp.fft.rfft(y, n=size, axis=-1) * response
    return (jnp.fft.irfft(spectrum, n=size, axis=-1)[..., :cols] / spacing).astype(jnp.float32)


def backproject_filtered(q: jax.Array, angles, source_origin, origin_detector, plane_shape,
                         spacing_yx, du, z_rows) -> jax.Array:
    """Voxel-driven weighted backprojection: ``sum_views (S / L)^2 q(u(X), v(X))``.

    Args:
      q: filtered, weighted projections ``[V, C, R]`` (cone) or ``[V, C, B]`` (fan).
      z_rows: None (fan: no v interpolation) or ``(z [D], dv)``: voxel z centres and
        the row spacing.

    Returns:
      ``[H, W, D]`` (cone) or ``[H, W, B]`` (fan).
    """
    height, width = plane_shape
    y = jnp.asarray(centres(height, spacing_yx[0]), jnp.float32)[:, None]
    x = jnp.asarray(centres(width, spacing_yx[1]), jnp.float32)[None, :]
    distance = source_origin + origin_detector
    trig = jnp.asarray(np.stack([np.sin(angles), np.cos(angles)], -1), jnp.float32)
    cols = q.shape[1]

    def view_term(inputs):
        view, (sin, cos) = inputs  # [C, R or B]
        depth = source_origin - (x * sin - y * cos)  # L: distance from source, [H, W]
        magnification = distance / depth
        u = magnification * (x * cos + y * sin)
        sheet = sum(w[..., None] * view[k]
                    for k, w in _linear_taps(u / du + cols / 2 - 0.5, cols))  # [H, W, R|B]
        if z_rows is not None:
            z, dv = z_rows
            rows = sheet.shape[-1]
            v = magnification[..., None] * z / dv + rows / 2 - 0.5  # [H, W, D]
            sheet = sum(w * jnp.take_along_axis(sheet, k, axis=-1)
                        for k, w in _linear_taps(v, rows))
        return sheet * ((source_origin / depth) ** 2)[..., None]

    return _scan_sum(view_term, (q, trig))


def transpose_pair(forward, adjoint):
    """Jitted ``(A, AT)`` of an operator (static first argument), each the other's VJP.

    Args:
      forward: ``forward(op, x) -> y``, linear in ``x``.
      adjoint: ``adjoint(op, y) -> x``, its exact transpose.

    Returns:
      ``(A, AT)``: gradients through ``A`` are ``AT`` and through ``AT`` are ``A``, so
      differentiating a projector costs one matched projection, not XLA's scatter transpose.
    """
    @functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
    def project(op, x):
        return forward(op, x)

    @functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
    def backproject(op, y):
        return adjoint(op, y)

    project.defvjp(lambda op, x: (project(op, x), None),
                   lambda op, _, ct: (backproject(op, ct),))
    backproject.defvjp(lambda op, y: (backproject(op, y), None),
                       lambda op, _, ct: (project(op, ct),))
    return jax.jit(project, static_argnums=0), jax.jit(backproject, static_argnums=0)
