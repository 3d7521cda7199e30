"""An independent NCSN++ forward pass in PyTorch (functional, NCHW) for the conversion tests.

Written from the published architecture description with ``torch.nn.functional``
primitives only, reading a score_sde-style ``state_dict`` (``all_modules.N...``
names) directly, so it shares no code with `iscs_jax.models.ncsnpp` or the
converter's name mapping. The FIR resampling is upfirdn from its definition:
zero insertion, zero padding, 2D convolution with the outer-product kernel,
decimation.
"""

import math

import torch
import torch.nn.functional as F


def fir_2d(kernel, gain=1.0):
    k = torch.tensor(kernel, dtype=torch.float64)
    k2 = torch.outer(k, k)
    return (k2 / k2.sum() * gain).float()


def upfirdn(x, k2, up=1, down=1, pad=(0, 0)):
    """Zero-insert by ``up``, pad, convolve (flipped kernel), keep every ``down``-th sample."""
    n, c, h, w = x.shape
    if up > 1:
        z = x.new_zeros(n, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    weight = torch.flip(k2, [0, 1])[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, weight, groups=c)[:, :, ::down, ::down]


def fir_up(x, kernel):
    # A 4-tap kernel at factor 2 covers 2 input samples; pads (2, 1) centre it on each output.
    return upfirdn(x, fir_2d(kernel, 4.0), up=2, pad=(2, 1))


def fir_down(x, kernel):
    return upfirdn(x, fir_2d(kernel), down=2, pad=(1, 1))


def conv_down(x, weight, bias, kernel):
    """FIR blur (pad 2: 4 taps + 3x3 conv - 2) then a 3x3 stride-2 VALID convolution."""
    return F.conv2d(upfirdn(x, fir_2d(kernel), pad=(2, 2)), weight, bias, stride=2)


class Reference:
    """``Reference(state_dict, cfg)(x_nchw, sigma) -> score_nchw``; cfg an NCSNppConfig."""

    def __init__(self, sd, cfg):
        self.sd, self.cfg, self.i = sd, cfg, 0

    def _take(self):
        prefix = f"all_modules.{self.i}."
        self.i += 1
        return {k[len(prefix):]: v for k, v in self.sd.items() if k.startswith(prefix)}

    @staticmethod
    def norm(x, p, name="GroupNorm_0"):
        c = x.shape[1]
        return F.group_norm(x, min(c // 4, 32), p[f"{name}.weight"], p[f"{name}.bias"], 1e-6)

    def resblock(self, x, temb, up=False, down=False):
        p, k = self._take(), self.cfg.fir_kernel
        h = F.silu(self.norm(x, p))
        if up:
            h, x = fir_up(h, k), fir_up(x, k)
        if down:
            h, x = fir_down(h, k), fir_down(x, k)
        h = F.conv2d(h, p["Conv_0.weight"], p["Conv_0.bias"], padding=1)
        h = h + F.linear(F.silu(temb), p["Dense_0.weight"], p["Dense_0.bias"])[:, :, None, None]
        h = F.silu(self.norm(h, p, "GroupNorm_1"))
        h = F.conv2d(h, p["Conv_1.weight"], p["Conv_1.bias"], padding=1)
        if "Conv_2.weight" in p:
            x = F.conv2d(x, p["Conv_2.weight"], p["Conv_2.bias"])
        return (x + h) / math.sqrt(2.0)

    def attention(self, x):
        p = self._take()
        b, c, hh, ww = x.shape
        h = self.norm(x, p).reshape(b, c, hh * ww).transpose(1, 2)  # [b, hw, c]
        q, k, v = (h @ p[f"NIN_{i}.W"] + p[f"NIN_{i}.b"] for i in range(3))
        w = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(c), dim=-1)
        out = (w @ v) @ p["NIN_3.W"] + p["NIN_3.b"]
        return (x + out.transpose(1, 2).reshape(b, c, hh, ww)) / math.sqrt(2.0)

    def __call__(self, x, sigma):
        cfg, self.i = self.cfg, 0
        w = self._take()["W"]
        proj = torch.log(sigma)[:, None] * w[None, :] * 2 * math.pi
        temb = torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)
        p = self._take()
        temb = F.linear(temb, p["weight"], p["bias"])
        p = self._take()
        temb = F.linear(F.silu(temb), p["weight"], p["bias"])
        x = 2 * x - 1
        pyramid = x
        p = self._take()
        hs = [F.conv2d(x, p["weight"], p["bias"], padding=1)]
        levels = len(cfg.ch_mult)
        for i in range(levels):
            for _ in range(cfg.num_res_blocks):
                h = self.resblock(hs[-1], temb)
                if h.shape[-1] in cfg.attn_resolutions:
                    h = self.attention(h)
                hs.append(h)
            if i != levels - 1:
                h = self.resblock(hs[-1], temb, down=True)
                p = self._take()
                pyramid = conv_down(pyramid, p["Conv2d_0.weight"], p["Conv2d_0.bias"],
                                    cfg.fir_kernel)
                pyramid = (pyramid + h) / math.sqrt(2.0)
                hs.append(pyramid)
        h = self.resblock(self.attention(self.resblock(hs[-1], temb)), temb)
        for i in reversed(range(levels)):
            for _ in range(cfg.num_res_blocks + 1):
                h = self.resblock(torch.cat([h, hs.pop()], dim=1), temb)
            if h.shape[-1] in cfg.attn_resolutions:
                h = self.attention(h)
            if i != 0:
                h = self.resblock(h, temb, up=True)
        p = self._take()
        h = F.silu(F.group_norm(h, min(h.shape[1] // 4, 32), p["weight"], p["bias"], 1e-6))
        p = self._take()
        h = F.conv2d(h, p["weight"], p["bias"], padding=1)
        used = {k.split(".")[1] for k in self.sd if k.startswith("all_modules.")}
        assert not hs and self.i == len(used), "every module of the state_dict is used once"
        return h / sigma[:, None, None, None]
