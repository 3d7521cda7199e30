"""The reconstruction runtime: a sampler compiled once, run in pieces on one or many devices.

`Reconstructor` is what the command line runs and what a JAX user imports::

    recon = runtime.Reconstructor(operator, denoiser, sigmas=sigmas, sampler="dds",
                                  mesh=parallel.make_mesh(), cg_iters=5)
    volume = recon.reconstruct(key, y, noise="iscs", on_step=lambda i: bar.update())

One program shape serves every device count: the sampler runs under
``jax.shard_map`` over a one-axis mesh (one device when no mesh is given), the
slices zero-padded to a multiple of the device count and split in blocks
(`samplers.layout.SliceLayout.shard`). Each device denoises its own slices and
draws their noise from the shared key and their global ids, so the result does
not depend on the device count (up to float reassociation of the global sums).

A run is driven from Python one step at a time (`samplers.core.run_in_pieces`):
its set-up (``A^T y``, DPS's ``||A||^2``: a `samplers.core.Setup`) once, the
initial draw, one program call per step, the optional final Tweedie step. The
progress callback is plain Python between the calls: no host callback inside a
compiled program, so JAX's persistent compilation cache keeps every program. The
noise control is an input of the programs (a ``lax.switch`` over the
controls named at construction), so one compilation serves them all.

The programs are module-level ``jax.jit`` functions whose static arguments
(sampler name, operator, the denoiser's ``apply``, mesh, settings) are compared
by value: two `Reconstructor` objects built from equal settings share compiled
programs. A `denoiser.Denoiser`'s weights are placed on the mesh once and passed
to every call as an input, not compiled in.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec

from iscs_jax import noise as noise_lib
from iscs_jax import parallel, xla_options
from iscs_jax.denoiser import Denoiser
from iscs_jax.operators import protocol
from iscs_jax.samplers import core, dispatch
from iscs_jax.samplers.layout import SliceLayout, coupling, local_measurement

#: Sampler keywords the runtime sets itself.
RESERVED = ("layout", "python_loop", "window", "setup", "setup_only", "noise", "x_init",
            "sigmas")


class Run(NamedTuple):
    """One measurement placed on the mesh, with its set-up (`Reconstructor.prepare`).

    Attributes:
      y: the measurement, sharded by slice (replicated for a ``"global"`` operator).
      x_init: the warm start ``[D_pad, H, W]`` sharded by slice, or ``None``.
      setup: the run's `samplers.core.Setup` (``A^T y`` sharded like the iterate).
      num_slices: D, the real (unpadded) slice count.
    """

    y: jax.Array
    x_init: jax.Array | None
    setup: core.Setup
    num_slices: int


def switch_noise(noises: tuple, index: jax.Array) -> Callable:
    """A `noise.NoiseFn` running ``noises[index]`` (names or NoiseFns; one program for all)."""
    fns = [noise_lib.make_noise_fn(n) if isinstance(n, str) else n for n in noises]
    if len(fns) == 1:
        return fns[0]

    def noise_fn(key, slice_ids, num_slices, slice_shape):
        branches = [functools.partial(f, num_slices=num_slices, slice_shape=tuple(slice_shape))
                    for f in fns]
        return jax.lax.switch(index, [lambda k, ids, f=f: f(k, ids) for f in branches],
                              key, slice_ids)

    return noise_fn


class Piece(NamedTuple):
    """What a program is compiled for (its static argument; hashable, compared by value).

    Attributes:
      sampler, operator, apply, noises, settings: the `Reconstructor`'s (``apply`` its
        denoiser's), ``settings`` as sorted ``(name, value)`` pairs.
      num_slices: D; num_local: slices per device after padding.
      count, final: the `core.Window`'s; setup_only: the program computes the `core.Setup`.
    """

    sampler: str
    operator: object
    apply: Callable
    noises: tuple
    settings: tuple
    num_slices: int
    num_local: int
    count: int = 0
    final: bool = False
    setup_only: bool = False


def _local_piece(piece: Piece, axis, key, y, x_init, sigmas, noise_index, x, first, setup,
                 weights):
    """The per-device body of every program: this device's layout, then the sampler on a
    `core.Window` (or its set-up alone)."""
    layout = SliceLayout.shard(piece.num_local, piece.num_slices, axis)
    window = None if piece.setup_only else core.Window(x, first, piece.count, piece.final)
    return dispatch.get_sampler(piece.sampler)(
        key, local_measurement(piece.operator, y, layout), piece.operator,
        Denoiser(piece.apply, weights), noise=switch_noise(piece.noises, noise_index),
        sigmas=sigmas, x_init=x_init, layout=layout, window=window, setup=setup,
        setup_only=piece.setup_only, **dict(piece.settings))


def _reconstruct_piece(static: Piece, key, y, x_init, sigmas, noise_index, x, first, setup,
                       weights, *, mesh):
    """`_local_piece` under ``jax.shard_map`` over ``mesh`` (traced inside the jit)."""
    axis = mesh.axis_names[0]
    sliced, whole = PartitionSpec(axis), PartitionSpec()
    y_spec = whole if coupling(static.operator) == "global" else sliced
    setup_spec = core.Setup(sliced, whole)
    out_spec = setup_spec if static.setup_only else sliced
    in_setup = whole if setup is None else setup_spec
    # check_vma=False: operators and denoisers are written for plain arrays (e.g. a scan whose
    # zero-initialised carry becomes device-varying); every psum in the samplers reduces
    # per-device partial sums, which is what it computes without the check.
    mapped = jax.shard_map(
        functools.partial(_local_piece, static, axis), mesh=mesh,
        in_specs=(whole, y_spec, sliced, whole, whole, sliced, whole, in_setup, whole),
        out_specs=out_spec, check_vma=False)
    return mapped(key, y, x_init, sigmas, noise_index, x, first, setup, weights)


@functools.cache
def _jitted(options: tuple[tuple[str, str], ...]):
    """The runtime's program jitted once per set of compiler options (a value)."""
    return jax.jit(_reconstruct_piece, static_argnames=("static", "mesh"),
                   compiler_options=dict(options) or None)


class Reconstructor:
    """A sampler compiled once for an operator, a denoiser and a schedule.

    Args:
      operator: a linear operator of `iscs_jax.operators` (hashable: it is a static
        argument of the programs).
      denoise_fn: a `denoiser.Denoiser` (weights passed as inputs) or any
        ``DenoiseFn(x [c, H, W], sigma) -> [c, H, W]`` (hashable).
      sigmas: ``[N]`` decreasing noise levels.
      sampler: a key of `samplers.SAMPLERS`.
      noises: the noise controls a run may use (names of `noise.NOISE_KINDS` or
        `noise.NoiseFn` callables); one compilation serves all of them.
      mesh: a one-axis device mesh (`parallel.make_mesh`); ``None``: the default device.
      **settings: the sampler's keywords besides the arrays: ``renoise``, ``eta``,
        ``chunk_size`` (slices per denoiser call on each device), ``final_denoise`` and
        its own settings (e.g. DDS ``cg_iters``, ``rho``); plain Python values.

    Raises:
      ValueError: an unknown sampler or noise control, bad settings or mesh, or a schedule
        that is not finite, positive and non-increasing.
    """

    def __init__(self, operator, denoise_fn, *, sigmas, sampler: str = "dds",
                 noises: Sequence = tuple(sorted(noise_lib.NOISE_KINDS)),
                 mesh: Mesh | None = None, **settings):
        dispatch.get_sampler(sampler)  # a clear error for an unknown name
        reserved = sorted(set(settings) & set(RESERVED))
        if reserved:
            raise ValueError(f"The runtime sets {reserved} itself; drop them from the settings.")
        own = {k: v for k, v in settings.items() if k in _own_fields(sampler)}
        dispatch.SETTINGS[sampler](**own)  # a clear error for bad settings, before compiling
        self.mesh = parallel.make_mesh(1) if mesh is None else mesh
        if len(self.mesh.axis_names) != 1:
            raise ValueError(f"mesh must have one axis (the slice axis), got "
                             f"{self.mesh.axis_names}; build it with parallel.make_mesh.")
        self.noises = tuple(noises)
        for name in self.noises:
            if isinstance(name, str):
                noise_lib.make_noise_fn(name)
        self.operator, self.sampler = operator, sampler
        core.check_sigmas(sigmas)
        self.sigmas = jnp.asarray(sigmas, jnp.float32)
        self.settings = tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                                     for k, v in settings.items()))
        self.final_denoise = bool(settings.get("final_denoise", False))
        denoiser = Denoiser.of(denoise_fn)
        self._apply = denoiser.apply
        self._weights = parallel.replicate(denoiser.weights, self.mesh)
        options = xla_options.for_denoiser(denoiser, num_devices=self.mesh.size)
        self._program = _jitted(tuple(sorted(options.items())))

    @property
    def num_steps(self) -> int:
        """N, the number of sampler steps."""
        return int(self.sigmas.shape[0])

    def _static(self, num_slices: int, count: int = 0, final: bool = False,
                setup_only: bool = False) -> Piece:
        size = parallel.padded_size(num_slices, self.mesh.size)
        return Piece(self.sampler, self.operator, self._apply, self.noises, self.settings,
                     int(num_slices), size // self.mesh.size, int(count), bool(final),
                     bool(setup_only))

    def _call(self, static, key, run_y, x_init, noise_index, x, first, setup, lower=False):
        fn = self._program.lower if lower else self._program
        return fn(static, key, run_y, x_init, self.sigmas, noise_index, x, first, setup,
                  self._weights, mesh=self.mesh)

    def _noise_index(self, noise) -> jax.Array:
        if noise not in self.noises:
            raise ValueError(f"noise {noise!r} is not among this Reconstructor's noise "
                             f"controls {list(self.noises)}; pass it in `noises`.")
        return jnp.int32(self.noises.index(noise))

    def prepare(self, y, x_init=None) -> Run:
        """Places ``y`` (and the warm start) on the mesh and computes the run's set-up once.

        Args:
          y: measurement, host data ``[D, ...]`` with slices leading for slice-wise and
            halo operators; the same on every process of a multi-host run.
          x_init: optional warm start ``[D, H, W]`` (host data).

        Returns:
          a `Run` to pass to `reconstruct` (any number of times: keys, noise controls).
        """
        num_slices = protocol.num_slices(self.operator, y)
        size = parallel.padded_size(num_slices, self.mesh.size)
        y_placed = _place_measurement(y, self.operator, self.mesh, size)
        if x_init is not None:
            if np.shape(x_init)[0] != num_slices:
                raise ValueError(f"x_init has {np.shape(x_init)[0]} slices but y has "
                                 f"{num_slices}.")
            x_init = parallel.shard_slices(x_init, self.mesh, size)
        setup = self._call(self._static(num_slices, setup_only=True), jax.random.key(0),
                           y_placed, x_init, jnp.int32(0), None, jnp.int32(0), None)
        return Run(y_placed, x_init, setup, num_slices)

    def piece(self, key: jax.Array, run: Run, window: core.Window, noise="iscs") -> jax.Array:
        """One piece of a run (`samplers.core.Window`): the padded iterate ``[D_pad, H, W]``
        sharded over the mesh (padding slices 0)."""
        static = self._static(run.num_slices, window.count, window.final)
        return self._call(static, key, run.y, run.x_init, self._noise_index(noise), window.x,
                          jnp.int32(window.first), run.setup)

    def reconstruct(self, key: jax.Array, y, *, noise="iscs", x_init=None,
                    on_step: Callable[[int], None] | None = None,
                    start: tuple[int, jax.Array] | None = None,
                    on_iterate: Callable[[int, jax.Array], None] | None = None) -> jax.Array:
        """One reconstruction, driven from Python one step at a time.

        Args:
          key: ``jax.random`` key (the same on every process).
          y: a `Run` from `prepare`, or the measurement (then ``x_init`` is its warm start
            and the set-up is computed here).
          noise: one of the noise controls given at construction.
          x_init: warm start ``[D, H, W]`` when ``y`` is a measurement.
          on_step: called with i after step i has finished (e.g. to advance a progress bar).
          start: ``(steps_done, x_pad)``: continue from the padded iterate after that many
            steps (what ``on_iterate`` was given, e.g. restored by
            `iscs_jax.checkpoint.IterateCheckpoints`); the result is the uninterrupted
            run's, bit for bit on the same devices.
          on_iterate: called with ``(steps_done, x_pad)`` after each step: the padded
            iterate ``[D_pad, H, W]`` on the mesh (e.g. to checkpoint it).

        Returns:
          the reconstruction ``[D, H, W]``, a global array over the mesh (use
          `parallel.gather_to_host` for numpy on every process).
        """
        run = y if isinstance(y, Run) else self.prepare(y, x_init)
        x = core.run_in_pieces(functools.partial(self.piece, key, run, noise=noise),
                               self.num_steps, final_denoise=self.final_denoise,
                               on_step=on_step, start=start, on_iterate=on_iterate)
        return x if x.shape[0] == run.num_slices else x[:run.num_slices]

    def iterate_like(self, run: Run) -> jax.ShapeDtypeStruct:
        """The padded iterate's shape, dtype and sharding (a restore target)."""
        aty = run.setup.aty
        return jax.ShapeDtypeStruct(aty.shape, aty.dtype, sharding=aty.sharding)

    def compile(self, run: Run) -> float:
        """Compiles every program a run of ``run``'s shapes needs (the set-up is compiled by
        `prepare`): the initial draw, a step and the final step; returns the seconds."""
        start = time.perf_counter()
        key, index, x = jax.random.key(0), jnp.int32(0), self.iterate_like(run)
        pieces = [(None, 0, False), (x, 1, False)] + ([(x, 0, True)] if self.final_denoise
                                                       else [])
        for x_window, count, final in pieces:
            self._call(self._static(run.num_slices, count, final), key, run.y, run.x_init,
                       index, x_window, index, run.setup, lower=True).compile()
        return time.perf_counter() - start

    def lower(self, run: Run, count: int = 1):
        """The lowered program of a ``count``-step piece (for inspecting its HLO)."""
        x = self.iterate_like(run)
        return self._call(self._static(run.num_slices, count), jax.random.key(0), run.y,
                          run.x_init, jnp.int32(0), x, jnp.int32(0), run.setup, lower=True)


def _own_fields(sampler: str) -> tuple[str, ...]:
    """The names of a sampler's own settings (its `SETTINGS` dataclass fields)."""
    return tuple(f.name for f in dataclasses.fields(dispatch.SETTINGS[sampler]))


def _place_measurement(y, operator, mesh: Mesh, size: int) -> jax.Array:
    """``y`` sharded by slice over ``mesh`` (replicated whole for a ``"global"`` operator)."""
    if coupling(operator) == "global":
        host = np.asarray(y, np.float32)
        return jax.make_array_from_callback(host.shape, parallel.replicated(mesh),
                                            lambda index: host[index])
    return parallel.shard_slices(y, mesh, size)


@functools.partial(jax.jit, static_argnames=("operator",))
def _baseline(y, *, operator):
    return operator.baseline(y)


def baseline(operator, y) -> tuple[np.ndarray, float]:
    """The operator's baseline reconstruction (FBP, FDK, ...) of ``y``, compiled first.

    Returns:
      ``(volume [D, H, W] as numpy, seconds of the computation without compilation)``.
    """
    _baseline.lower(y, operator=operator).compile()
    start = time.perf_counter()
    volume = np.asarray(jax.block_until_ready(_baseline(y, operator=operator)))
    return volume, time.perf_counter() - start


def reconstruct(key: jax.Array, y, operator, denoise_fn, *, sigmas, sampler: str = "dds",
                noise="iscs", mesh: Mesh | None = None, x_init=None,
                on_step: Callable[[int], None] | None = None, **settings) -> jax.Array:
    """`Reconstructor` ``(...).reconstruct(...)`` in one call (see `Reconstructor`)."""
    recon = Reconstructor(operator, denoise_fn, sigmas=sigmas, sampler=sampler,
                          noises=(noise,), mesh=mesh, **settings)
    return recon.reconstruct(key, y, noise=noise, x_init=x_init, on_step=on_step)


__all__ = ["Reconstructor", "Run", "baseline", "reconstruct", "switch_noise", "RESERVED"]
