"""Sharded reconstruction: a volume's slices split over a one-axis device mesh.

`reconstruct_sharded` runs `dds.reconstruct` under ``jax.shard_map``. The slice
count D is zero-padded up to a multiple of the device count n; device i holds
the block of padded slices ``i * D_pad / n .. (i + 1) * D_pad / n - 1`` and

* denoises its own slices (in chunks), with no communication;
* draws its own slices' noise from the shared key and the *global* slice ids
  (`noise.py` is a function of (key, slice id)), with no communication;
* runs data consistency locally for slice-wise operators (``slicewise``), the
  CG inner products ``lax.psum``-reduced over the mesh axis (one scalar
  all-reduce each), so the iteration is the one a single device would run;
* for slice-coupling operators, applies ``operator.A_sharded`` /
  ``AT_sharded`` (e.g. `operators.zaxis.ZBlur`: a ppermute halo exchange).

Padded slices carry ``slice_mask == 0``: they are zero in every CG vector and
in the output, and stripped before returning. Results equal the single-device
ones up to float reassociation of the reductions (~1e-7 relative).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from iscs_jax import parallel
from iscs_jax.operators import protocol
from iscs_jax.samplers import dds

#: Sampler arguments that are Python values (part of the compiled program).
STATIC_KWARGS = ("noise", "mode", "eta", "cg_iters", "chunk_size")
#: Arguments the sharded entry point sets itself.
_RESERVED = ("axis_name", "slice_ids", "num_slices", "slice_mask")


@dataclasses.dataclass(frozen=True)
class ShardedView:
    """A slice-coupling operator seen from one device inside ``jax.shard_map``.

    Its ``A`` / ``AT`` map local blocks to local blocks (the collectives are
    inside ``operator.A_sharded`` / ``AT_sharded``), so the sampler may treat
    it as slice-local (``slicewise`` True).
    """

    operator: Any
    axis_name: str
    slice_mask: jax.Array

    slicewise = True

    def A(self, x):
        return self.operator.A_sharded(x, self.axis_name, self.slice_mask)

    def AT(self, y):
        return self.operator.AT_sharded(y, self.axis_name, self.slice_mask)


def local_operator(operator, axis_name: str, slice_mask: jax.Array):
    """The operator to apply to local blocks: itself if slice-wise, else a `ShardedView`."""
    if getattr(operator, "slicewise", False):
        return operator
    if hasattr(operator, "A_sharded") and hasattr(operator, "AT_sharded"):
        return ShardedView(operator, axis_name, slice_mask)
    raise ValueError(
        f"{type(operator).__name__} couples slices (slicewise is not True) and has no "
        "A_sharded/AT_sharded; implement them (halo exchange or all-gather over axis_name) "
        "or reconstruct on one device.")


def _local_reconstruct(operator, denoise_fn, axis_name, num_slices, static, key, y, x_init,
                       sigmas, rho):
    """The per-device body: local slice ids and mask, then `dds.reconstruct`."""
    num_local = -(-num_slices // jax.lax.axis_size(axis_name))
    slice_ids = parallel.local_slice_ids(num_local, axis_name)
    mask = (slice_ids < num_slices).astype(jnp.float32)
    view = local_operator(operator, axis_name, mask)
    y = protocol.local_measurement(operator, y, axis_name)  # a global operator's share
    return dds.reconstruct(
        key, y, view, denoise_fn, sigmas=sigmas, rho=rho,
        x_init=x_init, axis_name=axis_name, slice_ids=slice_ids, num_slices=num_slices,
        slice_mask=mask, **dict(static))


def build_sharded(operator, denoise_fn: Callable, mesh: Mesh, num_slices: int, *,
                  with_x_init: bool = False, **static) -> Callable:
    """The jitted sharded sampler ``f(key, y_pad, x_init_pad, sigmas, rho) -> x_pad``.

    ``y_pad`` / ``x_init_pad`` have ``parallel.padded_size(D, n)`` slices (pass
    ``None`` for ``x_init_pad`` unless ``with_x_init``). Cached on its
    (hashable) arguments, so repeated calls reuse one compiled program; exposed
    for benchmarks and for inspecting the compiled HLO.

    Args:
      operator, denoise_fn: as for `dds.reconstruct`.
      mesh: a one-axis mesh, e.g. `parallel.make_mesh`.
      num_slices: D, the real (unpadded) slice count.
      with_x_init: whether a warm start is passed.
      **static: the Python-valued sampler arguments (`STATIC_KWARGS`).

    Returns:
      a ``jax.jit``-compiled function returning the padded volume ``[D_pad, H, W]``,
      sharded over the mesh (padded slices are 0). Its program holds no
      all-gather: stripping the padding is left to the caller, because an
      uneven D cannot stay sharded and would be gathered onto every device.
    """
    unknown = set(static) - set(STATIC_KWARGS)
    if unknown:
        raise ValueError(f"build_sharded: unexpected arguments {sorted(unknown)}; "
                         f"static sampler arguments are {STATIC_KWARGS}.")
    items = tuple(sorted(static.items()))
    try:
        return _build_cached(operator, denoise_fn, mesh, num_slices, with_x_init, items)
    except TypeError:  # an unhashable operator or noise function: build uncached
        return _build_cached.__wrapped__(operator, denoise_fn, mesh, num_slices, with_x_init,
                                         items)


@functools.lru_cache(maxsize=32)
def _build_cached(operator, denoise_fn, mesh, num_slices, with_x_init, static_items):
    if len(mesh.axis_names) != 1:
        raise ValueError(f"mesh must have one axis (the slice axis), got {mesh.axis_names}; "
                         "build it with parallel.make_mesh.")
    axis = mesh.axis_names[0]
    sliced, whole = PartitionSpec(axis), PartitionSpec()
    y_spec = whole if protocol.coupling(operator) == "global" else sliced
    # check_vma=False: operators and denoisers are written for plain arrays (e.g. a scan whose
    # zero-initialised carry becomes device-varying); every psum in the sampler reduces
    # per-device partial sums, which is what it computes without the check.
    body = functools.partial(_local_reconstruct, operator, denoise_fn, axis, num_slices,
                             static_items)
    mapped = jax.shard_map(body, mesh=mesh,
                           in_specs=(whole, y_spec, sliced, whole, whole),
                           out_specs=sliced, check_vma=False)
    return jax.jit(mapped)


def reconstruct_sharded(key: jax.Array, y: jax.Array, operator, denoise_fn: Callable, *,
                        mesh: Mesh, sigmas, x_init=None, rho=1.0, **sampler_kwargs) -> jax.Array:
    """`dds.reconstruct` with the slices sharded over ``mesh``; same result on any device count.

    Args:
      key: ``jax.random`` key (shared by all devices).
      y: measurements ``[D, ...]`` (leading axis: slices), e.g. ``[D, angles, detectors]``,
        or for a ``"global"`` operator (`operators.protocol`) its whole measurement, which
        every device receives and cuts with ``local_measurement``; host data, the same on
        every process of a multi-host run (see `parallel.shard_slices`).
      operator: slice-wise (``slicewise`` True) or with ``A_sharded`` / ``AT_sharded``.
      denoise_fn: ``DenoiseFn(x [c, H, W], sigma) -> [c, H, W]``.
      mesh: one-axis mesh over the devices to use (`parallel.make_mesh`).
      sigmas: ``[N]`` noise levels.
      x_init: optional warm start ``[D, H, W]``.
      rho: Tikhonov weight, scalar or ``[N]``.
      **sampler_kwargs: ``noise`` (required), ``mode``, ``eta``, ``cg_iters``,
        ``chunk_size`` (per device) as for `dds.reconstruct`.

    Returns:
      the reconstruction ``[D, H, W]``, a global array: sharded over ``mesh`` when
      the device count divides D, else as JAX lays out the stripped slice. Use
      `parallel.gather_to_host` to get it as numpy on every process.
    """
    reserved = set(sampler_kwargs) & set(_RESERVED)
    if reserved:
        raise ValueError(f"reconstruct_sharded sets {sorted(reserved)} itself; drop them.")
    if "noise" not in sampler_kwargs:
        raise ValueError("noise is required: a noise kind ('iid', 'iscs', 'shared') or NoiseFn.")
    num_slices = protocol.num_slices(operator, y)
    size = parallel.padded_size(num_slices, mesh.size)
    if protocol.coupling(operator) == "global":  # y has no slice axis: every device gets it
        host = np.asarray(y, np.float32)
        y_pad = jax.make_array_from_callback(host.shape, parallel.replicated(mesh),
                                             lambda index: host[index])
    else:
        y_pad = parallel.shard_slices(y, mesh, size)
    if x_init is not None:
        if np.shape(x_init)[0] != num_slices:
            raise ValueError(f"x_init has {np.shape(x_init)[0]} slices but y has {num_slices}.")
        x_init = parallel.shard_slices(x_init, mesh, size)
    fn = build_sharded(operator, denoise_fn, mesh, num_slices, with_x_init=x_init is not None,
                       **sampler_kwargs)
    x_pad = fn(key, y_pad, x_init, jnp.asarray(sigmas, jnp.float32),
               jnp.asarray(rho, jnp.float32))
    return x_pad if size == num_slices else x_pad[:num_slices]
