"""What several test files share: the closed-form Gaussian priors, tiny operators, small
dense-matrix problems and a difference measure.

Plain functions and constants, so that the multi-device check scripts (which run outside
pytest, in a subprocess) import them too. One small instance of every registered operator
is in `operator_examples.py` (the operator contract's list).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from iscs_jax.denoiser import GaussianDenoiser
from iscs_jax.operators.parallel_beam import ParallelBeam
from iscs_jax.operators.zaxis import ZBlur

#: The MMSE denoiser of x0 ~ N(0.5, 0.1) per pixel (variance 0.1): the check scripts' prior.
GAUSSIAN = GaussianDenoiser(0.5, 0.1**0.5)


def beam(size: int = 16, num_views: int = 8) -> ParallelBeam:
    """Parallel-beam CT of ``size x size`` slices, ``num_views`` views evenly over [0, pi)."""
    return ParallelBeam((size, size), tuple(np.linspace(0, np.pi, num_views, endpoint=False)))


def zblur() -> ZBlur:
    """The 3-tap z blur (0.25, 0.5, 0.25): a halo-coupled operator (radius 1)."""
    return ZBlur((0.25, 0.5, 0.25))


def max_diff(a, b) -> float:
    """max |a - b| in float64 (0 for empty arrays)."""
    diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return float(diff.max()) if diff.size else 0.0


# --- dense-matrix problems with a Gaussian prior (the sampler tests) ----------------------

H = W = 4
DEPTH = 6
PRIOR_STD = 1.0
SIGMAS = jnp.geomspace(5.0, 0.01, 6)


@functools.partial(jax.tree_util.register_dataclass, data_fields=["matrix"],
                   meta_fields=["slicewise"])
@dataclasses.dataclass(frozen=True)
class DenseSlices:
    """y[k] = M x[k].ravel() for every slice k of ``[D, H, W]``; slice-wise."""
    matrix: jax.Array  # [m, H*W]
    slicewise: bool = True

    def A(self, x):
        return x.reshape(x.shape[0], -1) @ self.matrix.T

    def AT(self, y):
        return (y @ self.matrix).reshape(y.shape[0], H, W)


def well_conditioned(seed: int, rows: int, cols: int = H * W) -> jax.Array:
    """A [rows, cols] matrix with singular values in [1, 2] (condition number <= 2)."""
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    u, _ = jnp.linalg.qr(jax.random.normal(k1, (rows, rows)))
    v, _ = jnp.linalg.qr(jax.random.normal(k2, (cols, cols)))
    svals = jax.random.uniform(k3, (min(rows, cols),), minval=1.0, maxval=2.0)
    return (u[:, :len(svals)] * svals) @ v[:len(svals)]


def prior_mean() -> jax.Array:
    """The prior's per-pixel mean ``[H, W]`` (a ramp from -1 to 1)."""
    return jnp.linspace(-1.0, 1.0, H * W).reshape(H, W)


def gaussian_prior() -> GaussianDenoiser:
    """The MMSE denoiser of x ~ N(`prior_mean`, `PRIOR_STD`^2) per pixel. Its mean is an
    array, so unlike `GAUSSIAN` it is not hashable: close over it, do not pass it static."""
    return GaussianDenoiser(prior_mean(), PRIOR_STD)


def problem(seed: int = 0, depth: int = DEPTH, rows: int = 8):
    """(operator, y, x_true): x_true drawn from the prior, noise-free y = A x_true."""
    op = DenseSlices(well_conditioned(seed, rows))
    x_true = prior_mean() + PRIOR_STD * jax.random.normal(jax.random.key(seed + 1), (depth, H, W))
    return op, op.A(x_true), x_true


def zero_noise(key, slice_ids, num_slices, slice_shape):
    """A `NoiseFn` drawing zeros: each sampler step is then its expected value."""
    del key, num_slices
    return jnp.zeros((slice_ids.shape[0], *slice_shape))


def write_dicom_image(path, pixels_hu, position, *, uid, description="", slope=2.0,
                      intercept=-1024.0, row_dir=(1.0, 0.0, 0.0), col_dir=(0.0, 1.0, 0.0),
                      image_type=None, spacing=(0.7, 0.8)):
    """One CT file of ``pixels_hu [rows, cols]`` (HU) at ImagePositionPatient ``position``,
    stored as int16 with ``slope`` and ``intercept`` (tests of DICOM reading)."""
    from pydicom.dataset import Dataset, FileMetaDataset  # noqa: PLC0415
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid  # noqa: PLC0415

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.SeriesInstanceUID, ds.SeriesDescription = uid, description
    if image_type:
        ds.ImageType = image_type
    ds.Rows, ds.Columns = pixels_hu.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelSpacing = [float(spacing[0]), float(spacing[1])]
    ds.ImageOrientationPatient = [float(v) for v in (*row_dir, *col_dir)]
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = np.round((pixels_hu - intercept) / slope).astype(np.int16).tobytes()
    ds.save_as(path, enforce_file_format=True)
