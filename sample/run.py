"""One reconstruction run: inputs -> baseline (FBP, FDK, linear, zero-filled) and the sampler per
noise control -> table and files.

`run(config, config_name, workdir)` is what ``python -m sample`` calls; tests
call it directly. The library is used through plain keyword arguments; this
module is the only place that reads the config.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from pathlib import Path

import jax
import numpy as np

from iscs_jax import (metrics, noise, operators, parallel, provenance, results, runtime,
                      samplers, sampling, sde)
from iscs_jax.samplers import renoise
from . import inputs as inputs_lib
from . import prior as prior_lib
from . import report
from .errors import UserError

WARM_STARTS = ("baseline", "none")
#: Volumes are windowed to [0, 1], so PSNR/SSIM use a data range of 1.
DATA_RANGE = 1.0


def noise_kinds(config) -> list[str]:
    """The noise controls to run: ``compare`` ("iid,iscs") or else ``noise.kind``."""
    kinds = [k.strip() for k in str(config.compare).split(",") if k.strip()]
    kinds = kinds or [config.noise.kind]
    unknown = [k for k in kinds if k not in noise.NOISE_KINDS]
    if unknown or len(set(kinds)) != len(kinds):
        raise UserError(f"compare={config.compare!r} / noise.kind={config.noise.kind!r}: each "
                        f"noise control must be one of {sorted(noise.NOISE_KINDS)}, listed once "
                        "(e.g. --config.compare=iid,iscs).")
    return kinds


def check_sampler_config(config) -> None:
    """Clear errors for sampler settings out of range (before any work is done)."""
    s = config.sampler
    problems = []
    if s.name not in samplers.SAMPLERS:
        problems.append(f"sampler.name={s.name!r} is not one of {sorted(samplers.SAMPLERS)}")
    elif s.name not in s:
        problems.append(f"the config has no section sampler.{s.name} for the {s.name!r} sampler's "
                        "settings")
    else:
        try:
            samplers.SETTINGS[s.name](**s[s.name].to_dict())
        except (ValueError, TypeError) as err:
            problems.append(f"sampler.{s.name}: {err}")
    if s.renoise not in renoise.RENOISE_MODES:
        problems.append(f"sampler.renoise={s.renoise!r} is not one of "
                        f"{sorted(renoise.RENOISE_MODES)}")
    if s.eta > 1.0:
        problems.append(f"sampler.eta={s.eta} is above 1 (use [0, 1], or < 0 for the re-noising "
                        "rule's default)")
    if s.steps < 1 or s.chunk_size < 1:
        problems.append(f"need sampler.steps >= 1 and chunk_size >= 1 (got {s.steps}, "
                        f"{s.chunk_size})")
    if s.warm_start not in WARM_STARTS:
        problems.append(f"sampler.warm_start={s.warm_start!r} is not one of {WARM_STARTS}")
    if s.fbp_filter not in operators.FILTERS:
        problems.append(f"sampler.fbp_filter={s.fbp_filter!r} is not one of "
                        f"{sorted(operators.FILTERS)}")
    if config.num_samples < 1:
        problems.append(f"num_samples={config.num_samples} must be >= 1")
    if problems:
        raise UserError("Invalid config: " + "; ".join(problems) + ". Fix these overrides.")


def check_checkpoint_config(config, resume: bool) -> int:
    """``checkpoint.every`` (0: no checkpoints), checked against ``--resume`` and the run."""
    every = int(config.checkpoint.every)
    if every < 0:
        raise UserError(f"checkpoint.every={every} must be >= 0 (0: no checkpoints).")
    if resume and every == 0:
        raise UserError("--resume continues a run from its checkpoints: set "
                        "--config.checkpoint.every=K as the interrupted run did.")
    if every and jax.process_count() > 1:
        raise UserError("checkpoint.every > 0 is for single-process runs for now; set "
                        "--config.checkpoint.every=0 for a multi-host run.")
    return every


def resolved_eta(config) -> float | None:
    """``sampler.eta``, or ``None`` (the re-noising rule's default) when it is negative."""
    return None if config.sampler.eta < 0 else float(config.sampler.eta)


def sampler_kwargs(config) -> dict:
    """The selected sampler's keyword arguments besides the arrays: shared and own settings."""
    s = config.sampler
    own = {k: (tuple(v) if isinstance(v, list) else v) for k, v in s[s.name].to_dict().items()}
    return dict(renoise=s.renoise, eta=resolved_eta(config), chunk_size=int(s.chunk_size),
                final_denoise=bool(s.final_denoise), **own)


def sigma_min(config, prior) -> float:
    """``sde.sigma_min``, or the prior's own when the config leaves it at 0."""
    return float(config.sde.sigma_min if config.sde.sigma_min > 0 else prior.sigma_min)


def noise_levels(config, prior) -> np.ndarray:
    """``[steps]`` decreasing sigmas of the VE schedule from sde.sigma_max to `sigma_min`."""
    try:
        schedule = sde.VESDE(sigma_min=sigma_min(config, prior),
                             sigma_max=float(config.sde.sigma_max))
    except ValueError as err:
        raise UserError(f"{err} Set --config.sde.sigma_max (and sde.sigma_min).") from err
    return np.asarray(schedule.sigmas(int(config.sampler.steps)), np.float32)


def run_noise_kinds(kinds, key, y, operator, denoise_fn, sigmas, x_init, config, log,
                    mesh=None, progress: bool = True, checkpoints: Path | None = None):
    """`sampling.sample_noise_kinds` (``num_samples`` draws of ``sampler.name`` per noise
    control) on one `runtime.Reconstructor` (one compilation, the set-up computed once; the
    slices sharded over a ``mesh`` of more than one device), checkpointed every
    ``checkpoint.every`` steps in ``checkpoints`` (a folder) when given.

    Returns:
      kind -> ``(mean [D, R, R], std [D, R, R] or None, seconds per volume)``.
    """
    recon = runtime.Reconstructor(operator, denoise_fn, sigmas=sigmas,
                                  sampler=config.sampler.name, mesh=mesh,
                                  **sampler_kwargs(config))
    if recon.mesh.size > 1:
        log(f"sharding {operators.protocol.num_slices(operator, y)} slices over "
            f"{recon.mesh.size} devices")
    log(f"compiling the {config.sampler.name} sampler ({len(sigmas)} steps)...")
    start = time.perf_counter()
    prepared = recon.prepare(y, x_init)
    log(f"compiled in {time.perf_counter() - start + recon.compile(prepared):.1f} s")
    return sampling.sample_noise_kinds(
        recon, prepared, key, kinds=kinds, num_samples=int(config.num_samples),
        checkpoints=checkpoints, every=int(config.checkpoint.every),
        progress=report.StepProgress(enabled=progress), log=log)


def device_mesh(config):
    """Initialises a multi-host run if asked (`parallel.initialize_distributed`), then the
    slice mesh of the config (over every process's devices)."""
    p = config.parallel
    try:
        if p.distributed or p.coordinator_address:
            parallel.initialize_distributed(str(p.coordinator_address), int(p.num_processes),
                                            int(p.process_id))
        return parallel.make_mesh(int(p.num_devices))
    except (ValueError, RuntimeError) as err:
        raise UserError(f"{err} Check --config.parallel.num_devices and, for multi-host runs, "
                        "parallel.coordinator_address, num_processes and process_id (or "
                        "parallel.distributed=True to let JAX detect them).") from err


OUTPUT_GRIDS, OUTPUT_UNITS = results.OUTPUT_GRIDS, results.OUTPUT_UNITS


def check_output_config(data) -> None:
    """Clear errors for ``data.output_grid`` / ``data.output_units`` (before any work)."""
    grid, units = data.get("output_grid", "prior"), data.get("output_units", "unit")
    if grid not in OUTPUT_GRIDS or units not in OUTPUT_UNITS:
        raise UserError(f"data.output_grid={grid!r} / data.output_units={units!r}: the grid "
                        f"must be one of {OUTPUT_GRIDS} and the units one of {OUTPUT_UNITS} "
                        "(e.g. --config.data.output_grid=input --config.data.output_units=input "
                        "for the input's voxels in its units).")
    if data.sinogram and not data.path and "input" in (grid, units):
        raise UserError("data.output_grid=input / data.output_units=input need the input "
                        "volume (data.path) to take its grid and units from; with a measured "
                        "sinogram alone leave them at 'prior' / 'unit'.")


def run(config, config_name: str, workdir: str | Path = "results", *, progress: bool = True,
        log=print, resume: bool = False) -> Path:
    """Runs a reconstruction config end to end and writes its result folder.

    Args:
      config: a config from ``configs/ct.py``-style files (after overrides).
      config_name: names the results subfolder (``<workdir>/<config_name>/``).
      workdir: results root.
      progress: show a tqdm bar per reconstruction.
      log: where the summary lines and the table go.
      resume: continue the newest unfinished run of this config in ``workdir`` (started
        with ``checkpoint.every`` > 0) from its checkpoints.

    Returns:
      the result folder ``<workdir>/<config_name>/<timestamp>`` (``None`` on processes other
      than 0 of a multi-host run, which write nothing).

    Raises:
      UserError: bad input or config (message names the problem and the fix).
    """
    kinds = noise_kinds(config)
    check_sampler_config(config)
    check_output_config(config.data)
    mesh = device_mesh(config)  # first JAX call: a multi-host run initialises here
    every = check_checkpoint_config(config, resume)
    parent = Path(workdir) / config_name
    if jax.process_index() == 0:  # the process that writes: fail before any compilation
        report.check_workdir(parent, workdir)
    prior = prior_lib.load_prior(config.prior)
    prior_lib.check_prior(prior, name=prior_lib.prior_source(config.prior))
    resolution = prior_lib.slice_size(prior)
    sigmas = noise_levels(config, prior)
    config = config.copy_and_resolve_references()  # config.json records what actually ran
    config.sde.sigma_min = sigma_min(config, prior)
    measurement_key, sample_key = jax.random.split(jax.random.key(config.seed))
    inputs = inputs_lib.prepare_inputs(measurement_key, config, resolution,
                                       prior_lib.plane_orientation(prior, config.prior))
    y = jax.numpy.asarray(inputs.measurement)
    num_slices = operators.protocol.num_slices(inputs.operator, y)
    log(f"input: {inputs.source} -> {num_slices} {inputs.plane} planes of "
        f"{resolution}x{resolution}; {inputs.operator.describe()}; prior "
        f"{prior_lib.prior_source(config.prior)}"
        f"{'' if config.prior.dtype == 'float32' else f' ({config.prior.dtype})'}; "
        f"{config.sampler.name}, "
        f"{config.sampler.steps} steps")
    for note in (*inputs.notes, prior_lib.intensity_note(prior, config.data)):
        if note:
            log(note)
    name = inputs.operator.baseline_name
    baseline, baseline_seconds = runtime.baseline(inputs.operator, y)
    volumes, stds, seconds = {name: baseline}, {}, {name: baseline_seconds}
    x_init = jax.numpy.asarray(baseline) if config.sampler.warm_start == "baseline" else None
    sample = functools.partial(run_noise_kinds, kinds, sample_key, y, inputs.operator,
                               prior.denoise_fn, sigmas, x_init, config, log, mesh=mesh,
                               progress=progress)
    if jax.process_index() != 0:  # every process computes the same result; process 0 writes it
        sample()
        return None
    record = config.to_json(indent=2) + "\n"
    reuse = report.unfinished_run(parent, record) if resume else None
    if reuse is not None:
        log(f"resuming the unfinished run in {reuse}")
    report.clean_stale(parent, log, keep=reuse)
    with report.write_errors(every > 0), \
            report.result_folder(parent, reuse=reuse, keep_on_error=every > 0) as folder:
        checkpoints = folder.path / "checkpoints" if every else None
        if every:
            with report.writing(parent):
                (folder.path / report.RUN_CONFIG).write_text(record)
        for kind, (mean, std, kind_seconds) in sample(checkpoints=checkpoints).items():
            volumes[kind], seconds[kind] = mean, kind_seconds
            if std is not None:
                stds[kind] = std
        table = metrics.metrics_table(volumes, inputs.reference, seconds, inputs.plane,
                                      data_range=DATA_RANGE)
        log(report.format_table(table))
        name = inputs.operator.baseline_name
        figure = results.comparison_figure(
            volumes, reference=inputs.reference, plane=inputs.plane, affine=inputs.affine,
            baseline_name=name, title=f"{config_name}: {inputs.source}")
        origin = provenance.record(json.loads(config.to_json()),
                                   prior_name=prior_lib.prior_source(config.prior),
                                   prior_files=prior_lib.prior_files(config.prior))
        with report.writing(parent, resumable=every > 0):
            results.write_results(
                folder.path, volumes=volumes, stds=stds, reference=inputs.reference,
                measurement=inputs.measurement, table=table, figure=figure, baseline_name=name,
                config_json=config.to_json(indent=2) + "\n", provenance=origin,
                plane=inputs.plane, affine=inputs.affine, grid=inputs.grid,
                output_grid=config.data.get("output_grid", "prior"),
                output_units=config.data.get("output_units", "unit"))
        if every:  # a finished run keeps its results, not its checkpoints
            shutil.rmtree(checkpoints)
            (folder.path / report.RUN_CONFIG).unlink()
    return folder.final
