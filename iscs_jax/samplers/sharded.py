"""Sharded reconstruction: a volume's slices split over a one-axis device mesh.

`reconstruct_sharded` runs any sampler of `SAMPLERS` (by name) under
``jax.shard_map``. The slice count D is zero-padded up to a multiple of the
device count n; device i holds the block of padded slices
``i * D_pad / n .. (i + 1) * D_pad / n - 1`` (`layout.SliceLayout.shard`) and

* denoises its own slices (in chunks), with no communication;
* draws its own slices' noise from the shared key and the *global* slice ids
  (`noise.py` is a function of (key, slice id)), with no communication;
* applies slice-wise operators locally; slice-coupling ones through their
  ``A_sharded`` / ``AT_sharded`` (e.g. `operators.zaxis.ZBlur`: a ppermute halo
  exchange); a ``"global"`` operator receives the whole y and cuts its own
  share (``local_measurement``);
* reduces global inner products and norms with ``lax.psum`` (one scalar each),
  and exchanges one halo slice per neighbour for finite differences in z
  (ADMM z-TV), so the iteration is the one a single device would run.

Padded slices are zero in every iterate and in the output, and stripped before
returning. Results equal the single-device ones up to float reassociation of the
reductions (~1e-7 relative).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from iscs_jax import parallel, xla_options
from iscs_jax.denoiser import Denoiser
from iscs_jax.operators import protocol
from iscs_jax.samplers import core, dispatch
from iscs_jax.samplers.layout import SliceLayout, coupling, local_measurement

#: Arguments the sharded entry point sets itself.
_RESERVED = ("layout", "python_loop", "window")


def _local_reconstruct(sampler, operator, apply, axis_name, num_slices, num_local, static,
                       window_shape, key, y, x_init, sigmas, x_window, first, weights):
    """The per-device body: this device's `SliceLayout`, then the sampler (or a piece of it
    when ``window_shape`` is ``(count, final)``) with the denoiser ``Denoiser(apply,
    weights)``, its weights an input of the program."""
    layout = SliceLayout.shard(num_local, num_slices, axis_name)
    window = None if window_shape is None else core.Window(x_window, first, *window_shape)
    return dispatch.get_sampler(sampler)(
        key, local_measurement(operator, y, layout), operator, Denoiser(apply, weights),
        sigmas=sigmas, x_init=x_init, layout=layout, window=window, **dict(static))


def build_sharded(operator, denoise_fn: Callable, mesh: Mesh, num_slices: int, *,
                  sampler: str = "dds", with_x_init: bool = False,
                  window_shape: tuple[int, bool] | None = None, **static) -> Callable:
    """The jitted sharded sampler ``f(key, y, x_init_pad, sigmas, x_window_pad, first) -> x_pad``.

    ``y`` is sharded by slice with ``parallel.padded_size(D, n)`` slices (replicated
    and whole for a ``"global"`` operator); ``x_init_pad`` likewise, or ``None``
    unless ``with_x_init``. Cached on its (hashable) arguments, so repeated calls
    reuse one compiled program; exposed for benchmarks and for inspecting the
    compiled HLO.

    Args:
      operator, denoise_fn: as for the sampler.
      mesh: a one-axis mesh, e.g. `parallel.make_mesh`.
      num_slices: D, the real (unpadded) slice count.
      sampler: a key of `SAMPLERS`.
      with_x_init: whether a warm start is passed.
      window_shape: ``None`` for a whole run (``x_window_pad`` and ``first`` are then
        ignored, pass ``None``), or ``(count, final)`` of a `core.Window` whose iterate
        ``x_window_pad`` (padded and sharded like the result, or ``None`` for the
        initial draw) and first step ``first`` are arguments.
      **static: the sampler's other keyword arguments (``noise``, ``renoise``,
        ``eta``, ``chunk_size``, ``final_denoise`` and its own settings); Python values.

    Returns:
      a function running a ``jax.jit``-compiled program (its ``.lower(...)`` lowers it)
      that returns the padded volume ``[D_pad, H, W]``, sharded over the mesh (padded
      slices are 0). Its program holds no all-gather: stripping the padding is left to
      the caller. A `iscs_jax.denoiser.Denoiser`'s weights are replicated on the mesh
      once, when this is built, and passed to the program as an input, not compiled
      into it.
    """
    dispatch.get_sampler(sampler)  # a clear error for an unknown name
    reserved = set(static) & set(_RESERVED)
    if reserved:
        raise ValueError(f"The sharded sampler sets {sorted(reserved)} itself; drop them.")
    if len(mesh.axis_names) != 1:
        raise ValueError(f"mesh must have one axis (the slice axis), got {mesh.axis_names}; "
                         "build it with parallel.make_mesh.")
    items = tuple(sorted(static.items()))
    args = (sampler, operator, denoise_fn, mesh, num_slices, with_x_init, window_shape, items)
    try:
        return _build_cached(*args)
    except TypeError:  # an unhashable operator, noise function or setting: build uncached
        return _build_cached.__wrapped__(*args)


@functools.lru_cache(maxsize=32)
def _build_cached(sampler, operator, denoise_fn, mesh, num_slices, with_x_init, window_shape,
                  static_items):
    del with_x_init  # part of the cache key: None and an array trace differently
    axis = mesh.axis_names[0]
    sliced, whole = PartitionSpec(axis), PartitionSpec()
    y_spec = whole if coupling(operator) == "global" else sliced
    num_local = parallel.padded_size(num_slices, mesh.size) // mesh.size
    denoiser = Denoiser.of(denoise_fn)
    # The weights are placed on the mesh once (replicated), here, and passed to every call
    # as an argument: compiled in as constants they would make the program as large as the
    # network (NCSN++ 256: 492 MB of program text instead of 0.66 MB).
    weights = parallel.replicate(denoiser.weights, mesh)
    # check_vma=False: operators and denoisers are written for plain arrays (e.g. a scan whose
    # zero-initialised carry becomes device-varying); every psum in the samplers reduces
    # per-device partial sums, which is what it computes without the check.
    body = functools.partial(_local_reconstruct, sampler, operator, denoiser.apply, axis,
                             num_slices, num_local, static_items, window_shape)
    mapped = jax.shard_map(body, mesh=mesh,
                           in_specs=(whole, y_spec, sliced, whole, sliced, whole, whole),
                           out_specs=sliced, check_vma=False)
    jitted = xla_options.jit(mapped, denoiser=denoiser)

    def sharded(key, y, x_init, sigmas, x_window, first):
        return jitted(key, y, x_init, sigmas, x_window, first, weights)

    sharded.lower = lambda *args: jitted.lower(*args, weights)  # for inspecting the HLO
    return sharded


def _place_measurement(y, operator, mesh: Mesh, size: int) -> jax.Array:
    if coupling(operator) == "global":
        host = np.asarray(y, np.float32)
        return jax.make_array_from_callback(host.shape, parallel.replicated(mesh),
                                            lambda index: host[index])
    return parallel.shard_slices(y, mesh, size)


def reconstruct_sharded(key: jax.Array, y, operator, denoise_fn: Callable, *, mesh: Mesh,
                        sigmas, sampler: str = "dds", x_init=None,
                        window: core.Window | None = None, **sampler_kwargs) -> jax.Array:
    """Any sampler of `SAMPLERS` with the slices sharded over ``mesh``; same result on any count.

    Args:
      key: ``jax.random`` key (shared by all devices).
      y: measurements; ``[D, ...]`` with slices leading for slice-wise and halo operators
        (e.g. ``[D, angles, detectors]``); host data, the same on every process of a
        multi-host run (see `parallel.shard_slices`).
      operator: slice-wise, or with ``A_sharded`` / ``AT_sharded`` (and
        ``local_measurement`` when its coupling is ``"global"``).
      denoise_fn: ``DenoiseFn(x [c, H, W], sigma) -> [c, H, W]``.
      mesh: one-axis mesh over the devices to use (`parallel.make_mesh`).
      sigmas: ``[N]`` noise levels.
      sampler: a key of `SAMPLERS` (``"dds"``, ``"ddnm"``, ``"dps"``, ``"admm_tv"``).
      x_init: optional warm start ``[D, H, W]``.
      window: run a piece of the steps (`core.Window`); its ``x`` is ``None`` or what
        the previous piece returned.
      **sampler_kwargs: ``noise`` (required), ``renoise``, ``eta``, ``chunk_size`` (per
        device), ``final_denoise`` and the sampler's own settings (e.g. DDS ``cg_iters``,
        ``rho``).

    Returns:
      the reconstruction ``[D, H, W]``, a global array: sharded over ``mesh`` when
      the device count divides D, else as JAX lays out the stripped slice. Use
      `parallel.gather_to_host` to get it as numpy on every process. With a
      ``window``: the padded iterate ``[D_pad, H, W]`` sharded over ``mesh`` (feed it
      to the next piece; strip ``[:D]`` after the last).
    """
    if "noise" not in sampler_kwargs:
        raise ValueError("noise is required: a noise kind ('iid', 'iscs', 'shared') or NoiseFn.")
    num_slices = protocol.num_slices(operator, y)
    size = parallel.padded_size(num_slices, mesh.size)
    y_placed = _place_measurement(y, operator, mesh, size)
    if x_init is not None:
        if np.shape(x_init)[0] != num_slices:
            raise ValueError(f"x_init has {np.shape(x_init)[0]} slices but y has {num_slices}.")
        x_init = parallel.shard_slices(x_init, mesh, size)
    window_shape = None if window is None else (int(window.count), bool(window.final))
    fn = build_sharded(operator, denoise_fn, mesh, num_slices, sampler=sampler,
                       with_x_init=x_init is not None, window_shape=window_shape,
                       **sampler_kwargs)
    x_window, first = (None, None) if window is None else (window.x, jnp.int32(window.first))
    x_pad = fn(key, y_placed, x_init, jnp.asarray(sigmas, jnp.float32), x_window, first)
    if window is not None or size == num_slices:
        return x_pad
    return x_pad[:num_slices]
