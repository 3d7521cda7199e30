"""Training data: procedural CT-like phantoms, NIfTI slices, deterministic batches."""

from iscs_jax.data.batches import batch_at, batch_indices, batches_per_epoch, iterate_batches
from iscs_jax.data.nifti import WINDOWS, load_nifti_slices
from iscs_jax.data.phantom import (Ellipsoid, ellipse_line_integrals, ellipse_slice,
                                   ellipsoid_components, phantom_slices, phantom_volume)

__all__ = [
    "Ellipsoid", "WINDOWS", "batch_at", "batch_indices", "batches_per_epoch",
    "ellipse_line_integrals", "ellipse_slice", "ellipsoid_components", "iterate_batches",
    "load_nifti_slices", "phantom_slices", "phantom_volume",
]
