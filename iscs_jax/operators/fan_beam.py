"""Fan-beam CT per slice: the one-row case of `cone_beam.ConeBeam` (flat detector).

Each slice ``[H, W]`` is (y, x) in the plane z = 0 of the cone-beam geometry: at
angle a the source is at ``S (sin a, -cos a)``, the detector centre at
``O (-sin a, cos a)``, its u axis ``(cos a, sin a)``; column c is centred at
``u = (c - cols/2 + 0.5) du``; pixel (j, i) at ``((i - W/2 + 0.5) dx, (j - H/2 +
0.5) dy)``. ``A`` integrates each slice along the segment from the source to
each column centre (in the units of ``pixel_size``), with the same Joseph
discretisation and code as the cone beam (`operators.divergent`, slices as the
batch axis); ``AT`` is its exact transpose; ``fbp`` is fan-beam FBP (the FDK
weights with one row). Slice-wise, so it shards like `ParallelBeam`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from iscs_jax.operators import divergent, filters, scan
from iscs_jax.operators.cone_beam import _positive_tuple
from iscs_jax.operators.parallel_beam import _from_batch_last, _to_batch_last


@dataclasses.dataclass(frozen=True)
class FanBeam:
    """Flat-detector fan-beam projector applied to every slice of ``[..., H, W]``.

    Attributes:
      image_shape: (H, W).
      angles: view angles in radians.
      source_origin, origin_detector: S and O (world units).
      num_detectors: detector columns.
      detector_spacing: du.
      pixel_size: (dy, dx).
      view_chunk: views projected together.
      filter: ramp window of `fbp` / `baseline`.
    """

    image_shape: tuple[int, int]
    angles: tuple[float, ...]
    _: dataclasses.KW_ONLY
    source_origin: float
    origin_detector: float
    num_detectors: int
    detector_spacing: float = 1.0
    pixel_size: tuple[float, float] = (1.0, 1.0)
    view_chunk: int = 8
    filter: str = "ramp"

    coupling: ClassVar[str] = "slicewise"
    baseline_name: ClassVar[str] = "fbp"
    #: Measured sinograms ``[slices, views, detectors]`` can be read per slice.
    accepts_sinogram: ClassVar[bool] = True

    @classmethod
    def from_settings(cls, volume_shape, *, plane: str = "axial", filter_name: str = "ramp",
                      preset: str = "scaled", geometry: str = "sparse_view", num_views: int,
                      range_degrees: float | None = None, view_chunk: int = 8) -> "FanBeam":
        """The one-row `ConeBeam.from_settings` scan, applied to each slice of ``[D, H, W]``.

        Args:
          volume_shape: ``(D, H, W)`` in unit pixels.
          plane: must be ``"axial"``.
          filter_name: the FBP filter of `baseline`.
          preset: the distances and detector columns (`scan.divergent_geometry`).
          geometry, num_views, range_degrees: the views over 360 degrees (`scan.view_angles`).
          view_chunk: views projected together.
        """
        scan.require_axial(plane, "fan_beam")
        volume_shape = tuple(volume_shape)
        g = scan.divergent_geometry(preset, volume_shape)
        return cls(volume_shape[1:], scan.view_angles(geometry, num_views, range_degrees, 360.0),
                   source_origin=g["source_origin"], origin_detector=g["origin_detector"],
                   num_detectors=g["cols"], detector_spacing=g["spacing"],
                   view_chunk=view_chunk, filter=filter_name)

    def describe(self) -> str:
        """One line, e.g. ``"fan_beam sparse_view, 20 views"``."""
        return f"fan_beam {scan.angle_coverage(self.angles, 360.0)}, {self.num_angles} views"

    def __post_init__(self):
        fix = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        fix("image_shape", _positive_tuple(self.image_shape, 2, "image_shape", int))
        fix("num_detectors", _positive_tuple((self.num_detectors,), 1, "num_detectors", int)[0])
        fix("detector_spacing", _positive_tuple((self.detector_spacing,), 1,
                                                "detector_spacing")[0])
        fix("pixel_size", _positive_tuple(self.pixel_size, 2, "pixel_size"))
        # The cone beam's checks (angles, distances, chunk, filter) on the one-row geometry.
        cone = self.as_cone_beam(1)
        for name in ("angles", "source_origin", "origin_detector", "view_chunk"):
            fix(name, getattr(cone, name))

    def as_cone_beam(self, num_slices: int):
        """The `ConeBeam` whose one detector row at v = 0 sees this fan of a one-slice volume
        (used for validation; z plays no role with one row and one slice)."""
        from iscs_jax.operators.cone_beam import ConeBeam  # noqa: PLC0415

        return ConeBeam((num_slices, *self.image_shape), self.angles,
                        source_origin=self.source_origin, origin_detector=self.origin_detector,
                        detector_shape=(1, self.num_detectors),
                        detector_spacing=(1.0, self.detector_spacing),
                        voxel_size=(1.0, *self.pixel_size), view_chunk=self.view_chunk,
                        filter=self.filter)

    @property
    def slicewise(self) -> bool:
        """Legacy flag: ``coupling == "slicewise"`` (True)."""
        return True

    @property
    def num_angles(self) -> int:
        return len(self.angles)

    def measurement_shape(self, num_slices: int | None = None) -> tuple[int, ...]:
        """``(views, num_detectors)``, prefixed by ``num_slices`` if given."""
        core = (self.num_angles, self.num_detectors)
        return core if num_slices is None else (int(num_slices), *core)

    def _check(self, array, core, name):
        array = jnp.asarray(array, jnp.float32)
        if array.ndim < 2 or tuple(array.shape[-2:]) != tuple(core):
            raise ValueError(f"{name} must have shape [..., {core[0]}, {core[1]}], got "
                             f"{list(array.shape)}; build FanBeam with matching sizes.")
        return array

    def A(self, x: jax.Array) -> jax.Array:
        """Forward projection ``[..., H, W] -> [..., views, num_detectors]``."""
        return _forward(self, self._check(x, self.image_shape, "x"))

    def AT(self, y: jax.Array) -> jax.Array:
        """Exact adjoint of `A`: ``[..., views, num_detectors] -> [..., H, W]``."""
        return _adjoint(self, self._check(y, self.measurement_shape(), "y"))

    def fbp(self, y: jax.Array, filter: str = "ramp") -> jax.Array:  # noqa: A002
        """Fan-beam FBP ``[..., views, num_detectors] -> [..., H, W]`` (full scan, Parker
        short scan or limited angle weights, as `ConeBeam.fdk`)."""
        if filter not in filters.FILTERS:
            raise ValueError(f"Unknown FBP filter {filter!r}; valid names are "
                             f"{sorted(filters.FILTERS)}.")
        return _fbp(self, self._check(y, self.measurement_shape(), "y"), filter)

    def baseline(self, y: jax.Array) -> jax.Array:
        """The protocol's baseline: `fbp` with this operator's ``filter``."""
        return self.fbp(y, filter=self.filter)

    def _u(self):
        return divergent.centres(self.num_detectors, self.detector_spacing)


@functools.lru_cache(maxsize=64)
def _passes(op: FanBeam):
    return divergent.passes(np.asarray(op.angles), op.source_origin, op.origin_detector, op._u(),
                            op.image_shape, op.pixel_size)


def _project_all(op: FanBeam, image: jax.Array) -> jax.Array:
    """``[H, W, B] -> [views, C, B]``."""
    y = jnp.zeros((op.num_angles, op.num_detectors, image.shape[-1]), jnp.float32)
    for mode, index, params in _passes(op):
        y = y.at[index].add(divergent.project_pass(image, mode, jnp.asarray(params), None,
                                                   op.view_chunk))
    return y


def _project_batched(op, x):
    image, lead = _to_batch_last(x, 2)
    return _from_batch_last(_project_all(op, image), lead)


def _transpose_batched(op, y):
    sino, lead = _to_batch_last(y, 2)
    shape = (*op.image_shape, sino.shape[-1])
    (image,) = jax.linear_transpose(functools.partial(_project_all, op),
                                    jax.ShapeDtypeStruct(shape, jnp.float32))(sino)
    return _from_batch_last(image, lead)


_forward, _adjoint = divergent.transpose_pair(_project_batched, _transpose_batched)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _fbp(op: FanBeam, y: jax.Array, filter_name: str) -> jax.Array:
    distance = op.source_origin + op.origin_detector
    u = op._u()
    cosine = distance / np.sqrt(distance ** 2 + u ** 2)  # [C]
    angular, _ = divergent.scan_weights(np.asarray(op.angles), np.arctan(u / distance))
    weighted = y * jnp.asarray(cosine[None] * angular, jnp.float32)
    q = divergent.ramp_filter_rows(weighted, filter_name,
                                   op.detector_spacing * op.source_origin / distance)
    sino, lead = _to_batch_last(q, 2)  # [V, C, B]
    image = divergent.backproject_filtered(sino, op.angles, op.source_origin, op.origin_detector,
                                           op.image_shape, op.pixel_size, op.detector_spacing,
                                           None)
    return _from_batch_last(image, lead)
