"""Multi-device checks for `tests/test_runtime.py`: the runtime on 4 fake CPU devices vs one.

Runs in a subprocess (XLA_FLAGS must be set before jax is imported) and prints one JSON dict
``{tag: max abs difference between the runtime on 4 devices and the plain sampler on 1}``:

* ``ops/<sampler>/<operator>/D<d>``: every sampler of `SAMPLERS` on a slice-wise
  (``ParallelBeam``), a globally coupled (``ConeBeam``) and a z-coupled
  (``ZSuperResolution`` along the slices) operator, closed-form Gaussian denoiser, with
  D = 4 (one slice per device) and, but for the cone beam, 9 (padded to 12: up to 3 slices
  per device; `test_operator_contract.py` runs the cone beam at 5 slices on 2 and 4 devices);
* ``unet/<sampler>/D4``: DDS and DPS with the shipped ``phantom64`` U-Net at 64x64, one
  slice per device; the U-Net is where one slice per device once diverged (0.05-0.12 max abs), from
  XLA:CPU's multithreaded convolutions next to host collectives (see
  `iscs_jax.xla_options`).

Also ``<tag>/range``: the one-device volume's value range (so a difference is not vacuous).

Usage: python tests/runtime_check.py ops|unet  (prints JSON on the last line of stdout).
``ops`` compiles without XLA's expensive optimisations (the same arithmetic, compiled in
a fraction of the time); ``unet`` with XLA's defaults, as users run it.
"""

import os
import sys

SECTION = sys.argv[1] if len(sys.argv) > 1 else "ops"
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4" + (
    " --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    if SECTION == "ops" else "")

import json  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from iscs_jax import operators, parallel, priors, runtime, samplers  # noqa: E402
from iscs_jax.denoiser import GaussianDenoiser  # noqa: E402

SIGMAS = np.array([5.0, 1.0, 0.2], np.float32)
#: Slice counts per operator: 4 (one per device), 9 (padded to 12, up to 3 per device); the
#: cone beam, whose programs take 5-6x longer to compile, at one slice per device only.
DEPTHS = {"parallel_beam": (4, 9), "cone_beam": (4,), "zsr": (4, 9)}
SETTINGS = {
    "dds": dict(cg_iters=3, rho=1.0),
    "ddnm": dict(cg_iters=3),
    "dps": dict(step_size=0.5),
    "admm_tv": dict(lam=0.05, mu=1.0, admm_iters=2, cg_iters=2),
}


def tiny_operator(name: str, depth: int):
    """A small operator of each coupling on ``depth`` slices."""
    if name == "parallel_beam":
        return operators.ParallelBeam((12, 12), tuple(np.linspace(0.1, 3.0, 6)))
    if name == "cone_beam":
        return operators.ConeBeam((depth, 12, 12), (0.3, 2.4),
                                  source_origin=30.0, origin_detector=20.0,
                                  detector_shape=(depth + 4, 16), detector_spacing=(1.5, 1.5))
    return operators.ZSuperResolution(2, (12, 12), z_axis=0, depth=depth)


def difference(operator, denoise_fn, volume, sampler: str, chunk_size: int) -> tuple:
    """(max |runtime on 4 devices - the plain sampler on one|, value range of the latter).

    The plain sampler (one ``lax.scan``) stands for one device: `test_runtime.py` checks the
    runtime on one device against it, and it compiles one program instead of three."""
    y = np.asarray(operator.A(volume))
    kwargs = dict(noise="iscs", sigmas=SIGMAS, chunk_size=chunk_size, **SETTINGS[sampler])
    one = np.asarray(jax.jit(lambda k: samplers.get_sampler(sampler)(
        k, y, operator, denoise_fn, **kwargs))(jax.random.key(1)))
    recon = runtime.Reconstructor(operator, denoise_fn, sigmas=SIGMAS, sampler=sampler,
                                  mesh=parallel.make_mesh(4), chunk_size=chunk_size,
                                  **SETTINGS[sampler])
    four = parallel.gather_to_host(recon.reconstruct(jax.random.key(1), y))
    return float(np.max(np.abs(four - one))), float(np.ptp(one))


def operator_checks(report: dict, rng) -> None:
    gaussian = GaussianDenoiser(0.5, 0.3)
    for sampler in sorted(samplers.SAMPLERS):
        for name in ("parallel_beam", "cone_beam", "zsr"):
            for depth in DEPTHS[name]:
                volume = rng.random((depth, 12, 12)).astype(np.float32)
                tag = f"ops/{sampler}/{name}/D{depth}"
                report[tag], report[tag + "/range"] = difference(
                    tiny_operator(name, depth), gaussian, volume, sampler, chunk_size=2)


def unet_checks(report: dict, rng) -> None:
    unet = priors.load("phantom64").denoise_fn
    beam = operators.ParallelBeam((64, 64), tuple(np.linspace(0, np.pi, 20, endpoint=False)))
    for sampler in ("dds", "dps"):
        for depth in (4,):
            volume = rng.random((depth, 64, 64)).astype(np.float32)
            tag = f"unet/{sampler}/D{depth}"
            report[tag], report[tag + "/range"] = difference(beam, unet, volume, sampler,
                                                             chunk_size=8)


def main():
    assert jax.device_count() == 4, jax.devices()
    report = {}
    {"ops": operator_checks, "unet": unet_checks}[SECTION](report, np.random.default_rng(0))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
