"""XLA compiler options for the library's own jitted programs (`compiler_options`, `jit`).

On CPU, XLA (jaxlib 0.10) hands every convolution to YNNPACK by default, which
runs the narrow convolutions of our U-Nets (3x3, 16 to 64 channels, batches of
8 slices) on one thread, leaving the other cores idle. XLA's own convolution
uses them all there: without YNNPACK convolutions a ``phantom64``/``chest128``
denoising pass is 11-23% faster and a DDS step 11-12% faster on a 2-core CPU
(``benchmarks/dds.py`` times both side by side), with the same values up to
float32 reassociation. Wide convolutions are the other way round: at 128 to
256 channels YNNPACK is 4-34% faster (the NCSN++ of
``configs/models/ncsnpp_256.py``, 128-256 channels, runs 9% slower without
it), so programs whose widest convolution has `YNN_MIN_CHANNELS` channels or
more keep XLA's defaults. YNNPACK keeps the matrix products and reductions it
gets by default; only ``INDIVIDUAL_CONVOLUTION`` is dropped from its fusion
types.

`compiler_options()` returns the option on a CPU backend and ``{}`` elsewhere
(GPUs and TPUs do not read it), for programs over more than one device (with 4
host devices sharing the cores, a DPS program holding the U-Net, a power
iteration and psums gave a different result on each run, 0.10-0.12 max abs
off the one-device volume, with the option and none without it: XLA:CPU's
multithreaded convolutions and its host collectives do not mix), for wide networks, when the user chose the
YNNPACK fusion types themselves in ``XLA_FLAGS`` (theirs are kept), or when
this jaxlib does not know the option (checked once by compiling a one-element
program). Pass it to your own ``jax.jit(..., compiler_options=...)`` around a
sampler (`for_denoiser` picks it for a denoiser), or build the program with
`jit`, as the CLI, the sharded sampler and the trainer do. JAX accepts compiler
options on a top-level ``jax.jit`` only, not on one traced inside another.
"""

from __future__ import annotations

import functools
import os

import jax
import numpy as np

#: The XLA option naming the operations XLA:CPU gives to YNNPACK.
YNN_FUSION_TYPES = "xla_cpu_experimental_ynn_fusion_type"
#: jaxlib 0.10's default YNNPACK fusion types less ``INDIVIDUAL_CONVOLUTION``.
YNN_WITHOUT_CONVOLUTIONS = ",".join(
    f"LIBRARY_FUSION_TYPE_{kind}" for kind in ("INDIVIDUAL_DOT", "DOT", "REDUCE"))
#: Programs whose widest convolution has this many channels or more keep YNNPACK's
#: convolutions (measured faster there at 128-256 channels; XLA's at 16-64).
YNN_MIN_CHANNELS = 128


def compiler_options(backend: str | None = None, *, channels: int | None = None,
                     num_devices: int = 1) -> dict[str, str]:
    """The options the library compiles a program with on ``backend``.

    Args:
      backend: ``"cpu"``, ``"gpu"``, ``"tpu"``...; ``None`` for `jax.default_backend`.
      channels: the widest convolution's channel count in the program (`conv_channels`);
        ``None`` when unknown or when it has none.
      num_devices: how many devices the program runs on (its mesh's size).

    Returns:
      ``{YNN_FUSION_TYPES: YNN_WITHOUT_CONVOLUTIONS}`` on CPU for one-device programs
      narrower than `YNN_MIN_CHANNELS` (convolutions run by XLA on every core); ``{}`` for
      wider ones, for programs over several devices, on other backends, when ``XLA_FLAGS``
      already sets the YNNPACK fusion types, or when this jaxlib rejects the option.
    """
    backend = jax.default_backend() if backend is None else backend
    if backend != "cpu" or YNN_FUSION_TYPES in os.environ.get("XLA_FLAGS", ""):
        return {}
    if num_devices > 1:
        return {}
    if channels is not None and channels >= YNN_MIN_CHANNELS:
        return {}
    return dict(_cpu_options())


def conv_channels(weights) -> int | None:
    """The most output channels of any spatial convolution kernel among the leaves of
    ``weights`` (arrays ``[kh, kw, in, out]`` with ``kh * kw > 1``, Flax's layout; a
    U-Net's skip concatenations widen inputs, not the layer); ``None`` if there is none."""
    widths = [leaf.shape[3] for leaf in jax.tree.leaves(weights)
              if getattr(leaf, "ndim", 0) == 4 and leaf.shape[0] * leaf.shape[1] > 1]
    return max(widths, default=None)


def for_denoiser(denoise_fn, backend: str | None = None, *, num_devices: int = 1
                 ) -> dict[str, str]:
    """`compiler_options` for a program around ``denoise_fn`` on ``num_devices`` devices:
    sized by the convolutions of its weights when it is an `iscs_jax.denoiser.Denoiser`,
    else by none."""
    return compiler_options(backend, channels=conv_channels(getattr(denoise_fn, "weights", ())),
                            num_devices=num_devices)


@functools.cache
def _cpu_options() -> tuple[tuple[str, str], ...]:
    """The CPU options if this jaxlib compiles with them, else none (checked once)."""
    options = ((YNN_FUSION_TYPES, YNN_WITHOUT_CONVOLUTIONS),)
    try:
        jax.jit(lambda x: x + 1, compiler_options=dict(options)).lower(
            np.float32(0)).compile()
    except Exception:  # an unknown option or value: XLA's defaults still work
        return ()
    return options


def jit(fun, *, channels: int | None = None, denoiser=None, num_devices: int = 1, **kwargs):
    """``jax.jit(fun, **kwargs)`` compiled with ``compiler_options(channels=channels,
    num_devices=num_devices)``, or with `for_denoiser` of ``denoiser`` when one is given (a
    ``compiler_options`` given here wins for the keys it names).

    The backend is read when this is called, so call it where the program is built,
    not at import time.
    """
    ours = (compiler_options(channels=channels, num_devices=num_devices) if denoiser is None
            else for_denoiser(denoiser, num_devices=num_devices))
    options = {**ours, **kwargs.pop("compiler_options", {})}
    return jax.jit(fun, compiler_options=options or None, **kwargs)
