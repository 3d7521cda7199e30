"""The shipped priors inside DDS beat FBP and Tikhonov-regularised CG on held-out sparse-view CT.

Settings (noise-free sinograms, parallel beam over 180 degrees):
- ``phantom64``: the held-out phantom (seed 1234; training uses seeds < 1000), 12 slices at
  64x64, 16 views;
- ``chest128``: 8 slices (held-out slices 93-100 of the chest CT; training used slices 0-64) of
  the embedded slab at 128x128, 20 views.
Baselines:
- FBP (ramp filter);
- the same DDS sampler with a zero-information denoiser (x0_hat = 0: each step is then
  Tikhonov-regularised CG from zero, rho in a grid);
- the best Tikhonov-regularised CG solution, (A^T A + lam I) x = A^T y with 50 CG iterations from
  zero, over a grid of lam (the grid's best by PSNR against the truth, i.e. generous to it).
Each prior must win by >= 5 dB over FBP and >= 2 dB over Tikhonov (issues #3 and #11).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iscs_jax import io, metrics, priors
from iscs_jax.data import packaged
from iscs_jax.data.phantom import phantom_volume
from iscs_jax.operators import ParallelBeam, sparse_view_angles
from iscs_jax.samplers import conjugate_gradient, reconstruct
from iscs_jax.sde import VESDE

pytestmark = pytest.mark.slow  # a quality run: not in the fast suite

CHEST_SLAB = "pkg:iscs_jax/data/assets/chest_ct_69-132.nii.gz"


def phantom_truth():
    return phantom_volume(1234, (12, 64, 64)), 16


def chest_truth():
    hu, _ = io.read_nifti(packaged.resolve(CHEST_SLAB))
    return np.clip((hu[24:32] + 1000.0) / 2600.0, 0.0, 1.0), 20


PROBLEMS = {"phantom64": phantom_truth, "chest128": chest_truth}


def tikhonov(operator, y, lam, iters=50):
    aty = operator.AT(y)
    apply_fn = lambda v: operator.AT(operator.A(v)) + lam * v
    return conjugate_gradient(apply_fn, aty, jnp.zeros_like(aty), iters)


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_prior_beats_fbp_and_tikhonov(name):
    if name not in priors.available():
        pytest.fail(f"The shipped prior {name} is missing from iscs_jax/priors/assets.")
    truth, views = PROBLEMS[name]()
    truth = jnp.asarray(truth)
    operator = ParallelBeam(truth.shape[1:], sparse_view_angles(views))
    y = operator.A(truth)
    psnr = lambda x: float(metrics.psnr(jnp.clip(x, 0, 1), truth, data_range=1.0))
    fbp = operator.fbp(y)
    best_tikhonov = max(psnr(tikhonov(operator, y, lam)) for lam in (1e-2, 1e-1, 1.0, 10.0))
    sampler = jax.jit(lambda key, rho, denoise_fn: reconstruct(
        key, y, operator, denoise_fn, noise="iscs", sigmas=VESDE(0.01, 5.0).sigmas(30),
        x_init=fbp, cg_iters=10, rho=rho, chunk_size=truth.shape[0]), static_argnums=2)
    zero_information = lambda x, sigma: jnp.zeros_like(x)
    best_zero = max(psnr(sampler(jax.random.key(0), rho, zero_information))
                    for rho in (0.0, 0.1, 1.0))
    ours = psnr(sampler(jax.random.key(0), 0.0, priors.load(name).denoise_fn))
    baseline_fbp = psnr(fbp)
    print(f"{name} PSNR: prior {ours:.2f} dB, FBP {baseline_fbp:.2f} dB, Tikhonov CG "
          f"{best_tikhonov:.2f} dB, sampler with a zero denoiser {best_zero:.2f} dB")
    assert ours >= baseline_fbp + 5.0
    assert ours >= max(best_tikhonov, best_zero) + 2.0
