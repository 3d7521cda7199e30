"""Sampler x noise control on a reconstruction config: the README's sampler table.

    python benchmarks/samplers.py [--config ct.py] [--samplers dds,ddnm,dps,admm_tv]
                                  [--compare iid,iscs] [--set KEY=VALUE ...]

Runs ``python -m sample`` (a subprocess; its result folder's ``metrics.json`` is
read back) once per sampler with ``--config.sampler.name=NAME`` and each sampler's own default
settings, every noise control with the same key, and prints one table: PSNR and
SSIM of the volume and of each plane, the inter-slice discontinuity, and seconds
per volume (without compilation), with the baseline (FBP) row first. ``--set``
overrides any config key for every sampler (e.g. ``--set data.phantom_slices=8``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from iscs_jax import samplers  # noqa: E402

PLANES = ("axial", "coronal", "sagittal")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="ct.py")
    parser.add_argument("--samplers", default=",".join(samplers.SAMPLERS))
    parser.add_argument("--compare", default="iid,iscs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override applied to every run")
    return parser.parse_args()


def run_sampler(args, name: str, workdir: Path) -> tuple[dict, float]:
    """One CLI run with ``sampler.name=name``; returns (metrics.json, wall seconds)."""
    overrides = [f"--config.{item}" for item in
                 [f"sampler.name={name}", f"compare={args.compare}", *args.set]]
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "sample", "--config", args.config, *overrides,
                          "--workdir", str(workdir)], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"python -m sample failed for sampler {name}:\n{out.stderr}")
    folder = Path(out.stdout.strip().splitlines()[-1])
    return json.loads((folder / "metrics.json").read_text()), time.perf_counter() - start


def row(label: str, entry: dict) -> str:
    planes = "".join(f" {entry[p]['psnr']:>9.2f} {entry[p]['ssim']:>9.4f}" for p in PLANES)
    return (f"{label:<16} {entry['psnr']:>6.2f} {entry['ssim']:>6.4f}{planes}"
            f" {entry['discontinuity']:>9.4f} {entry['seconds']:>8.2f}")


def main():
    args = parse_args()
    header = (f"{'sampler / noise':<16} {'PSNR':>6} {'SSIM':>6}"
              + "".join(f" {p[:3] + ' PSNR':>9} {p[:3] + ' SSIM':>9}" for p in PLANES)
              + f" {'discont.':>9} {'seconds':>8}")
    lines, walls = [header, "-" * len(header)], []
    with tempfile.TemporaryDirectory() as workdir:
        for i, name in enumerate(args.samplers.split(",")):
            table, wall = run_sampler(args, name, Path(workdir))
            walls.append(f"{name} {wall:.0f} s")
            if i == 0:
                baseline = next(iter(table))
                lines.append(row(baseline, table[baseline]))
            lines += [row(f"{name} {kind}", entry) for kind, entry in table.items()
                      if kind != baseline]
            print(lines[-1], file=sys.stderr, flush=True)
    print("\n".join(lines))
    print("wall time per command (incl. compilation): " + ", ".join(walls))


if __name__ == "__main__":
    main()
