"""The networks the trainer trains (``model.architecture``), their objectives and precision.

* ``"unet"`` (the default): `iscs_jax.models.unet.UNet` inside EDM preconditioning (Karras
  et al. 2022, `iscs_jax.models.precond`): D(x, sigma) = mu + c_skip (x - mu) +
  c_out F(c_in (x - mu), log(sigma) / 4), weighted by lambda(sigma) = 1 / c_out^2; exported
  with parameterisation ``edm``.
* ``"ncsnpp"``: `iscs_jax.models.ncsnpp.NCSNpp`, the published CT/MRI priors' network,
  trained with score_sde's VE denoising score matching objective (Song et al. 2021):
  sigma log-uniform in [sigma_min, sigma_max] (score_sde's sigma(t), t ~ U(0, 1)) and the loss
  sigma^2 |s(x + sigma z, sigma) + z / sigma|^2. Written with Tweedie's denoiser
  D = x + sigma^2 s, that is |D - x0|^2 / sigma^2: the same "lambda(sigma) |D - x0|^2" as
  the U-Net's, with lambda = 1 / sigma^2. It is averaged over pixels (score_sde's VE configs
  sum them, which only rescales the gradient before AdamW's normalisation and the clip).
  Exported with parameterisation ``ve_score``.

  Why VE and not EDM around NCSN++: it is the objective the published NCSN++ priors were
  trained with, so a network trained here is the same kind of object as a converted score_sde
  checkpoint: the prior format already describes NCSN++ as a VE score model (Tweedie
  denoiser, the network's own ``scale_by_sigma`` output, its Fourier embedding of
  log(sigma)), every sampler and ``python -m sample`` load it unchanged, and the loss is the
  one a converted checkpoint was trained with (fine-tuning one is not wired up here). EDM's
  c_in/c_skip/c_out would wrap a network whose output already divides by sigma, and would
  need a new (architecture, parameterisation) pair in the prior format, for no benefit here.

``train.dtype="bfloat16"`` (`dtype`) builds either network with ``dtype=bfloat16``: its
layers cast the float32 parameters to bfloat16 where they are used, inside the loss, so
convolutions, matrix products and activations run in bfloat16 while the parameters, their
gradients, the optimizer state, the EMA, the preconditioning and the loss stay float32
(normalisation statistics, softmaxes and noise-embedding phases are float32 inside the
networks, `iscs_jax.models.precision`). It is for GPUs and TPUs: on a 2-core CPU a step is
slower in bfloat16 (1.16x for ``train_phantom.py``, ``benchmarks/train_dtype.py``).

The trainable parameters are the `nnx.Param` variables; NCSN++'s `Buffer`s (its Fourier
frequencies and ``sigmas`` table, fixed in score_sde) are kept apart (`split`), never updated
nor decayed.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from iscs_jax.models import (UNet, UNetConfig, edm_loss_weight, ncsnpp, precision,
                             precondition)

ARCHITECTURES = ("unet", "ncsnpp")
#: NCSNppConfig fields the trainer sets itself (from ``data.resolution``, ``train.sigma_*``).
_NCSNPP_DERIVED = ("image_size", "sigma_min", "sigma_max")


def architecture(config: ml_collections.ConfigDict) -> str:
    """``model.architecture`` ("unet" when the config has none).

    Raises:
      ValueError: an unknown name (the message lists the valid ones).
    """
    name = str(config.model.get("architecture", "unet"))
    if name not in ARCHITECTURES:
        raise ValueError(f"model.architecture={name!r} is not one of {list(ARCHITECTURES)}; "
                         "e.g. --config.model.architecture=ncsnpp.")
    return name


def dtype(config: ml_collections.ConfigDict):
    """The dtype the network computes in: ``train.dtype`` (default float32).

    Raises:
      ValueError: not a name of `iscs_jax.models.precision.DTYPES`.
    """
    name = str(config.train.get("dtype", "float32"))
    if name not in precision.DTYPES:
        raise ValueError(f"train.dtype={name!r} is not one of {sorted(precision.DTYPES)}; "
                         "use --config.train.dtype=bfloat16 on GPUs and TPUs.")
    return precision.DTYPES[name]


def model_config(config: ml_collections.ConfigDict):
    """`UNetConfig` or `ncsnpp.NCSNppConfig` from ``config.model`` (other keys ignored).

    NCSN++'s ``image_size`` is ``data.resolution`` and its ``sigma_min``/``sigma_max`` (the
    ``sigmas`` buffer) are ``train.sigma_min``/``sigma_max``.
    """
    given = config.model.to_dict()
    if architecture(config) == "unet":
        keys = set(UNetConfig.__dataclass_fields__)
        return UNetConfig.from_dict({k: v for k, v in given.items() if k in keys})
    keys = set(ncsnpp.NCSNppConfig.__dataclass_fields__) - set(_NCSNPP_DERIVED)
    return ncsnpp.NCSNppConfig.from_dict({
        **{k: v for k, v in given.items() if k in keys},
        "image_size": int(config.data.resolution),
        "sigma_min": float(config.train.sigma_min), "sigma_max": float(config.train.sigma_max)})


def channels(config: ml_collections.ConfigDict) -> int:
    """Image channels of the network (``model.channels`` / ``model.num_channels``)."""
    cfg = model_config(config)
    return cfg.channels if isinstance(cfg, UNetConfig) else cfg.num_channels


def widest_channels(config: ml_collections.ConfigDict) -> int:
    """The width of the network's widest convolution (for `iscs_jax.xla_options`)."""
    cfg = model_config(config)
    if isinstance(cfg, UNetConfig):
        return cfg.base_width * max(cfg.channel_mults)
    return cfg.nf * max(cfg.ch_mult)


def build(config: ml_collections.ConfigDict, seed: int) -> nnx.Module:
    """The network of ``config`` computing in `dtype`, parameters float32, from ``seed``."""
    cfg, rngs = model_config(config), nnx.Rngs(seed)
    if isinstance(cfg, UNetConfig):
        return UNet(cfg, config.data.resolution, dtype=dtype(config), rngs=rngs)
    return ncsnpp.NCSNpp(cfg, dtype=dtype(config), rngs=rngs)


def split(model: nnx.Module):
    """``(graphdef, params, buffers)``: the `nnx.Param` values and the others, pure dicts."""
    graphdef, params, buffers = nnx.split(model, nnx.Param, ...)
    return graphdef, params.to_pure_dict(), buffers.to_pure_dict()


def full_params(params: dict, buffers: dict) -> dict:
    """The model's whole pure state dict (what a prior's ``.msgpack`` holds)."""
    out = dict(params)
    for key, value in buffers.items():
        out[key] = full_params(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


@dataclasses.dataclass(frozen=True)
class Objective:
    """The denoiser D(x, sigma) the loss compares with x0, and its weight lambda(sigma).

    Attributes:
      kind: "edm" (the U-Net) or "ve_score" (NCSN++), see the module docstring.
      sigma_data, data_mean: EDM's s and mu (unused by "ve_score").
    """

    kind: str
    sigma_data: float = 0.5
    data_mean: float = 0.0

    def denoise(self, model: nnx.Module, x: jax.Array, sigma: jax.Array) -> jax.Array:
        """``x [B, H, W]``, ``sigma`` scalar or ``[B]`` -> x0_hat ``[B, H, W]`` (float32)."""
        sigma = jnp.broadcast_to(jnp.asarray(sigma, jnp.float32), x.shape[:1])
        if self.kind == "edm":
            return precondition(model, x, sigma, self.sigma_data, self.data_mean)
        score = model(x[..., None], sigma)[..., 0]
        return x + sigma[:, None, None] ** 2 * score

    def weight(self, sigma: jax.Array) -> jax.Array:
        """lambda(sigma) ``[B]``."""
        if self.kind == "edm":
            return edm_loss_weight(sigma, self.sigma_data)
        return 1.0 / sigma**2

    def parameterisation(self) -> dict:
        """The prior format's ``parameterisation`` entry."""
        if self.kind == "edm":
            return {"kind": "edm", "sigma_data": self.sigma_data, "data_mean": self.data_mean}
        return {"kind": "ve_score"}


def objective(config: ml_collections.ConfigDict) -> Objective:
    """The `Objective` of ``config``'s architecture."""
    if architecture(config) == "unet":
        return Objective("edm", float(config.model.sigma_data), float(config.model.data_mean))
    return Objective("ve_score")


def make_denoise(config: ml_collections.ConfigDict, graphdef, buffers: dict | None = None):
    """``denoise(params, x [B, H, W], sigma) -> x0_hat [B, H, W]``: the trained network's
    denoiser D (the objective's), e.g. of the EMA parameters for validation."""
    objective_ = objective(config)
    buffers = {} if buffers is None else buffers
    return lambda params, x, sigma: objective_.denoise(nnx.merge(graphdef, params, buffers),
                                                       x, sigma)


def denoising_loss(graphdef, params, buffers, batch: jax.Array, key: jax.Array,
                   objective: Objective, *, sigma_min: float, sigma_max: float,
                   chains: int = 1) -> jax.Array:
    """lambda(sigma)-weighted denoising loss, sigma log-uniform in [sigma_min, sigma_max].

    Args:
      graphdef, params, buffers: the network (`split`); ``params`` is differentiated.
      batch: clean images ``[B, H, W]`` (float32).
      key: this step's key (sigmas, then noise).
      chains: the network runs on ``chains`` equal parts of the batch, as independent calls
        (the same maths: every layer acts per image), which XLA:CPU runs side by side
        together with their backward passes.

    Returns:
      scalar float32 mean over the batch of lambda(sigma) |D(x + sigma n, sigma) - x|^2 per
      pixel.
    """
    k_sigma, k_noise = jax.random.split(key)
    b = batch.shape[0]
    u = jax.random.uniform(k_sigma, (b,))
    sigma = sigma_min * (sigma_max / sigma_min) ** u
    noisy = batch + sigma[:, None, None] * jax.random.normal(k_noise, batch.shape)
    model = nnx.merge(graphdef, params, buffers)
    parts = zip(jnp.split(noisy, chains), jnp.split(sigma, chains))
    x0_hat = jnp.concatenate([objective.denoise(model, n, s) for n, s in parts])
    per_sample = jnp.mean((x0_hat.astype(jnp.float32) - batch) ** 2, axis=(1, 2))
    return jnp.mean(objective.weight(sigma) * per_sample)
