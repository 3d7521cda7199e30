"""Every sampler, with its own default settings, against the baseline (FBP) on held-out CT.

Setting: the phantom CT config (`configs/ct.py:phantom`, the embedded default this was
developed on: the shipped phantom64 prior, 20 parallel-beam views over 180 degrees, 30 steps
from sigma 5, warm start from FBP, each sampler's config section) on a smaller volume of the same data family: the held-out phantom (seed 1234), 8
slices at 64x64 (DPS, whose step back-propagates through the U-Net, 4 slices), ISCS noise.

DDS, DDNM and ADMM z-TV must beat FBP by >= 3 dB (issue #8). DPS, an approximate posterior
sampler made for hundreds of steps, does NOT beat FBP in 30 steps here (step sizes 0.01-3 and
the dds/ddim/ddpm re-noising rules all stayed below FBP), so its test pins the measured margin:
no worse than 2.5 dB below FBP. Measured on this 2-core CPU (after merging the operator
protocol, whose ParallelBeam uses the geometric rotation centre): DDS 33.10, DDNM 33.76,
ADMM z-TV 31.33 dB against FBP 26.59 dB on 8 slices; DPS 25.42 dB against FBP 27.23 dB on
4 slices (-1.8 dB).
"""

import jax
import jax.numpy as jnp
import pytest

from iscs_jax import metrics, priors, samplers
from iscs_jax.data.phantom import phantom_volume
from iscs_jax.operators import ParallelBeam, sparse_view_angles
from sample import cli, run

MARGIN_DB = {"dds": 3.0, "ddnm": 3.0, "admm_tv": 3.0, "dps": -2.5}
SLICES = {"dps": 4}


@pytest.fixture(scope="module")
def setting():
    config = cli.load_config("ct.py:phantom")[0]
    prior = priors.load(config.prior.name)
    operator = ParallelBeam((64, 64), sparse_view_angles(config.operator.num_views))
    sigmas = run.noise_levels(config, prior)
    return config, prior, operator, sigmas


def psnr(x, truth):
    return float(metrics.psnr(jnp.clip(x, 0, 1), truth, data_range=1.0))


@pytest.mark.parametrize("name", sorted(MARGIN_DB))
def test_sampler_beats_the_baseline(setting, name):
    config, prior, operator, sigmas = setting
    config.sampler.name = name
    truth = jnp.asarray(phantom_volume(config.data.phantom_seed,
                                       (SLICES.get(name, 8), 64, 64)))
    y = operator.A(truth)
    fbp = operator.fbp(y)
    kwargs = {**run.sampler_kwargs(config), "chunk_size": 8}
    recon = jax.jit(lambda key: samplers.get_sampler(name)(
        key, y, operator, prior.denoise_fn, noise="iscs", sigmas=sigmas, x_init=fbp,
        **kwargs))(jax.random.key(0))
    ours, baseline = psnr(recon, truth), psnr(fbp, truth)
    print(f"{name}: {ours:.2f} dB, FBP {baseline:.2f} dB")
    assert ours >= baseline + MARGIN_DB[name]
