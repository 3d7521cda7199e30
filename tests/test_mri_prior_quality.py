"""The shipped ``mri128`` prior inside DDS beats the classical MRI baselines on held-out anatomy.

Data: 4 coronal planes (26..29 of the embedded slab = template planes 118..121, through the
centre) of the held-out MNI152 slab, prepared as the CLI prepares them (128x128, window 0..255).
The prior never saw a plane of the slab (training planes end 4 planes before it).
- z super-resolution, factor 4 along z (in-plane rows of the coronal planes): DDS from the
  ``linear`` baseline (interpolation between thick-slice centres) vs that baseline;
- CS-MRI, R = 4 with an 8% centre (mask seed 0): DDS from the ``zero_filled`` baseline vs it.
Noise-free measurements, ISCS noise, 30 steps. Measured with the shipped prior (step 4000):
ZSR 30.82 dB vs linear 27.92 dB, CS 35.19 dB vs zero-filled 24.50 dB (step 2000: 30.68 and
34.89 dB); the required margins (2 and 9 dB) are those, less about 1 dB.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iscs_jax import metrics, operators, priors
from iscs_jax.data import mri, prepare
from iscs_jax.samplers import reconstruct
from iscs_jax.sde import VESDE

pytestmark = pytest.mark.slow  # a quality run: not in the fast suite

PLANES = slice(26, 30)
#: (operator, DDS settings, required PSNR margin over the baseline in dB)
PROBLEMS = {
    "zsr": (lambda: operators.ZSuperResolution(4, (128, 128), z_axis=1),
            dict(sigma_max=0.3, cg_iters=5), 2.0),
    "cs": (lambda: operators.CartesianMRI((128, 128), 4.0, 0.08, seed=0),
           dict(sigma_max=5.0, cg_iters=10), 9.0),
}


def held_out_planes():
    volume, _ = mri.demo_volume()
    planes = prepare.prepare_planes(volume, plane="coronal", resolution=128, window="range",
                                    window_range=mri.INTENSITY_RANGE)
    return jnp.asarray(planes[PLANES])


@pytest.mark.parametrize("task", sorted(PROBLEMS))
def test_prior_beats_the_mri_baseline(task):
    if "mri128" not in priors.available():
        pytest.fail("The shipped prior mri128 is missing from iscs_jax/priors/assets.")
    make_operator, settings, margin = PROBLEMS[task]
    truth = held_out_planes()
    operator = make_operator()
    y = operator.A(truth)
    baseline = operator.baseline(y)
    recon = jax.jit(lambda key: reconstruct(
        key, y, operator, priors.load("mri128").denoise_fn, noise="iscs",
        sigmas=VESDE(0.01, settings["sigma_max"]).sigmas(30), x_init=baseline,
        cg_iters=settings["cg_iters"], rho=0.0, chunk_size=8))(jax.random.key(0))
    psnr = lambda x: float(metrics.psnr(jnp.clip(x, 0, 1), truth, data_range=1.0))
    ours, base = psnr(recon), psnr(baseline)
    print(f"{task}: DDS + mri128 {ours:.2f} dB, {operator.baseline_name} {base:.2f} dB")
    assert ours >= base + margin
