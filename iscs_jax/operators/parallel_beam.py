"""Parallel-beam CT: a per-slice 2D Radon transform, its exact adjoint, and FBP.

Geometry: pixel (row, col) sits at u = col - c_col, v = c_row - row (unit pixels,
v up); detector j at s = j - c_det (unit spacing); the ray of angle theta and
offset s is {(u, v): u cos(theta) + v sin(theta) = s}. The rotation centre
(`ROTATION_CENTERS`) is either

* ``"geometric"`` (default): c_row = (H - 1) / 2, c_col = (W - 1) / 2,
  c_det = (num_detectors - 1) / 2, the centre of the image and of the detector,
  as in ASTRA, scanners and the cone-beam geometry; or
* ``"skimage"``: c_row = H // 2, c_col = W // 2, c_det = num_detectors // 2, the
  convention of scikit-image's ``radon`` (half a pixel off the geometric centre
  for even sizes).

Both agree for odd sizes (the default detector count is odd).

Discretisation: Joseph's method. For angles with |cos| >= |sin| the ray is
stepped row by row (columns when |sin| > |cos|); at each step the image is
linearly interpolated along that row, and the sum is scaled by the step length
1/|cos| (1/|sin|). Every entry of the system matrix is w * hat(p - k), with
hat(u) = max(0, 1 - |u|), so the adjoint `AT` is written as a gather computing
the same entries (at most two detectors reach a pixel per angle, because the
detector-to-line spacing |b| >= 1). Both directions are gathers: no scatter.

Both directions loop over image lines (rows, or columns for the column-stepped
angles): the forward projection scans the lines, each step gathering both taps
of every (angle, detector) pair from two lines (`LINES_PER_STEP`) of each angle
group into that group's ``[angles, detectors, B]`` accumulator; the adjoint
scans the angles, each step gathering every line's pixels from one view.
Internally a batch of slices is laid out last (``[H, W, B]``) so that each
gathered element is a contiguous vector of B floats.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from iscs_jax.operators import filters, protocol, scan

#: Rotation-centre conventions (see the module docstring).
ROTATION_CENTERS = ("geometric", "skimage")


def _hat(u: jax.Array) -> jax.Array:
    return jnp.maximum(0.0, 1.0 - jnp.abs(u))


def _linear_taps(position: jax.Array, length: int):
    """The two linear-interpolation taps at fractional ``position`` on a grid of ``length``.

    Shared by the forward projector and its adjoint so both use the same matrix entries.

    Returns:
      ``[(index, weight), (index, weight)]`` for floor(position) and floor(position) + 1;
      indices clipped to ``[0, length - 1]`` (int32), weights 0 outside the grid.
    """
    k0 = jnp.floor(position)
    taps = []
    for k in (k0, k0 + 1.0):
        inside = (k >= 0) & (k <= length - 1)
        taps.append((jnp.clip(k, 0, length - 1).astype(jnp.int32),
                     jnp.where(inside, _hat(position - k), 0.0)))
    return taps


def _scan_sum(term, xs):
    """sum_n term(xs[n]) by `lax.scan` (leading axis of the pytree ``xs``; ``term`` may
    return a pytree of arrays, summed leaf by leaf).

    The carry starts from the first term rather than from zeros, so it has the
    same varying-axes type as the inputs inside ``jax.shard_map``.
    """
    first = term(jax.tree.map(lambda a: a[0], xs))

    def step(acc, x):
        return jax.tree.map(jnp.add, acc, term(x)), None

    acc, _ = jax.lax.scan(step, first, jax.tree.map(lambda a: a[1:], xs))
    return acc


def _centres(image_shape: tuple[int, int], num_detectors: int,
             rotation_center: str) -> tuple[float, float, float]:
    """(c_row, c_col, c_det) of the rotation-centre convention (module docstring)."""
    height, width = image_shape
    if rotation_center == "skimage":
        return float(height // 2), float(width // 2), float(num_detectors // 2)
    return (height - 1) / 2.0, (width - 1) / 2.0, (num_detectors - 1) / 2.0


def _line_params(angles: np.ndarray, centres: tuple[float, float, float],
                 by_rows: bool) -> np.ndarray:
    """Per-angle (a, b, c, w): the ray of detector j hits line i at p = a + b j + c i.

    Lines are rows (``by_rows``; p is a column position) or columns (p is a row
    position); w is the step length along the ray. Returns float32 ``[n, 4]``.
    """
    c_row, c_col, c_det = centres
    cos, sin = np.cos(angles), np.sin(angles)
    if by_rows:
        a = c_col - (c_det + c_row * sin) / cos
        b, c, w = 1.0 / cos, sin / cos, 1.0 / np.abs(cos)
    else:
        a = c_row + (c_det - c_col * cos) / sin
        b, c, w = -1.0 / sin, cos / sin, 1.0 / np.abs(sin)
    return np.stack([a, b, c, w], axis=-1).astype(np.float32)


#: Image lines each forward-projection scan step takes from every angle group (lines
#: t, t + S / 2 of an image padded to S x S). Two lines per step, both groups in one
#: scan, measured 19-40% faster than one line of one group per step (`benchmarks/dds.py`
#: sizes, 2-core CPU); more lines per step were no faster.
LINES_PER_STEP = 2


def _project_lines(groups: list[tuple[jax.Array, jax.Array]], num_detectors: int
                   ) -> list[jax.Array]:
    """Forward projection of each angle group:
    ``[(lines [S, S, B], params [angles, 4]), ...] -> [[angles, num_detectors, B], ...]``.

    One scan over the image lines for every group (the loop shape of the adjoint):
    step t adds, for each group, the two interpolation taps of every (angle,
    detector) pair on lines t + q S / `LINES_PER_STEP` (q = 0, 1, ...) into that
    group's ``[angles, num_detectors, B]`` sum, as fused gather-multiply-adds
    vectorised over B. The tap positions are materialised once per line so that
    the fused gather does not recompute them for every batch element.

    Args:
      groups: per angle group, its image lines (rows for the row-stepped angles,
        columns for the others) zero-padded to ``[S, S, B]`` with S a multiple of
        `LINES_PER_STEP` (zero pixels add nothing), and its `_line_params` rows
        (a, b, c, w).
      num_detectors: detector count.
    Returns:
      per group, the unweighted sums (multiply by w for the projection).
    """
    size = groups[0][0].shape[0]
    steps = size // LINES_PER_STEP
    j = jnp.arange(num_detectors, dtype=jnp.float32)[None, :]

    def step_terms(t):
        sums = []
        for lines, params in groups:
            a, b, c = (params[:, k:k + 1] for k in range(3))  # each [angles, 1]
            total = 0.0
            for q in range(LINES_PER_STEP):
                i = t + q * steps
                taps = _linear_taps(a + b * j + c * i.astype(jnp.float32), size)
                line = lines[i]
                for k, weight in jax.lax.optimization_barrier(taps):
                    total = total + weight[..., None] * line[k]
            sums.append(total)
        return sums

    return _scan_sum(step_terms, jnp.arange(steps))


def _backproject_lines(sino: jax.Array, params: jax.Array, n_lines: int,
                       length: int) -> jax.Array:
    """Exact transpose of `_project_lines`: ``[num_detectors, B] -> [n_lines, L, B]``."""
    num_detectors = sino.shape[0]
    a, b, c, w = params[0], params[1], params[2], params[3]
    i = jnp.arange(n_lines, dtype=jnp.float32)[:, None]
    k = jnp.arange(length, dtype=jnp.float32)[None, :]
    j0 = jnp.floor((k - a - c * i) / b)  # detectors j0, j0 + 1 can reach pixel (i, k)
    total = 0.0
    for j in (j0, j0 + 1.0):
        p = a + b * j + c * i
        inside = (j >= 0) & (j <= num_detectors - 1)
        weight = jnp.where(inside, _hat(p - k), 0.0)
        index = jnp.clip(j, 0, num_detectors - 1).astype(jnp.int32)
        total = total + weight[..., None] * sino[index]
    return w * total


def _to_batch_last(x: jax.Array, core_ndim: int) -> tuple[jax.Array, tuple[int, ...]]:
    """``[..., *core] -> [*core, B]`` and the leading shape."""
    lead = x.shape[:x.ndim - core_ndim]
    flat = x.reshape((-1,) + x.shape[x.ndim - core_ndim:])
    return jnp.moveaxis(flat, 0, -1), lead


def _from_batch_last(x: jax.Array, lead: tuple[int, ...]) -> jax.Array:
    return jnp.moveaxis(x, -1, 0).reshape(lead + x.shape[:-1])


@dataclasses.dataclass(frozen=True)
class ParallelBeam:
    """Parallel-beam 2D Radon transform applied to every slice of ``[..., H, W]``.

    Hashable (all fields are tuples/ints), so it can be a static or closed-over
    argument under ``jax.jit``, ``jax.vmap`` and ``jax.shard_map``.

    Attributes:
      image_shape: (H, W) of one slice.
      angles: projection angles in radians (any sequence; stored as a tuple).
      num_detectors: detector count (unit spacing); defaults to the smallest odd
        count covering the image diagonal.
      filter: FBP filter of `baseline` (a key of ``filters.FILTERS``).
      rotation_center: ``"geometric"`` (default; centre (H - 1) / 2, (W - 1) / 2,
        detector (n - 1) / 2, as ASTRA) or ``"skimage"`` (H // 2, W // 2, n // 2,
        as ``skimage.transform.radon``); see `ROTATION_CENTERS`.
    """

    image_shape: tuple[int, int]
    angles: tuple[float, ...]
    num_detectors: int | None = None
    filter: str = "ramp"
    rotation_center: str = "geometric"

    #: Acts on each slice independently (a sharded sampler may apply it locally).
    coupling: ClassVar[str] = "slicewise"
    #: `baseline` is filtered backprojection.
    baseline_name: ClassVar[str] = "fbp"
    #: Measured sinograms ``[slices, views, detectors]`` can be read per slice.
    accepts_sinogram: ClassVar[bool] = True

    @classmethod
    def from_settings(cls, volume_shape, *, plane: str = "axial", filter_name: str = "ramp",
                      geometry: str = "sparse_view", num_views: int,
                      range_degrees: float | None = None, num_detectors: int = 0
                      ) -> "ParallelBeam":
        """The scan of `scan.view_angles` (views over 180 degrees) on ``[D, H, W]`` slices.

        Args:
          volume_shape: ``(D, H, W)`` of the volume (axial slices).
          plane: must be ``"axial"``.
          filter_name: the FBP filter of `baseline`.
          geometry, num_views, range_degrees: the views (`scan.view_angles`).
          num_detectors: 0 (enough to cover the image diagonal) or a positive count.
        """
        scan.require_axial(plane, "parallel_beam")
        if num_detectors < 0:
            raise ValueError(f"num_detectors={num_detectors}; use 0 (automatic) or a positive "
                             "count.")
        return cls(tuple(volume_shape)[1:], scan.view_angles(geometry, num_views, range_degrees),
                   num_detectors or None, filter=filter_name)

    def describe(self) -> str:
        """One line, e.g. ``"parallel_beam sparse_view, 20 views"``."""
        return f"parallel_beam {scan.angle_coverage(self.angles)}, {self.num_angles} views"

    def __post_init__(self):
        shape = tuple(int(s) for s in self.image_shape)
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"image_shape must be (H, W) with H, W >= 1, got {self.image_shape}.")
        angles = np.asarray(self.angles, dtype=np.float64).reshape(-1)
        if angles.size == 0 or not np.all(np.isfinite(angles)):
            raise ValueError("angles must be a non-empty sequence of finite radians.")
        num_detectors = self.num_detectors
        if num_detectors is None:
            num_detectors = int(np.ceil(np.hypot(*shape)))
            num_detectors += 1 - num_detectors % 2  # odd: centred detector
        if int(num_detectors) < 1:
            raise ValueError(f"num_detectors must be >= 1, got {num_detectors}.")
        if self.filter not in filters.FILTERS:
            raise ValueError(f"Unknown FBP filter {self.filter!r}; valid names are "
                             f"{sorted(filters.FILTERS)}.")
        if self.rotation_center not in ROTATION_CENTERS:
            raise ValueError(f"rotation_center must be one of {ROTATION_CENTERS}, got "
                             f"{self.rotation_center!r}.")
        object.__setattr__(self, "image_shape", shape)
        object.__setattr__(self, "angles", tuple(float(t) for t in angles))
        object.__setattr__(self, "num_detectors", int(num_detectors))

    @property
    def slicewise(self) -> bool:
        """Legacy flag: ``coupling == "slicewise"``."""
        return self.coupling == "slicewise"

    @property
    def num_angles(self) -> int:
        return len(self.angles)

    def measurement_shape(self, num_slices: int | None = None) -> tuple[int, ...]:
        """Shape of y: ``(num_angles, num_detectors)``, prefixed by ``num_slices`` if given."""
        core = (self.num_angles, self.num_detectors)
        return core if num_slices is None else (int(num_slices),) + core

    @property
    def centres(self) -> tuple[float, float, float]:
        """(c_row, c_col, c_det): the rotation centre in pixel and detector indices."""
        return _centres(self.image_shape, self.num_detectors, self.rotation_center)

    def _groups(self):
        """Static split of the angles into row-stepped and column-stepped groups."""
        angles = np.asarray(self.angles)
        by_rows = np.abs(np.cos(angles)) >= np.abs(np.sin(angles))
        for flag in (True, False):
            index = np.nonzero(by_rows == flag)[0]
            if index.size:
                params = _line_params(angles[index], self.centres, flag)
                yield flag, index, jnp.asarray(params)

    def _check(self, array: jax.Array, core: tuple[int, ...], name: str) -> None:
        if array.ndim < 2 or tuple(array.shape[-2:]) != core:
            raise ValueError(f"{name} must have shape [..., {core[0]}, {core[1]}], got "
                             f"{array.shape}; build ParallelBeam with matching sizes.")

    def A(self, x: jax.Array) -> jax.Array:
        """Forward projection ``[..., H, W] -> [..., num_angles, num_detectors]``."""
        x = jnp.asarray(x, jnp.float32)
        self._check(x, self.image_shape, "x")
        return _forward(self, x)

    def AT(self, y: jax.Array) -> jax.Array:
        """Exact adjoint of `A`: ``[..., num_angles, num_detectors] -> [..., H, W]``."""
        y = jnp.asarray(y, jnp.float32)
        self._check(y, self.measurement_shape(), "y")
        return _adjoint(self, y)

    def fbp(self, y: jax.Array, filter: str = "ramp") -> jax.Array:  # noqa: A002
        """Filtered backprojection ``[..., num_angles, num_detectors] -> [..., H, W]``.

        Ramp (optionally windowed) filtering along the detector axis, then a
        pixel-driven linearly interpolating backprojection scaled by pi / num_angles,
        so that ``fbp(A(x)) ~ x`` for angles evenly covering [0, pi).

        Args:
          y: sinograms ``[..., num_angles, num_detectors]``.
          filter: one of ``filters.FILTERS`` ("ramp", "shepp-logan", "hann").

        Returns:
          ``[..., H, W]`` float32.
        """
        y = jnp.asarray(y, jnp.float32)
        self._check(y, self.measurement_shape(), "y")
        response = filters.fbp_filter(filter, filters.padded_length(self.num_detectors))
        return _filtered_backprojection(self, y, response)

    def baseline(self, y: jax.Array) -> jax.Array:
        """The protocol's baseline: `fbp` with this operator's ``filter``."""
        return self.fbp(y, filter=self.filter)

    def gram_form(self) -> protocol.GramForm:
        """A^T A on slices-last arrays (`protocol.GramForm`): CG on the normal equations
        keeps its vectors ``[H, W, D]``, the layout both projectors scan in, instead of
        transposing ``[D, H, W]`` in and out of it twice per iteration."""
        return protocol.GramForm(encode=lambda x: jnp.moveaxis(x, 0, -1),
                                 gram=functools.partial(_gram_batch_last, self),
                                 decode=lambda v: jnp.moveaxis(v, -1, 0))


def _forward_batch_last(op: ParallelBeam, image: jax.Array) -> jax.Array:
    """``[H, W, B] -> [num_angles, num_detectors, B]``."""
    height, width = image.shape[:2]
    size = -(-max(height, width) // LINES_PER_STEP) * LINES_PER_STEP
    square = jnp.pad(image, ((0, size - height), (0, size - width), (0, 0)))
    groups = list(op._groups())
    sums = _project_lines([(square if by_rows else jnp.swapaxes(square, 0, 1), params)
                           for by_rows, _, params in groups], op.num_detectors)
    parts = [params[:, 3, None, None] * total for (_, _, params), total in zip(groups, sums)]
    order = np.concatenate([index for _, index, _ in groups])
    return jnp.concatenate(parts, axis=0)[np.argsort(order)]


def _adjoint_batch_last(op: ParallelBeam, sino: jax.Array) -> jax.Array:
    """``[num_angles, num_detectors, B] -> [H, W, B]``."""
    height, width = op.image_shape
    image = 0.0
    for by_rows, index, params in op._groups():
        n_lines, length = (height, width) if by_rows else (width, height)

        def view_term(inputs, n_lines=n_lines, length=length):
            view, prm = inputs
            return _backproject_lines(view, prm, n_lines, length)

        acc = _scan_sum(view_term, (sino[index], params))
        image = image + (acc if by_rows else jnp.swapaxes(acc, 0, 1))
    return image


# Jitted once per (operator, shape); nested under an outer jit they are inlined.
@functools.partial(jax.jit, static_argnums=0)
def _forward(op: ParallelBeam, x: jax.Array) -> jax.Array:
    image, lead = _to_batch_last(x, 2)  # [H, W, B]
    return _from_batch_last(_forward_batch_last(op, image), lead)


@functools.partial(jax.jit, static_argnums=0)
def _adjoint(op: ParallelBeam, y: jax.Array) -> jax.Array:
    sino, lead = _to_batch_last(y, 2)  # [num_angles, num_detectors, B]
    return _from_batch_last(_adjoint_batch_last(op, sino), lead)


@functools.partial(jax.jit, static_argnums=0)
def _gram_batch_last(op: ParallelBeam, image: jax.Array) -> jax.Array:
    """A^T A on ``[H, W, B]`` (no transposes between the two)."""
    return _adjoint_batch_last(op, _forward_batch_last(op, image))


@functools.partial(jax.jit, static_argnums=0)
def _filtered_backprojection(op: ParallelBeam, y: jax.Array, response: jax.Array) -> jax.Array:
    size = 2 * (response.shape[0] - 1)
    spectrum = jnp.fft.rfft(y, n=size, axis=-1) * response
    filtered = jnp.fft.irfft(spectrum, n=size, axis=-1)[..., :op.num_detectors]
    sino, lead = _to_batch_last(filtered.astype(jnp.float32), 2)
    image = _pixel_backproject(sino, op.angles, op.image_shape, op.centres)
    return _from_batch_last(image * (np.pi / op.num_angles), lead)


def _pixel_backproject(sino: jax.Array, angles: tuple[float, ...],
                       image_shape: tuple[int, int],
                       centres: tuple[float, float, float]) -> jax.Array:
    """Sum over angles of the view linearly interpolated at each pixel's detector
    position: ``[num_angles, num_detectors, B] -> [H, W, B]`` (FBP backprojection)."""
    height, width = image_shape
    num_detectors = sino.shape[1]
    c_row, c_col, c_det = centres
    u = jnp.arange(width, dtype=jnp.float32)[None, :] - c_col
    v = c_row - jnp.arange(height, dtype=jnp.float32)[:, None]
    trig = jnp.asarray(np.stack([np.cos(angles), np.sin(angles)], -1), jnp.float32)

    def view_term(inputs):
        view, (cos, sin) = inputs
        t = u * cos + v * sin + c_det  # [H, W] detector position
        total = 0.0
        for j, weight in _linear_taps(t, num_detectors):
            total = total + weight[..., None] * view[j]
        return total

    return _scan_sum(view_term, (sino, trig))

