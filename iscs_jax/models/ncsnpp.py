"""NCSN++ (Song et al. 2021, score_sde) in flax NNX: the network of the published CT/MRI priors.

``NCSNpp(cfg)(x [N, H, W, C], sigma [N]) -> score [N, H, W, C]``: the
continuous VE score model with BigGAN residual blocks, FIR up/down-sampling
(`iscs_jax.models.fir`), a residual input pyramid, Gaussian Fourier
embedding of log(sigma) and an output divided by sigma (``scale_by_sigma``).
With ``centered=False`` the model maps its input x in [0, 1] to 2x - 1 itself.
The Tweedie denoiser is x0_hat = x + sigma^2 score (`make_denoise_fn`).

Only the configuration family of the published priors is implemented
(``resblock_type="biggan"``, ``fir=True``, ``progressive="none"``,
``progressive_input`` "residual" or "none", ``embedding_type="fourier"``);
others are a `ValueError` naming the field.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from iscs_jax.models import conv, fir, precision
from iscs_jax.denoiser import Denoiser

#: Fields whose value must be exactly this (the variants we do not implement).
_FIXED = {"resblock_type": ("biggan",), "fir": (True,), "progressive": ("none",),
          "progressive_input": ("residual", "none"), "progressive_combine": ("sum",),
          "embedding_type": ("fourier",), "conv_size": (3,)}


class Buffer(nnx.Variable):
    """A non-trainable tensor of the model (the Fourier frequencies, the ``sigmas`` table)."""


@dataclasses.dataclass(frozen=True)
class NCSNppConfig:
    """Architecture, with score_sde's ``config.model``/``config.data`` names.

    Attributes:
      image_size: H = W of the images.
      num_channels: image channels.
      nf: base width; level i has ``nf * ch_mult[i]`` channels.
      ch_mult: width multiplier per resolution level (each level but the last halves H).
      num_res_blocks: residual blocks per level (the up path has one more).
      attn_resolutions: feature-map sizes with self-attention after each block.
      resblock_type, fir, progressive, progressive_input, progressive_combine,
      embedding_type, conv_size: must be the published values (see `_FIXED`).
      fir_kernel: the 1D FIR kernel of up/down-sampling.
      skip_rescale: divide residual sums by sqrt(2).
      fourier_scale: std of the Fourier frequencies at initialisation.
      scale_by_sigma: divide the output by sigma.
      init_scale: initial scale of the last layers (0: they start at zero).
      centered: False: the model maps its input x to 2x - 1.
      num_scales, sigma_min, sigma_max: the ``sigmas`` buffer (geometric, decreasing).
    """

    image_size: int = 256
    num_channels: int = 1
    nf: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 4
    attn_resolutions: tuple[int, ...] = (16,)
    resblock_type: str = "biggan"
    fir: bool = True
    fir_kernel: tuple[int, ...] = (1, 3, 3, 1)
    skip_rescale: bool = True
    progressive: str = "none"
    progressive_input: str = "residual"
    progressive_combine: str = "sum"
    embedding_type: str = "fourier"
    fourier_scale: float = 16.0
    scale_by_sigma: bool = True
    init_scale: float = 0.0
    conv_size: int = 3
    centered: bool = False
    num_scales: int = 2000
    sigma_min: float = 0.01
    sigma_max: float = 378.0

    def __post_init__(self):
        for name, allowed in _FIXED.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"NCSN++ model.{name}={getattr(self, name)!r} is not supported; "
                                 f"this implementation covers {name} in {list(allowed)}.")
        if self.image_size % 2 ** (len(self.ch_mult) - 1):
            raise ValueError(f"model.image_size={self.image_size} must be divisible by "
                             f"2^(len(ch_mult) - 1) = {2 ** (len(self.ch_mult) - 1)}.")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d) -> "NCSNppConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"Unknown NCSN++ config keys {sorted(unknown)}; valid: "
                             f"{sorted(fields)}.")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _norm(width: int, dtype, rngs: nnx.Rngs) -> nnx.GroupNorm:
    """score_sde's GroupNorm: min(width // 4, 32) groups, eps 1e-6."""
    return nnx.GroupNorm(width, num_groups=min(width // 4, 32), epsilon=1e-6, dtype=dtype,
                         use_fast_variance=False, rngs=rngs)


def _conv(cin: int, cout: int, size: int, dtype, rngs: nnx.Rngs, scale: float = 1.0) -> nnx.Conv:
    init = nnx.initializers.variance_scaling(max(scale, 1e-10), "fan_avg", "uniform")
    return nnx.Conv(cin, cout, (size, size), padding=size // 2, dtype=dtype, kernel_init=init,
                    conv_general_dilated=conv.conv_general_dilated, rngs=rngs)


def _linear(cin: int, cout: int, dtype, rngs: nnx.Rngs, scale: float = 1.0) -> nnx.Linear:
    init = nnx.initializers.variance_scaling(max(scale, 1e-10), "fan_avg", "uniform")
    return nnx.Linear(cin, cout, dtype=dtype, kernel_init=init, rngs=rngs)


class ResBlock(nnx.Module):
    """BigGAN residual block with an optional FIR up- or down-sampling of both branches."""

    def __init__(self, cin: int, cout: int, temb_dim: int, cfg: NCSNppConfig, *,
                 resample: str | None = None, dtype=jnp.float32, rngs: nnx.Rngs):
        self.resample, self.fir_kernel = resample, cfg.fir_kernel
        self.skip_rescale = cfg.skip_rescale
        self.norm_0 = _norm(cin, dtype, rngs)
        self.conv_0 = _conv(cin, cout, 3, dtype, rngs)
        self.dense_0 = _linear(temb_dim, cout, dtype, rngs)
        self.norm_1 = _norm(cout, dtype, rngs)
        self.conv_1 = _conv(cout, cout, 3, dtype, rngs, cfg.init_scale)
        needs_skip = cin != cout or resample is not None
        self.conv_skip = _conv(cin, cout, 1, dtype, rngs) if needs_skip else None

    def _resample(self, x: jax.Array) -> jax.Array:
        if self.resample == "up":
            return fir.upsample(x, self.fir_kernel)
        if self.resample == "down":
            return fir.downsample(x, self.fir_kernel)
        return x

    def __call__(self, x: jax.Array, temb: jax.Array) -> jax.Array:
        h = self._resample(jax.nn.silu(self.norm_0(x)))
        x = self._resample(x)
        h = self.conv_0(h) + self.dense_0(jax.nn.silu(temb))[:, None, None, :]
        h = self.conv_1(jax.nn.silu(self.norm_1(h)))
        if self.conv_skip is not None:
            x = self.conv_skip(x)
        return (x + h) / math.sqrt(2.0) if self.skip_rescale else x + h


class Attention(nnx.Module):
    """Single-head self-attention over the H*W positions, with a (rescaled) residual."""

    def __init__(self, width: int, cfg: NCSNppConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.skip_rescale = cfg.skip_rescale
        self.norm = _norm(width, dtype, rngs)
        self.q = _linear(width, width, dtype, rngs, 0.1)
        self.k = _linear(width, width, dtype, rngs, 0.1)
        self.v = _linear(width, width, dtype, rngs, 0.1)
        self.out = _linear(width, width, dtype, rngs, cfg.init_scale)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, height, width, c = x.shape
        h = self.norm(x).reshape(b, height * width, c)
        logits = jnp.einsum("bic,bjc->bij", self.q(h), self.k(h)) * c**-0.5
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(h.dtype)
        h = self.out(jnp.einsum("bij,bjc->bic", weights, self.v(h))).reshape(x.shape)
        return (x + h) / math.sqrt(2.0) if self.skip_rescale else x + h


class PyramidDown(nnx.Module):
    """FIR filter then a 3x3 stride-2 convolution (the residual input pyramid)."""

    def __init__(self, cin: int, cout: int, cfg: NCSNppConfig, *, dtype=jnp.float32,
                 rngs: nnx.Rngs):
        self.fir_kernel = cfg.fir_kernel
        self.conv = _conv(cin, cout, 3, dtype, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = fir.conv_downsample(x, self.conv.kernel[...], self.fir_kernel)
        return y + self.conv.bias[...].astype(y.dtype)


class DownLevel(nnx.Module):
    """Residual blocks (+ attention) at one resolution, then the down block and pyramid step."""

    def __init__(self, blocks, attns, downsample, pyramid):
        self.blocks, self.attns = nnx.List(blocks), nnx.List(attns)
        self.downsample, self.pyramid = downsample, pyramid


class UpLevel(nnx.Module):
    """``num_res_blocks + 1`` blocks on concatenated skips, attention, then the up block."""

    def __init__(self, blocks, attn, upsample):
        self.blocks, self.attn, self.upsample = nnx.List(blocks), attn, upsample


class NCSNpp(nnx.Module):
    """The NCSN++ score network; see the module docstring.

    Attributes (the parameter tree): ``fourier_w`` (Buffer), ``temb_0``, ``temb_1``,
    ``conv_in``, ``down[level]`` (`DownLevel`, highest resolution first), ``mid_0``,
    ``mid_attn``, ``mid_1``, ``up[j]`` (`UpLevel`, lowest resolution first, the order the
    forward pass visits them), ``norm_out``, ``conv_out``, ``sigmas`` (Buffer).
    """

    def __init__(self, cfg: NCSNppConfig, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.cfg, self.dtype = cfg, dtype
        nf, temb_dim = cfg.nf, 4 * cfg.nf
        self.fourier_w = Buffer(cfg.fourier_scale * jax.random.normal(rngs.params(), (nf,)))
        self.temb_0 = _linear(2 * nf, temb_dim, dtype, rngs)
        self.temb_1 = _linear(temb_dim, temb_dim, dtype, rngs)
        self.conv_in = _conv(cfg.num_channels, nf, 3, dtype, rngs)
        kw = dict(dtype=dtype, rngs=rngs)
        block = lambda cin, cout, **k: ResBlock(cin, cout, temb_dim, cfg, **k, **kw)  # noqa: E731
        widths = [nf * m for m in cfg.ch_mult]
        last = len(widths) - 1
        hs_c, cin, pyramid_c, down = [nf], nf, cfg.num_channels, []
        for i, cout in enumerate(widths):
            attn = cfg.image_size // 2**i in cfg.attn_resolutions
            blocks, attns = [], []
            for j in range(cfg.num_res_blocks):
                blocks.append(block(cin if j == 0 else cout, cout))
                attns += [Attention(cout, cfg, **kw)] if attn else []
                hs_c.append(cout)
            cin, resample, pyramid = cout, None, None
            if i != last:
                resample = block(cout, cout, resample="down")
                if cfg.progressive_input == "residual":
                    pyramid, pyramid_c = PyramidDown(pyramid_c, cout, cfg, **kw), cout
                hs_c.append(cout)
            down.append(DownLevel(blocks, attns, resample, pyramid))
        self.down = nnx.List(down)
        self.mid_0, self.mid_attn, self.mid_1 = (block(cin, cin), Attention(cin, cfg, **kw),
                                                 block(cin, cin))
        up = []
        for i in reversed(range(len(widths))):
            blocks = []
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(block(cin + hs_c.pop(), widths[i]))
                cin = widths[i]
            attn = (Attention(cin, cfg, **kw) if cfg.image_size // 2**i in cfg.attn_resolutions
                    else None)
            up.append(UpLevel(blocks, attn, block(cin, cin, resample="up") if i else None))
        self.up = nnx.List(up)
        self.norm_out = _norm(cin, dtype, rngs)
        self.conv_out = _conv(cin, cfg.num_channels, 3, dtype, rngs, cfg.init_scale)
        self.sigmas = Buffer(jnp.asarray(np.geomspace(cfg.sigma_max, cfg.sigma_min,
                                                      cfg.num_scales), jnp.float32))

    def embed(self, sigma: jax.Array) -> jax.Array:
        """``[N] -> [N, 4 nf]``: Fourier features of log(sigma) through the two-layer MLP."""
        proj = jnp.log(sigma)[:, None] * self.fourier_w[...][None, :] * (2 * np.pi)
        temb = jnp.concatenate([jnp.sin(proj), jnp.cos(proj)], axis=-1).astype(self.dtype)
        return self.temb_1(jax.nn.silu(self.temb_0(temb)))

    def __call__(self, x: jax.Array, sigma: jax.Array) -> jax.Array:
        """Score of the noisy images.

        Args:
          x: ``[N, H, W, C]`` noisy images (in [0, 1] plus noise when ``centered=False``).
          sigma: ``[N]`` noise levels (> 0).

        Returns:
          score ``[N, H, W, C]`` (float32).
        """
        chex.assert_rank(x, 4)
        chex.assert_shape(sigma, (x.shape[0],))
        temb = self.embed(sigma.astype(jnp.float32))
        h = (x if self.cfg.centered else 2 * x - 1).astype(self.dtype)
        hs = self._down(h, temb)
        h = self.mid_1(self.mid_attn(self.mid_0(hs[-1], temb)), temb)
        for level in self.up:
            for block in level.blocks:
                h = block(jnp.concatenate([h, hs.pop()], axis=-1), temb)
            h = h if level.attn is None else level.attn(h)
            h = h if level.upsample is None else level.upsample(h, temb)
        h = self.conv_out(jax.nn.silu(self.norm_out(h))).astype(jnp.float32)
        return h / sigma[:, None, None, None] if self.cfg.scale_by_sigma else h

    def _down(self, x: jax.Array, temb: jax.Array) -> list[jax.Array]:
        """The skip activations of the down path (the last one feeds the middle)."""
        pyramid, hs = x, [self.conv_in(x)]
        for level in self.down:
            for j, block in enumerate(level.blocks):
                h = block(hs[-1], temb)
                hs.append(level.attns[j](h) if len(level.attns) else h)
            if level.downsample is None:
                continue
            h = level.downsample(hs[-1], temb)
            if level.pyramid is not None:
                pyramid = level.pyramid(pyramid) + h
                pyramid = pyramid / math.sqrt(2.0) if self.cfg.skip_rescale else pyramid
                h = pyramid
            hs.append(h)
        return hs


ScoreFn = Callable[[jax.Array, jax.Array], jax.Array]


def make_score_fn(graphdef: nnx.GraphDef, state: nnx.State) -> ScoreFn:
    """A pure, jit-able ``score(x [N, H, W, C], sigma [N]) -> [N, H, W, C]``."""

    def score(x: jax.Array, sigma: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, state)(x, sigma)

    return score


def make_denoise_fn(graphdef: nnx.GraphDef, state: nnx.State) -> Denoiser:
    """``DenoiseFn(x [n, H, W], sigma scalar or [n]) -> x0_hat = x + sigma^2 score`` (C = 1).

    A `iscs_jax.denoiser.Denoiser`: its weights are pytree leaves (runtime inputs when it is
    passed to ``jax.jit`` as an argument, not constants compiled into the program). The
    network computes in the ``dtype`` it was built with (``NCSNpp(cfg, dtype=jnp.bfloat16)``),
    its parameters cast to it here, once (`iscs_jax.models.precision.cast_to_network`; the
    `Buffer`s stay float32); Tweedie's formula, the input and the output stay float32.
    """
    return Denoiser(_TweedieApply(graphdef), precision.cast_to_network(graphdef, state))


@dataclasses.dataclass(frozen=True)
class _TweedieApply:
    """``apply(state, x, sigma)`` of `make_denoise_fn` (static: the architecture)."""

    graphdef: nnx.GraphDef

    def __call__(self, state: nnx.State, x: jax.Array, sigma: jax.Array) -> jax.Array:
        chex.assert_rank(x, 3)
        sigma = jnp.asarray(sigma, jnp.float32)
        per_image = jnp.broadcast_to(sigma, x.shape[:1])
        score = make_score_fn(self.graphdef, state)(x[..., None], per_image)[..., 0]
        sigma_b = sigma[:, None, None] if sigma.ndim == 1 else sigma
        return x + sigma_b**2 * score
