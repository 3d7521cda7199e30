"""Single-coil Cartesian MRI: an orthonormal 2D FFT of each slice, sampled on phase-encoding lines.

``CartesianMRI(image_shape, acceleration, center_fraction, seed)`` keeps the k-space
columns (phase-encoding lines along W; each is a full readout along H) chosen by a
variable-density 1D mask (`cartesian_mask`). With ``F`` the orthonormal 2D DFT
(``norm="ortho"``, so ``F^H F = I``) and ``P`` the selection of the sampled columns,
``A = P F``: rows of a unitary matrix, so ``A A^H = I`` and the complex pseudo-inverse is
``A^H = F^H P^T``, the zero-filled inverse FFT (`AH`). Measurements are complex,
``[..., H, num_lines]``, the sampled columns only.

Images are real here (magnitude anatomy), and every sampler works on real volumes. For a
real ``x`` the adjoint with respect to the real inner product ``Re <A x, y>`` is
``AT(y) = Re(A^H y)``, and the normal operator is ``M = AT A = F^H D F`` with D diagonal
in k-space: ``D = (m + m_mirror) / 2`` for the column mask m and its mirror
``k -> -k`` (the real part couples each frequency with its Hermitian partner), so
eigenvalues are 0, 1/2 and 1. `pinv` is the Moore-Penrose pseudo-inverse of this
real-linear A: ``M^+ AT(y) = F^H D^+ F AT(y)`` (a real image). It equals ``Re(A^H y)``
on columns whose mirror is also sampled and doubles the lone ones; ``A(pinv(y)) = y``
for every y measured from a real image. The `zero_filled` baseline is the classical
magnitude ``|A^H y|``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

#: Sampling density of the outer lines: p(k) proportional to (1 - |k| / k_max) ** POWER.
DENSITY_POWER = 2.0
#: Floor of that density, so the outermost lines keep a small chance.
DENSITY_FLOOR = 0.02


def cartesian_mask(width: int, acceleration: float, center_fraction: float,
                   seed: int) -> np.ndarray:
    """Variable-density 1D sampling mask of phase-encoding lines, in FFT (unshifted) order.

    ``round(width / acceleration)`` lines in all: the ``round(width * center_fraction)``
    lowest frequencies (fully sampled centre), the rest drawn without replacement with
    density ``(1 - |k| / k_max) ** DENSITY_POWER + DENSITY_FLOOR`` by
    ``numpy.random.default_rng(seed)`` (a pure function of its arguments).

    Returns:
      bool ``[width]``; index 0 is the DC line (as ``jnp.fft.fft`` orders frequencies).
    """
    if width < 1 or not acceleration >= 1.0 or not 0.0 <= center_fraction <= 1.0:
        raise ValueError(f"Need width >= 1, acceleration >= 1 and 0 <= center_fraction <= 1, "
                         f"got width={width}, acceleration={acceleration}, "
                         f"center_fraction={center_fraction}.")
    num_lines = max(1, int(round(width / acceleration)))
    num_centre = min(num_lines, max(1, int(round(width * center_fraction))))
    freq = np.fft.fftfreq(width) * width  # signed integer frequency of each index
    order = np.argsort(np.abs(freq) + 1e-3 * (freq > 0), kind="stable")  # DC, -1, +1, -2 ...
    mask = np.zeros(width, bool)
    mask[order[:num_centre]] = True
    outer = np.nonzero(~mask)[0]
    if num_lines > num_centre:
        k_max = max(1.0, width / 2.0)
        density = (1.0 - np.abs(freq[outer]) / k_max) ** DENSITY_POWER + DENSITY_FLOOR
        chosen = np.random.default_rng(seed).choice(
            outer, size=num_lines - num_centre, replace=False, p=density / density.sum())
        mask[chosen] = True
    return mask


@dataclasses.dataclass(frozen=True)
class CartesianMRI:
    """``A = P F`` on every slice of ``[..., H, W]``; see the module docstring.

    Attributes:
      image_shape: ``(H, W)`` of a slice.
      acceleration: R, the undersampling factor (``W / R`` lines are kept).
      center_fraction: fraction of W sampled fully around the DC line.
      seed: seed of the random outer lines.
    """

    image_shape: tuple[int, int]
    acceleration: float = 4.0
    center_fraction: float = 0.08
    seed: int = 0

    coupling: ClassVar[str] = "slicewise"
    slicewise: ClassVar[bool] = True
    halo: ClassVar[int] = 0
    baseline_name: ClassVar[str] = "zero_filled"
    baseline_names: ClassVar[tuple[str, ...]] = ("zero_filled",)

    @classmethod
    def from_settings(cls, volume_shape, *, plane: str = "axial", filter_name: str = "ramp",
                      acceleration: float = 4.0, center_fraction: float = 0.08,
                      mask_seed: int = 0) -> "CartesianMRI":
        """Undersampled k-space of every image of a ``[D, H, W]`` stack (any ``plane``).

        Args:
          volume_shape: ``(D, H, W)`` of the stack of images.
          plane, filter_name: unused (each image is measured on its own; no filter).
          acceleration, center_fraction: of `cartesian_mask`.
          mask_seed: the mask's ``seed``.
        """
        del plane, filter_name
        return cls(tuple(volume_shape)[1:], float(acceleration), float(center_fraction),
                   int(mask_seed))

    def describe(self) -> str:
        """One line, e.g. ``"Cartesian MRI R=4, 32 lines"``."""
        return f"Cartesian MRI R={self.acceleration:g}, {self.lines.size} lines"

    def __post_init__(self):
        shape = tuple(int(s) for s in self.image_shape)
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"image_shape must be (H, W), got {self.image_shape}.")
        object.__setattr__(self, "image_shape", shape)
        object.__setattr__(self, "acceleration", float(self.acceleration))
        object.__setattr__(self, "center_fraction", float(self.center_fraction))
        object.__setattr__(self, "seed", int(self.seed))
        self.mask  # validates acceleration / center_fraction now  # noqa: B018

    @property
    def mask(self) -> np.ndarray:
        """bool ``[W]``, the sampled phase-encoding lines (`cartesian_mask`)."""
        return cartesian_mask(self.image_shape[1], self.acceleration, self.center_fraction,
                              self.seed)

    @property
    def lines(self) -> np.ndarray:
        """int ``[num_lines]``: the sampled k-space columns, increasing."""
        return np.nonzero(self.mask)[0]

    def measurement_shape(self, num_slices: int | None = None) -> tuple[int, ...]:
        """``(H, num_lines)``, prefixed by ``num_slices`` if given (complex values)."""
        core = (self.image_shape[0], int(self.lines.size))
        return core if num_slices is None else (int(num_slices),) + core

    def _check(self, array, core, name: str) -> None:
        if np.ndim(array) < 2 or tuple(np.shape(array)[-2:]) != tuple(core):
            raise ValueError(f"CartesianMRI: {name} must have shape [..., {core[0]}, {core[1]}],"
                             f" got {np.shape(array)}; build the operator for this slice size.")

    def A(self, x: jax.Array) -> jax.Array:
        """Sampled k-space ``[..., H, W] -> [..., H, num_lines]`` (complex64)."""
        self._check(x, self.image_shape, "x")
        kspace = jnp.fft.fft2(jnp.asarray(x).astype(jnp.complex64), norm="ortho")
        return kspace[..., jnp.asarray(self.lines)]

    def AH(self, y: jax.Array) -> jax.Array:
        """Complex adjoint ``F^H P^T``: zero-filled inverse FFT, ``[..., H, W]`` complex64."""
        self._check(y, self.measurement_shape(), "y")
        y = jnp.asarray(y).astype(jnp.complex64)
        full = jnp.zeros(y.shape[:-1] + (self.image_shape[1],), jnp.complex64)
        full = full.at[..., jnp.asarray(self.lines)].set(y)
        return jnp.fft.ifft2(full, norm="ortho")

    def AT(self, y: jax.Array) -> jax.Array:
        """Adjoint for real images, ``Re(A^H y)``: ``[..., H, W]`` float32."""
        return jnp.real(self.AH(y)).astype(jnp.float32)

    def normal_diagonal(self) -> np.ndarray:
        """``D [W]``: ``AT(A(x)) = F^H (D F x)`` on real images, D per k-space column."""
        cols = self.mask.astype(np.float32)
        return (cols + cols[(-np.arange(cols.size)) % cols.size]) / 2.0

    def pinv(self, y: jax.Array) -> jax.Array:
        """Exact pseudo-inverse for real images, ``F^H D^+ F AT(y)``: float32 ``[..., H, W]``."""
        d = self.normal_diagonal()
        d_pinv = jnp.asarray(np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0), jnp.float32)
        spectrum = jnp.fft.fft2(self.AT(y), norm="ortho") * d_pinv
        return jnp.real(jnp.fft.ifft2(spectrum, norm="ortho")).astype(jnp.float32)

    def zero_filled(self, y: jax.Array) -> jax.Array:
        """The zero-filled reconstruction: magnitude of `pinv`, float32 ``[..., H, W]``."""
        return jnp.abs(self.AH(y)).astype(jnp.float32)

    def baseline(self, y: jax.Array) -> jax.Array:
        """The ``zero_filled`` baseline."""
        return self.zero_filled(y)

    def baseline_by_name(self, name: str, y: jax.Array) -> jax.Array:
        """One of `baseline_names` applied to ``y``."""
        if name not in self.baseline_names:
            raise ValueError(f"Unknown MRI baseline {name!r}; valid: {self.baseline_names}.")
        return self.zero_filled(y)

    def local_measurement(self, y: jax.Array, axis_name: str) -> jax.Array:
        """Slice-wise: y is already sharded by slice (identity)."""
        del axis_name
        return y
