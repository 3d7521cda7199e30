"""Cone-beam CT: circular orbit, flat detector, exact adjoint, FDK, and a sharded form.

Geometry (other code depends on exactly this):

* The volume ``[D, H, W]`` is (z, y, x), centred at the origin; voxel i of an axis
  of n voxels of size s is centred at ``(i - n/2 + 0.5) s``; ``voxel_size = (dz,
  dy, dx)``.
* At angle a (radians) the source is at ``(x, y, z) = (S sin a, -S cos a, 0)``,
  ``S = source_origin``; the detector centre at ``(-O sin a, O cos a, 0)``,
  ``O = origin_detector``. The detector's u axis (columns) is ``(cos a, sin a,
  0)``, its v axis (rows) is +z.
* ``detector_shape = (rows, cols)``, ``detector_spacing = (dv, du)``; pixel (r, c)
  is centred at ``v = (r - rows/2 + 0.5) dv``, ``u = (c - cols/2 + 0.5) du``.
* ``A(x)`` ``[D, H, W] -> [views, rows, cols]``: the integral of x along the
  segment from the source to each pixel centre, in the units of ``voxel_size``.

The discretisation (Joseph's method, separable gathers, chunks of views) is
described in `operators.divergent`; `A` projects each pass's own rays packed in rows
(`_packed_rays`), and ``AT`` is its exact transpose, written as gathers too
(`divergent.backproject_pass`: per view, for each voxel the few detector columns and
rows whose interpolation taps reach it, with the forward's own weights, each view once
whichever passes its rays belong to: `_merged_rays`), and both are
wrapped in a ``jax.custom_vjp`` so that gradients through ``A`` are ``AT`` (and
vice versa) without storing per-plane interpolation indices.

Sharding (``coupling = "global"``: rays cross slices). Inside ``jax.shard_map``
over slice blocks, `A_sharded` all-gathers the volume (D H W floats received per
device), projects this device's share of the views (each pass's views are split
in contiguous blocks), and `AT_sharded` backprojects its views into a whole
volume and ``psum_scatter``s it back into slabs (D H W floats sent). A normal
operator ``AT A`` therefore moves about 2 D H W floats per device per
application, independent of the view count, and the views' work is split evenly.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from iscs_jax.operators import divergent, filters, scan


def _positive_tuple(value, length: int, name: str, kind=float) -> tuple:
    items = tuple(np.asarray(value, np.float64).reshape(-1))
    if len(items) != length or not all(np.isfinite(items)) or min(items) <= 0:
        raise ValueError(f"{name} must be {length} positive numbers, got {value!r}.")
    if kind is int:
        if any(int(v) != v for v in items):
            raise ValueError(f"{name} must be {length} positive integers, got {value!r}.")
        return tuple(int(v) for v in items)
    return tuple(float(v) for v in items)


@dataclasses.dataclass(frozen=True)
class ConeBeam:
    """Circular-orbit flat-detector cone-beam projector (see the module docstring).

    Hashable, so it can be a static ``jit`` argument.

    Attributes:
      volume_shape: (D, H, W).
      angles: view angles in radians.
      source_origin: S, source to rotation axis (world units, e.g. mm).
      origin_detector: O, rotation axis to detector.
      detector_shape: (rows, cols).
      detector_spacing: (dv, du).
      voxel_size: (dz, dy, dx).
      view_chunk: views (rows of ``cols`` rays) `A` projects together (memory
        O(view_chunk * cols * (rows + D))); `AT` backprojects one view at a time.
      filter: ramp window of `fdk` (a key of ``filters.FILTERS``).
    """

    volume_shape: tuple[int, int, int]
    angles: tuple[float, ...]
    _: dataclasses.KW_ONLY
    source_origin: float
    origin_detector: float
    detector_shape: tuple[int, int]
    detector_spacing: tuple[float, float]
    voxel_size: tuple[float, float, float] = (1.0, 1.0, 1.0)
    view_chunk: int = 8
    filter: str = "ramp"

    coupling: ClassVar[str] = "global"
    baseline_name: ClassVar[str] = "fdk"

    @classmethod
    def from_settings(cls, volume_shape, *, plane: str = "axial", filter_name: str = "ramp",
                      preset: str = "scaled", geometry: str = "sparse_view", num_views: int,
                      range_degrees: float | None = None, view_chunk: int = 8) -> "ConeBeam":
        """A circular scan of a ``[D, H, W]`` volume in the geometry of a preset.

        Args:
          volume_shape: ``(D, H, W)`` in unit voxels.
          plane: must be ``"axial"``.
          filter_name: the FDK filter of `baseline`.
          preset: the distances and detector (`scan.divergent_geometry`).
          geometry, num_views, range_degrees: the views over 360 degrees (`scan.view_angles`).
          view_chunk: views projected together (memory against speed, see the attribute).
        """
        scan.require_axial(plane, "cone_beam")
        volume_shape = tuple(volume_shape)
        g = scan.divergent_geometry(preset, volume_shape)
        return cls(volume_shape, scan.view_angles(geometry, num_views, range_degrees, 360.0),
                   source_origin=g["source_origin"], origin_detector=g["origin_detector"],
                   detector_shape=(g["rows"], g["cols"]),
                   detector_spacing=(g["spacing"], g["spacing"]), view_chunk=view_chunk,
                   filter=filter_name)

    def describe(self) -> str:
        """One line, e.g. ``"cone_beam sparse_view, 20 views"``."""
        return f"cone_beam {scan.angle_coverage(self.angles, 360.0)}, {self.num_views} views"

    def __post_init__(self):
        fix = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        fix("volume_shape", _positive_tuple(self.volume_shape, 3, "volume_shape", int))
        fix("detector_shape", _positive_tuple(self.detector_shape, 2, "detector_shape", int))
        fix("detector_spacing", _positive_tuple(self.detector_spacing, 2, "detector_spacing"))
        fix("voxel_size", _positive_tuple(self.voxel_size, 3, "voxel_size"))
        angles = np.asarray(self.angles, np.float64).reshape(-1)
        if angles.size == 0 or not np.all(np.isfinite(angles)):
            raise ValueError("angles must be a non-empty sequence of finite radians.")
        fix("angles", tuple(float(a) for a in angles))
        radius = 0.5 * float(np.hypot(self.volume_shape[1] * self.voxel_size[1],
                                      self.volume_shape[2] * self.voxel_size[2]))
        for name in ("source_origin", "origin_detector"):
            value = float(getattr(self, name))
            if not value > radius:
                raise ValueError(f"{name}={value} must exceed the volume's in-plane radius "
                                 f"{radius:.1f} (source and detector outside the volume).")
            fix(name, value)
        if int(self.view_chunk) < 1:
            raise ValueError(f"view_chunk={self.view_chunk!r}: need at least one view per "
                             "chunk (e.g. 8).")
        fix("view_chunk", int(self.view_chunk))
        if self.filter not in filters.FILTERS:
            raise ValueError(f"Unknown FDK filter {self.filter!r}; valid names are "
                             f"{sorted(filters.FILTERS)}.")

    # ----- protocol --------------------------------------------------------------------------

    @property
    def slicewise(self) -> bool:
        """Legacy flag: ``coupling == "slicewise"`` (False)."""
        return False

    @property
    def num_views(self) -> int:
        return len(self.angles)

    @property
    def num_angles(self) -> int:
        """Alias of `num_views` (the name `ParallelBeam` uses)."""
        return self.num_views

    def measurement_shape(self, num_slices: int | None = None) -> tuple[int, int, int]:
        """``(views, rows, cols)``; ``num_slices`` must be D if given."""
        if num_slices is not None and int(num_slices) != self.volume_shape[0]:
            raise ValueError(f"This ConeBeam measures volumes of {self.volume_shape[0]} slices, "
                             f"not {num_slices}; build it with that volume_shape.")
        return (self.num_views, *self.detector_shape)

    def A(self, x: jax.Array) -> jax.Array:
        """Forward projection ``[D, H, W] -> [views, rows, cols]``."""
        return _forward(self, self._check(x, self.volume_shape, "x"))

    def AT(self, y: jax.Array) -> jax.Array:
        """Exact adjoint of `A`: ``[views, rows, cols] -> [D, H, W]``."""
        return _adjoint(self, self._check(y, self.measurement_shape(), "y"))

    def baseline(self, y: jax.Array) -> jax.Array:
        """The protocol's baseline: `fdk` with this operator's ``filter``."""
        return self.fdk(y, filter=self.filter)

    def fdk(self, y: jax.Array, filter: str = "ramp") -> jax.Array:  # noqa: A002
        """Feldkamp-Davis-Kress reconstruction ``[views, rows, cols] -> [D, H, W]``.

        Cosine pre-weighting, ramp filtering along detector rows (spacing scaled to
        the rotation axis), and a voxel-driven backprojection weighted by
        (S / L)^2. Angular weights by `scan_kind`: full scan (1/2 each), short scan
        (Parker weights) or limited angle (1 each). Result in the units of x.

        Args:
          y: projections ``[views, rows, cols]``.
          filter: a key of ``filters.FILTERS``.
        """
        y = self._check(y, self.measurement_shape(), "y")
        if filter not in filters.FILTERS:
            raise ValueError(f"Unknown FDK filter {filter!r}; valid names are "
                             f"{sorted(filters.FILTERS)}.")
        return _fdk(self, y, filter)

    @property
    def scan_kind(self) -> str:
        """"full", "short" or "limited" (see `divergent.scan_weights`)."""
        return divergent.scan_weights(np.asarray(self.angles), self.fan_angles)[1]

    @property
    def fan_angles(self) -> np.ndarray:
        """Fan angle atan(u / (S + O)) of each detector column, float64 ``[cols]``."""
        return np.arctan(self._u() / (self.source_origin + self.origin_detector))

    @property
    def fan_half_angle(self) -> float:
        """Largest |fan angle| over the detector's column centres (radians)."""
        return float(np.abs(self.fan_angles).max())

    # ----- sharded ---------------------------------------------------------------------------

    def local_measurement(self, y: jax.Array, axis_name: str) -> jax.Array:
        """This device's share of the full ``y`` (inside ``jax.shard_map``).

        For each pass its views padded to a multiple of the device count and split
        in contiguous blocks; the blocks of all passes concatenated:
        ``[sum_p ceil(n_p / devices), rows, cols]``.
        """
        y = jnp.asarray(y, jnp.float32)
        size, rank = jax.lax.axis_size(axis_name), jax.lax.axis_index(axis_name)
        parts = []
        for _, index, _ in self._passes():
            block = -(-index.size // size)
            views = jnp.pad(y[index], ((0, block * size - index.size), (0, 0), (0, 0)))
            parts.append(jax.lax.dynamic_slice_in_dim(views, rank * block, block))
        return jnp.concatenate(parts, axis=0)

    def A_sharded(self, x: jax.Array, axis_name: str, slice_mask: jax.Array) -> jax.Array:
        """`A` for this device's views, from its slab ``[n, H, W]`` (all-gather over
        ``axis_name``); returns its `local_measurement` share."""
        x = jnp.asarray(x, jnp.float32) * slice_mask[:, None, None]
        volume = jax.lax.all_gather(x, axis_name, tiled=True)[:self.volume_shape[0]]
        volume = jnp.moveaxis(volume, 0, -1)  # [H, W, D]
        parts = [self._project(volume, mode, params, axis_name)
                 for mode, _, params in self._passes()]
        return jnp.concatenate(parts, axis=0)

    def AT_sharded(self, y: jax.Array, axis_name: str, slice_mask: jax.Array) -> jax.Array:
        """`AT` of this device's share ``y`` (as `local_measurement`), summed over devices
        and scattered back to slabs ``[n, H, W]`` (``psum_scatter``)."""
        y = jnp.asarray(y, jnp.float32)
        size, num_local = jax.lax.axis_size(axis_name), slice_mask.shape[0]
        shape = (*self.volume_shape[1:], self.volume_shape[0])
        total, start = 0.0, 0
        for mode, index, params in self._passes():
            local = self._local_params(params, axis_name)
            trig = self._local_params(self._trig(index), axis_name)
            block = local.shape[0]
            views = y[start:start + block]
            if self._orbit().gathers_fit:
                part = self._backproject(views, mode, local, trig)
            else:
                part = divergent.transpose_pass(jnp.swapaxes(views, 1, 2), shape, mode, local,
                                                self._z_rows(), self.view_chunk)
            total = total + part
            start += block
        volume = jnp.moveaxis(total, -1, 0)
        volume = jnp.pad(volume, ((0, size * num_local - volume.shape[0]), (0, 0), (0, 0)))
        slab = jax.lax.psum_scatter(volume, axis_name, scatter_dimension=0, tiled=True)
        return slab * slice_mask[:, None, None]

    # ----- internals -------------------------------------------------------------------------

    def _check(self, array, shape, name):
        array = jnp.asarray(array, jnp.float32)
        if tuple(array.shape) != tuple(shape):
            raise ValueError(f"{name} must have shape {list(shape)}, got {list(array.shape)}; "
                             "build ConeBeam with matching volume_shape / detector_shape.")
        return array

    def _u(self) -> np.ndarray:
        return divergent.centres(self.detector_shape[1], self.detector_spacing[1])

    def _passes(self):
        return _passes(self)

    def _z_rows(self):
        """(z index scale per row [R], z index offset, v [R]) of `divergent._project_chunk`."""
        dz = self.voxel_size[0]
        v = divergent.centres(self.detector_shape[0], self.detector_spacing[0])
        offset = -divergent.centres(self.volume_shape[0], dz)[0] / dz
        return (jnp.asarray(v / dz, jnp.float32), jnp.float32(offset), jnp.asarray(v, jnp.float32))

    def _local_params(self, params: np.ndarray, axis_name: str) -> jax.Array:
        """This device's block of a per-view table ``[n, ...]`` (zero-padded to the devices)."""
        size, rank = jax.lax.axis_size(axis_name), jax.lax.axis_index(axis_name)
        block = -(-params.shape[0] // size)
        pad = [(0, block * size - params.shape[0])] + [(0, 0)] * (params.ndim - 1)
        return jax.lax.dynamic_slice_in_dim(jnp.asarray(np.pad(params, pad)), rank * block, block)

    def _trig(self, index: np.ndarray) -> np.ndarray:
        """(sin, cos) of the views ``index``, float32 ``[n, 2]``."""
        angles = np.asarray(self.angles)[index]
        return np.stack([np.sin(angles), np.cos(angles)], -1).astype(np.float32)

    def _orbit(self) -> divergent.Orbit:
        return divergent.make_orbit(self.source_origin, self.origin_detector,
                                    self.detector_spacing[1], self.detector_shape[1],
                                    self.volume_shape[1:], self.voxel_size[1:],
                                    rows=self.detector_shape[0], dv=self.detector_spacing[0],
                                    dz=self.voxel_size[0])

    def _backproject(self, y, mode, params, trig):
        """Matched backprojection of one pass's views ``[n, rows, cols]`` -> ``[H, W, D]``."""
        return divergent.backproject_pass(jnp.swapaxes(y, 1, 2), mode, jnp.asarray(params),
                                          jnp.asarray(trig), self._z_rows(), self._orbit(),
                                          self.volume_shape[0], self.view_chunk)

    def _project(self, volume, mode, params, axis_name=None):
        """``[H, W, D]`` -> ``[n, rows, cols]`` for the views of one pass (local share if
        ``axis_name``)."""
        params = (jnp.asarray(params) if axis_name is None
                  else self._local_params(params, axis_name))
        out = divergent.project_pass(volume, mode, params, self._z_rows(), self.view_chunk)
        return jnp.swapaxes(out, 1, 2)


@functools.lru_cache(maxsize=64)
def _passes(op: ConeBeam):
    """Static (mode, view indices, params) per pass; cached per operator."""
    return divergent.passes(np.asarray(op.angles), op.source_origin, op.origin_detector, op._u(),
                            op.volume_shape[1:], op.voxel_size[1:])


@functools.lru_cache(maxsize=64)
def _packed_rays(op: ConeBeam):
    """The rays of each pass packed into rows of ``cols`` rays, and where each ray landed.

    A view whose rays step along both axes belongs to both passes (`divergent.passes`),
    its rays of the other pass masked; packing only each pass's own rays (in view, column
    order) projects every ray once, not 1.5 times (a full orbit at the default fan).

    Returns:
      ``([(mode, params [m, NUM_PARAMS, cols])], order)``: ``order [views * cols]`` (int32)
      indexes each (view, column) ray in the passes' outputs ``[m, cols, rows]``,
      concatenated and flattened to ``[sum m * cols, rows]``.
    """
    angles = np.asarray(op.angles)
    cols = op.detector_shape[1]
    source, direction = divergent.ray_directions(angles, op.source_origin, op.origin_detector,
                                                 op._u())
    in_y = divergent.y_pass_mask(*direction, op.voxel_size[1:])
    packed, order, start = [], np.zeros(in_y.shape, np.int64), 0
    for mode, member in zip(divergent.MODES, (in_y, ~in_y)):
        count = int(member.sum())
        if not count:
            continue
        params = divergent.plane_params(mode, source, direction, op.volume_shape[1:],
                                        op.voxel_size[1:])  # [V, NUM_PARAMS, C]
        rays = np.moveaxis(params, 1, 2)[member]  # [count, NUM_PARAMS], view-major
        rows = -(-count // cols)
        rays = np.pad(rays, ((0, rows * cols - count), (0, 0)))
        packed.append((mode, np.moveaxis(rays.reshape(rows, cols, -1), 2, 1)))
        order[member] = start + np.arange(count)
        start += rows * cols
    return packed, order.reshape(-1).astype(np.int32)


@functools.lru_cache(maxsize=64)
def _merged_rays(op: ConeBeam):
    """Every ray with its own pass's parameters, for `AT`'s single scan over the views.

    Returns:
      ``(params [V, NUM_PARAMS, C], in_y [V, C] bool)``: `divergent.plane_params` of the two
      passes summed (each is zero on the other pass's rays) and which rays step along y.
    """
    source, direction = divergent.ray_directions(np.asarray(op.angles), op.source_origin,
                                                 op.origin_detector, op._u())
    params = sum(divergent.plane_params(mode, source, direction, op.volume_shape[1:],
                                        op.voxel_size[1:]) for mode in divergent.MODES)
    return params, divergent.y_pass_mask(*direction, op.voxel_size[1:])


def _project_all(op: ConeBeam, x: jax.Array) -> jax.Array:
    """`A` of a whole volume: each pass projects its own rays (`_packed_rays`), gathered
    back into ``[views, rows, cols]``."""
    volume = jnp.moveaxis(x, 0, -1)  # [H, W, D]
    packed, order = _packed_rays(op)
    rows = op.detector_shape[0]
    rays = jnp.concatenate([
        divergent.project_pass(volume, mode, jnp.asarray(params), op._z_rows(),
                               op.view_chunk).reshape(-1, rows)
        for mode, params in packed])  # [rays, rows]
    y = rays[jnp.asarray(order)].reshape(op.num_views, op.detector_shape[1], rows)
    return jnp.swapaxes(y, 1, 2)


def _transpose_all(op: ConeBeam, y: jax.Array) -> jax.Array:
    """The transpose of `_project_all` as gathers (`divergent.backproject_pass`): one scan
    over all views, each ray with its own pass's weights (`_merged_rays`), so a view whose
    rays are in both passes is backprojected once, not twice.

    Geometries whose voxels are reached by more than `divergent.MAX_TAPS` columns or rows
    (a source almost touching the volume, detector pixels much finer than the voxels) use
    `_transpose_all_reference` instead, whose cost does not grow with the tap count.
    """
    if not op._orbit().gathers_fit:
        return _transpose_all_reference(op, y)
    params, in_y = _merged_rays(op)
    volume = divergent.backproject_pass(
        jnp.swapaxes(y, 1, 2), "y", jnp.asarray(params),
        jnp.asarray(op._trig(np.arange(op.num_views))), op._z_rows(), op._orbit(),
        op.volume_shape[0], op.view_chunk, jnp.asarray(in_y))
    return jnp.moveaxis(volume, -1, 0)


def _transpose_all_reference(op: ConeBeam, y: jax.Array) -> jax.Array:
    """The same transpose by ``jax.linear_transpose`` of `_project_all` (scatter-adds); tests
    compare the two."""
    (x,) = jax.linear_transpose(functools.partial(_project_all, op),
                                jax.ShapeDtypeStruct(op.volume_shape, jnp.float32))(y)
    return x


# Jitted once per (operator, shape), each the other's VJP; nested under an outer jit they
# are inlined.
_forward, _adjoint = divergent.transpose_pair(_project_all, _transpose_all)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _fdk(op: ConeBeam, y: jax.Array, filter_name: str) -> jax.Array:
    rows, cols = op.detector_shape
    dv, du = op.detector_spacing
    distance = op.source_origin + op.origin_detector
    u = op._u()
    v = divergent.centres(rows, dv)
    cosine = distance / np.sqrt(distance ** 2 + u[None, :] ** 2 + v[:, None] ** 2)  # [R, C]
    angular, _ = divergent.scan_weights(np.asarray(op.angles), op.fan_angles)  # [V, C]
    weighted = y * jnp.asarray(cosine[None] * angular[:, None, :], jnp.float32)
    q = divergent.ramp_filter_rows(weighted, filter_name, du * op.source_origin / distance)
    z = jnp.asarray(divergent.centres(op.volume_shape[0], op.voxel_size[0]), jnp.float32)
    volume = divergent.backproject_filtered(
        jnp.swapaxes(q, 1, 2), op.angles, op.source_origin, op.origin_detector,
        op.volume_shape[1:], op.voxel_size[1:], du, (z, dv))
    return jnp.moveaxis(volume, -1, 0)

