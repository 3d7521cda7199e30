"""A small 2D U-Net in flax NNX, conditioned on a scalar noise level.

The network maps ``x [B, H, W]`` (or ``[B, H, W, C]`` internally) and a
per-sample noise conditioning ``c_noise [B]`` to an output of the same shape as
``x``. It is the raw network F of EDM; `iscs_jax.models.precond` wraps it into a
denoiser D(x, sigma). ``UNet(..., dtype=jnp.bfloat16)`` computes in bfloat16 (see
`iscs_jax.models.precision`); it takes and returns float32 either way.
"""

from __future__ import annotations

import dataclasses
import math

import chex
import jax
import jax.numpy as jnp
from flax import nnx

from iscs_jax.models import conv
from iscs_jax.models.norm import GroupNorm


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Architecture of the U-Net.

    Attributes:
      channels: image channels (1 for CT/MRI magnitude slices).
      base_width: feature width of the first level.
      channel_mults: width multiplier per resolution level (one level per entry;
        every level but the last halves the resolution).
      num_blocks: residual blocks per level (down path; the up path uses the same).
      attention_resolutions: spatial sizes (H of the feature map) where a
        self-attention layer follows each residual block.
      num_heads: attention heads.
      norm_groups: GroupNorm groups (clipped to divide every width).
      embedding_dim: width of the Fourier noise embedding (MLP width is 4x base).
    """

    channels: int = 1
    base_width: int = 16
    channel_mults: tuple[int, ...] = (1, 2, 4)
    num_blocks: int = 1
    attention_resolutions: tuple[int, ...] = (16,)
    num_heads: int = 1
    norm_groups: int = 8
    embedding_dim: int = 32

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d) -> "UNetConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"Unknown U-Net config keys {sorted(unknown)}; valid: {sorted(fields)}.")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _groups(width: int, groups: int) -> int:
    """Largest divisor of ``width`` not above ``groups``."""
    return max(g for g in range(1, min(groups, width) + 1) if width % g == 0)


def sinusoidal_embedding(c_noise: jax.Array, dim: int) -> jax.Array:
    """``[B] -> [B, dim]`` sinusoidal features of the noise conditioning."""
    half = dim // 2
    freqs = jnp.exp(-math.log(10_000.0) * jnp.arange(half, dtype=jnp.float32) / half)
    args = (c_noise[:, None] * 1000.0 / 4.0) * freqs[None, :]  # c_noise ~ log(sigma)/4
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


def _conv_layer(cin: int, cout: int, kernel_size, **kwargs) -> nnx.Conv:
    """``nnx.Conv`` whose input gradient stays fast inside loops (`conv.conv_general_dilated`:
    DPS differentiates the denoiser inside the sampler's ``lax.scan``)."""
    return nnx.Conv(cin, cout, kernel_size, conv_general_dilated=conv.conv_general_dilated,
                    **kwargs)


class ResBlock(nnx.Module):
    """GroupNorm-SiLU-Conv x2 with an additive noise embedding and a skip."""

    def __init__(self, cin: int, cout: int, emb: int, groups: int, *, dtype=jnp.float32,
                 rngs: nnx.Rngs):
        self.norm1 = GroupNorm(cin, _groups(cin, groups), rngs=rngs)
        self.conv1 = _conv_layer(cin, cout, (3, 3), dtype=dtype, rngs=rngs)
        self.emb = nnx.Linear(emb, cout, dtype=dtype, rngs=rngs)
        self.norm2 = GroupNorm(cout, _groups(cout, groups), rngs=rngs)
        self.conv2 = _conv_layer(cout, cout, (3, 3), kernel_init=nnx.initializers.zeros_init(),
                                 dtype=dtype, rngs=rngs)
        self.skip = (_conv_layer(cin, cout, (1, 1), dtype=dtype, rngs=rngs) if cin != cout
                     else None)

    def __call__(self, x: jax.Array, emb: jax.Array) -> jax.Array:
        h = self.conv1(self.norm1(x, silu=True))
        h = h + self.emb(emb)[:, None, None, :]
        h = self.conv2(self.norm2(h, silu=True))
        return h + (x if self.skip is None else self.skip(x))


class Attention(nnx.Module):
    """Multi-head self-attention over the H*W positions, with a residual."""

    def __init__(self, width: int, heads: int, groups: int, *, dtype=jnp.float32,
                 rngs: nnx.Rngs):
        if width % heads:
            raise ValueError(f"model.num_heads={heads} must divide the width {width}.")
        self.heads = heads
        self.norm = GroupNorm(width, _groups(width, groups), rngs=rngs)
        self.qkv = nnx.Linear(width, 3 * width, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(width, width, kernel_init=nnx.initializers.zeros_init(),
                              dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, h, w, c = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, h * w, 3, self.heads, c // self.heads)
        y = jax.nn.dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2])
        return x + self.out(y.reshape(b, h, w, c))


class Level(nnx.Module):
    """Residual blocks (each optionally followed by attention) at one resolution."""

    def __init__(self, cin: int, cout: int, n: int, attn: bool, cfg: UNetConfig, emb: int,
                 *, dtype=jnp.float32, rngs: nnx.Rngs):
        g = cfg.norm_groups
        self.blocks = nnx.List([ResBlock(cin if i == 0 else cout, cout, emb, g, dtype=dtype,
                                         rngs=rngs) for i in range(n)])
        self.attns = nnx.List([Attention(cout, cfg.num_heads, g, dtype=dtype, rngs=rngs)
                               for _ in range(n)] if attn else [])

    def __call__(self, x: jax.Array, emb: jax.Array) -> jax.Array:
        for i, block in enumerate(self.blocks):
            x = block(x, emb)
            if len(self.attns):
                x = self.attns[i](x)
        return x


class UNet(nnx.Module):
    """U-Net F(x, c_noise): ``[B, H, W] x [B] -> [B, H, W]`` (channels=1).

    Inputs with a trailing channel axis ``[B, H, W, C]`` are also accepted and
    returned with that axis. ``dtype``: what the convolutions, products and activations
    compute in (the layers cast their parameters to it; `iscs_jax.models.precond`'s
    denoiser casts them once instead); the input is cast to it, the output is float32.
    """

    def __init__(self, cfg: UNetConfig, resolution: int, *, dtype=jnp.float32,
                 rngs: nnx.Rngs):
        self.cfg, self.dtype = cfg, dtype
        widths = [cfg.base_width * m for m in cfg.channel_mults]
        emb = 4 * cfg.base_width
        kw = dict(dtype=dtype, rngs=rngs)
        self.emb1 = nnx.Linear(cfg.embedding_dim, emb, **kw)
        self.emb2 = nnx.Linear(emb, emb, **kw)
        self.conv_in = _conv_layer(cfg.channels, widths[0], (3, 3), **kw)
        res = [resolution // 2**i for i in range(len(widths))]
        att = [r in cfg.attention_resolutions for r in res]
        cins = [widths[0]] + widths[:-1]
        self.down = nnx.List([Level(ci, co, cfg.num_blocks, a, cfg, emb, **kw)
                              for ci, co, a in zip(cins, widths, att)])
        self.mid = Level(widths[-1], widths[-1], 1, True, cfg, emb, **kw)
        ups = [(widths[i] + (widths[i + 1] if i + 1 < len(widths) else widths[-1]), widths[i], att[i])
               for i in reversed(range(len(widths)))]
        self.up = nnx.List([Level(ci, co, cfg.num_blocks, a, cfg, emb, **kw)
                            for ci, co, a in ups])
        self.norm_out = GroupNorm(widths[0], _groups(widths[0], cfg.norm_groups), rngs=rngs)
        self.conv_out = _conv_layer(widths[0], cfg.channels, (3, 3),
                                    kernel_init=nnx.initializers.zeros_init(), **kw)

    def __call__(self, x: jax.Array, c_noise: jax.Array) -> jax.Array:
        squeeze = x.ndim == 3
        h = x[..., None] if squeeze else x
        chex.assert_rank(h, 4)
        chex.assert_shape(c_noise, (h.shape[0],))
        # The phases (up to hundreds of radians) in float32, their sines in self.dtype.
        emb = sinusoidal_embedding(c_noise, self.cfg.embedding_dim).astype(self.dtype)
        emb = self.emb2(jax.nn.silu(self.emb1(emb)))
        h = self.conv_in(h.astype(self.dtype))
        skips = []
        for i, level in enumerate(self.down):
            h = level(h, emb)
            skips.append(h)
            if i + 1 < len(self.down):
                h = _downsample(h)
        h = self.mid(h, emb)
        for i, level in enumerate(self.up):
            skip = skips.pop()
            if h.shape[1] != skip.shape[1]:
                h = _upsample(h)
            h = level(jnp.concatenate([h, skip], axis=-1), emb)
        out = self.conv_out(self.norm_out(h, silu=True)).astype(jnp.float32)
        return out[..., 0] if squeeze else out


def _downsample(x: jax.Array) -> jax.Array:
    """2x2 average pooling, ``[B, H, W, C] -> [B, H/2, W/2, C]``."""
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _upsample(x: jax.Array) -> jax.Array:
    """Nearest-neighbour 2x upsampling, ``[B, H, W, C] -> [B, 2H, 2W, C]``."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
