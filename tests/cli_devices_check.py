"""Every sampler through ``python -m sample`` on 1 and on 4 fake devices, in one process.

Run by `tests/test_sample_cli.py` in a subprocess (XLA_FLAGS must be set before jax is
imported). For each sampler of `SAMPLERS`: the CLI on ``ct.py:smoke`` (closed-form Gaussian
prior, 5 slices: padded to 8 on 4 devices) with ``parallel.num_devices=1`` and ``=4``; prints
one JSON dict ``{name: max abs difference of recon_iscs.nii.gz}``.

Usage: python tests/cli_devices_check.py WORKDIR
"""

import os
import sys

os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"

import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

from iscs_jax import samplers  # noqa: E402
from sample.__main__ import main  # noqa: E402

ARGS = ["--config", "ct.py:phantom,smoke", "--config.prior.name=gaussian", "--config.prior.resolution=16",
        "--config.data.phantom_slices=5", "--config.data.num_slices=5", "--config.compare=iscs"]


def run_cli(workdir: Path, *extra) -> np.ndarray:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*ARGS, "--workdir", str(workdir), *extra]) == 0
    folder = Path(out.getvalue().strip().splitlines()[-1])
    return np.asarray(nib.load(folder / "recon_iscs.nii.gz").dataobj)


def main_check(workdir: Path) -> dict:
    report = {}
    for name in samplers.SAMPLERS:
        runs = [run_cli(workdir / f"{name}{n}", f"--config.sampler.name={name}",
                        f"--config.parallel.num_devices={n}") for n in (1, 4)]
        report[name] = float(np.max(np.abs(runs[0] - runs[1])))
        report[name + "_range"] = float(np.ptp(runs[0]))
    return report


if __name__ == "__main__":
    print(json.dumps(main_check(Path(sys.argv[1]))))
