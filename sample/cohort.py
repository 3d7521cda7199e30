"""Cohort evaluation: every volume of a folder or glob, once per seed, and paired statistics.

``data.path`` naming a folder of NIfTI files and DICOM series folders (a folder that holds
DICOM files directly stays one series, one volume), a glob or a list file (one path a line;
discovery is `iscs_jax.data.volumes`), and/or ``seeds="0,1,2"`` make a cohort run. Each (volume, seed) is an ordinary `run.run` (a config copy with ``data.path``
and ``seed`` set) whose folder lands in ``<workdir>/<config>/<time>/<volume>/seed_<s>/``; the
cohort folder also holds ``summary.json``::

    {"seeds": [...], "methods": [...],
     "volumes": [{"name", "path", "metrics": {method: metrics.json entry, mean over seeds},
                  "runs": {seed: folder relative to the cohort folder}}],
     "paired": {"iscs-iid": {"psnr": {"mean", "ci95": [lo, hi], "n"}, "ssim": ...,
                             "discontinuity": ..., "axial": {"psnr": ..., "ssim": ...}, ...}}}

``paired`` holds each later noise control minus each earlier one (``compare`` order) and
each control minus the baseline (``iscs-fbp``), over volumes x seeds
(`iscs_jax.metrics.cohort_summary`). Every volume is read and checked before any compute
(`check_volumes`); a run that fails stops the cohort, which then leaves no folder behind.
Without a folder, glob or seeds, `run.run` itself runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from iscs_jax import metrics
from iscs_jax.data import volumes as volumes_lib
from iscs_jax.data.volumes import GLOB_CHARACTERS, is_dicom_folder, is_volume, volume_name  # noqa: F401
from . import inputs as inputs_lib
from . import prior as prior_lib
from . import report
from . import run as run_lib
from .errors import UserError, as_user_error

def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (``""`` -> ``[]``: the config's ``seed`` alone)."""
    try:
        seeds = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        seeds = None
    if seeds is None or len(set(seeds)) != len(seeds):
        raise UserError(f"seeds={text!r} must be distinct integers separated by commas (e.g. "
                        "--config.seeds=0,1,2), or empty for `seed` alone.")
    return seeds


def expand_path(path: str) -> list[tuple[str, Path]] | None:
    """`iscs_jax.data.volumes.expand_path` (a folder, glob or list file of volumes; ``None``
    for one volume), its errors as `UserError`."""
    with as_user_error():
        return volumes_lib.expand_path(path)


def check_cohort_config(config, resume: bool) -> None:
    """A cohort run is single-process and without checkpoints (for now)."""
    p = config.parallel
    if resume or int(config.checkpoint.every) or p.distributed or p.coordinator_address:
        raise UserError("A cohort run (data.path a folder or glob, or config.seeds set) is "
                        "single-process, without checkpoints: drop --resume, "
                        "--config.checkpoint.every and the parallel.distributed / "
                        "coordinator_address settings, or reconstruct one volume with one seed.")


def check_volumes(config, volumes) -> None:
    """Reads and preprocesses every volume once before any compute (`inputs.load_volume`,
    `inputs.preprocess` at the prior's resolution: unreadable files, DICOM series problems,
    intensity checks, slice ranges).

    Raises:
      UserError: naming the volume.
    """
    resolution = prior_lib.slice_size(prior_lib.load_prior(config.prior))
    for name, path in volumes:
        data = config.data.copy_and_resolve_references()
        data.path = "" if path is None else str(path)
        try:
            volume, affine, _ = inputs_lib.load_volume(data, resolution)
            inputs_lib.preprocess(volume, affine, data, resolution)
        except UserError as err:
            raise UserError(f"Volume {name!r} of the cohort: {err}") from err


def _one_run(config, seed: int, name: str, path, folder: Path, progress: bool, log) -> Path:
    """`run.run` of one volume and seed into ``folder/<name>/seed_<seed>``; that folder."""
    single = config.copy_and_resolve_references()
    single.seed = seed
    if "seeds" in single:
        single.seeds = ""
    if path is not None:
        single.data.path = str(path)
    written = run_lib.run(single, name, folder, progress=progress, log=log)
    final = folder / name / f"seed_{seed}"
    os.rename(written, final)
    return final


def run(config, config_name: str, workdir: str | Path = "results", *, progress: bool = True,
        log=print, resume: bool = False) -> Path | None:
    """`run.run`, or a cohort run (module docstring) when ``data.path`` is a folder or glob of
    volumes or ``seeds`` is set.

    Returns:
      the result folder: `run.run`'s, or the cohort's ``<workdir>/<config_name>/<time>``.

    Raises:
      UserError: bad input or config, an empty folder or glob included.
    """
    seeds = parse_seeds(config.get("seeds", ""))
    volumes = expand_path(str(config.data.path))
    if volumes is None and not seeds:
        return run_lib.run(config, config_name, workdir, progress=progress, log=log,
                           resume=resume)
    check_cohort_config(config, resume)
    kinds = run_lib.noise_kinds(config)
    seeds = seeds or [int(config.seed)]
    if volumes is None:  # one volume, several seeds
        path = Path(config.data.path) if config.data.path else None
        volumes = [(volume_name(path) if path else str(config.data.embedded), path)]
    parent = Path(workdir) / config_name
    report.check_workdir(parent, workdir)
    check_volumes(config, volumes)
    log(f"cohort: {len(volumes)} volume(s) ({', '.join(n for n, _ in volumes)}) x "
        f"{len(seeds)} seed(s) {seeds}")
    report.clean_stale(parent, log)
    results = {}
    with report.write_errors(), report.result_folder(parent) as folder:
        for index, (name, path) in enumerate(volumes):
            for seed in seeds:
                log(f"== volume {index + 1}/{len(volumes)} {name!r}, seed {seed} ==")
                final = _one_run(config, seed, name, path, folder.path, progress, log)
                table = json.loads((final / "metrics.json").read_text())
                results.setdefault(name, {})[seed] = (final.relative_to(folder.path), table)
        summary = metrics.cohort_summary(volumes, results, seeds, kinds)
        for entry in summary["volumes"]:
            log(f"\n{entry['name']} (mean over {len(seeds)} seed(s))")
            log(report.format_table(entry["metrics"]))
        log(f"\npaired differences over {len(volumes)} volume(s) x {len(seeds)} seed(s)")
        log(metrics.format_paired(summary["paired"]))
        with report.writing(parent):
            (folder.path / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            (folder.path / "config.json").write_text(config.to_json(indent=2) + "\n")
    return folder.final
