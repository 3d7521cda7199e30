"""Where each tensor of a score_sde NCSN++ ``state_dict`` lives in our `NCSNpp`.

score_sde keeps its layers in one flat ``all_modules`` list in the order it
builds them (Fourier projection, two Dense, the input conv, then per level the
residual blocks, attention, down block and pyramid conv, the middle, the up
path, the output GroupNorm and conv) plus the ``sigmas`` buffer. `layout`
walks our model in that same order and names, for every torch tensor, our
parameter path and how to transform it: ``conv`` (OIHW -> HWIO), ``linear``
([out, in] -> [in, out]) or ``copy`` (biases, GroupNorm, NIN, which is already
[in, out], the Fourier frequencies, ``sigmas``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: transform -> axis permutation from the torch tensor to ours (None: unchanged).
PERMUTATIONS = {"conv": (2, 3, 1, 0), "linear": (1, 0), "copy": None}

#: torch tensor -> (our attribute, transform) for each kind of leaf layer.
_LEAVES = {
    "conv": {"weight": ("kernel", "conv"), "bias": ("bias", "copy")},
    "dense": {"weight": ("kernel", "linear"), "bias": ("bias", "copy")},
    "norm": {"weight": ("scale", "copy"), "bias": ("bias", "copy")},
    "nin": {"W": ("kernel", "copy"), "b": ("bias", "copy")},
}
#: torch submodule -> (our attribute, leaf kind), in registration order.
_RESBLOCK = (("GroupNorm_0", "norm_0", "norm"), ("Conv_0", "conv_0", "conv"),
             ("Dense_0", "dense_0", "dense"), ("GroupNorm_1", "norm_1", "norm"),
             ("Conv_1", "conv_1", "conv"), ("Conv_2", "conv_skip", "conv"))
_ATTENTION = (("GroupNorm_0", "norm", "norm"), ("NIN_0", "q", "nin"), ("NIN_1", "k", "nin"),
              ("NIN_2", "v", "nin"), ("NIN_3", "out", "nin"))


@dataclasses.dataclass(frozen=True)
class Entry:
    """One torch tensor: our parameter ``path`` (pure-dict keys), its ``transform``, and
    whether torch trains it (only trainable tensors are in the EMA list)."""

    path: tuple
    transform: str
    trainable: bool = True


def torch_shape(shape: tuple[int, ...], transform: str) -> tuple[int, ...]:
    """The torch shape of a tensor whose shape is ``shape`` in our model."""
    perm = PERMUTATIONS[transform]
    return tuple(shape) if perm is None else tuple(shape[perm.index(i)] for i in range(len(perm)))


def to_ours(array: np.ndarray, transform: str) -> np.ndarray:
    """A torch tensor (as numpy) in our layout."""
    perm = PERMUTATIONS[transform]
    return np.asarray(array) if perm is None else np.transpose(array, perm)


def _modules(model) -> list[tuple[str, tuple]]:
    """``(kind, our module path)`` of every ``all_modules`` entry, in score_sde's order."""
    mods = [("fourier", ("fourier_w",)), ("dense", ("temb_0",)), ("dense", ("temb_1",)),
            ("conv", ("conv_in",))]
    for i, level in enumerate(model.down):
        for j in range(len(level.blocks)):
            mods.append(("resblock", ("down", i, "blocks", j)))
            if len(level.attns):
                mods.append(("attention", ("down", i, "attns", j)))
        if level.downsample is not None:
            mods.append(("resblock", ("down", i, "downsample")))
        if level.pyramid is not None:
            mods.append(("pyramid", ("down", i, "pyramid")))
    mods += [("resblock", ("mid_0",)), ("attention", ("mid_attn",)), ("resblock", ("mid_1",))]
    for i, level in enumerate(model.up):
        mods += [("resblock", ("up", i, "blocks", j)) for j in range(len(level.blocks))]
        if level.attn is not None:
            mods.append(("attention", ("up", i, "attn")))
        if level.upsample is not None:
            mods.append(("resblock", ("up", i, "upsample")))
    return mods + [("norm", ("norm_out",)), ("conv", ("conv_out",))]


def _attribute(model, path: tuple):
    for key in path:
        model = model[key] if isinstance(key, int) else getattr(model, key)
    return model


def _submodules(model, kind: str, path: tuple) -> list[tuple[str, tuple, str]]:
    """``(torch name suffix, our path, leaf kind)`` of the leaf layers of one module."""
    if kind == "resblock":
        block = _attribute(model, path)
        return [(t, path + (ours,), leaf) for t, ours, leaf in _RESBLOCK
                if getattr(block, ours) is not None]
    if kind == "attention":
        return [(t, path + (ours,), leaf) for t, ours, leaf in _ATTENTION]
    if kind == "pyramid":
        return [("Conv2d_0", path + ("conv",), "conv")]
    return [("", path, kind)]


def layout(model) -> dict[str, Entry]:
    """Every tensor name of the score_sde ``state_dict`` of ``model``'s configuration.

    Args:
      model: an `iscs_jax.models.ncsnpp.NCSNpp` (an abstract one from ``nnx.eval_shape``
        is enough).

    Returns:
      torch name (without a ``module.`` prefix) -> `Entry`, in ``state_dict`` order.
    """
    table = {"sigmas": Entry(("sigmas",), "copy", trainable=False)}
    for index, (kind, path) in enumerate(_modules(model)):
        if kind == "fourier":
            table[f"all_modules.{index}.W"] = Entry(path, "copy", trainable=False)
            continue
        for suffix, sub_path, leaf in _submodules(model, kind, path):
            prefix = f"all_modules.{index}." + (f"{suffix}." if suffix else "")
            for name, (ours, transform) in _LEAVES[leaf].items():
                table[prefix + name] = Entry(sub_path + (ours,), transform)
    return table
