"""Export the EMA parameters of a training run as a shipped prior.

    python -m train.export --workdir workdirs/phantom64 --name phantom64 [--out_dir DIR]

writes ``DIR/NAME.msgpack`` (EMA params) and ``DIR/NAME.json`` (metadata) through
`iscs_jax.priors.format`, by default into ``iscs_jax/priors/assets``;
``iscs_jax.priors.load(NAME)`` reads them.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import ml_collections

from iscs_jax import checkpoint, cli, parallel, priors
from iscs_jax.data import nifti
from iscs_jax.priors import format as prior_format

from . import loop, models

PROGRAM = cli.Program(
    name="python -m train.export",
    summary="Writes the EMA parameters of a training run as a prior (NAME.msgpack + NAME.json).",
    flags=(
        cli.Flag("workdir", "training workdir (its newest good checkpoint is exported).",
                 metavar="DIR"),
        cli.Flag("name", "prior name (file stem).", metavar="NAME"),
        cli.Flag("out_dir", "where to write the prior.", default=priors.ASSETS_DIR,
                 metavar="DIR"),
        cli.Flag("train_command", "the training command recorded in the metadata ({workdir} "
                 "is filled in).",
                 default="python -m train --config configs/train_phantom.py --workdir {workdir}",
                 metavar="TEXT"),
    ))


def intensity(config: ml_collections.ConfigDict) -> dict:
    """The HU window (or, with ``data.intensity_range``, the value range) the training images
    were mapped from to [0, 1].

    ``config.data.hu_min`` / ``hu_max`` when the training config has them, else the CT window
    of `iscs_jax.data.nifti` (also the HU range the phantom stands for).
    """
    if config.data.get("intensity_range", None):  # a non-CT file's stored range (MRI)
        low, high = (float(v) for v in config.data.intensity_range)
        return {"kind": "range", "low": low, "high": high}
    low, high = nifti.CT_HU_RANGE
    return {"kind": "hu_window", "hu_min": float(config.data.get("hu_min", low)),
            "hu_max": float(config.data.get("hu_max", high))}


def read_config(workdir: str) -> ml_collections.ConfigDict:
    """The ``config.json`` a training run wrote into its workdir."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise ValueError(f"{path} not found: --workdir must be a training workdir.")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def restore_ema(workdir: str, config: ml_collections.ConfigDict):
    """``(ema_params pure dict, step)`` from the newest readable checkpoint; the network's
    fixed buffers (NCSN++'s Fourier frequencies and ``sigmas``) are included."""
    tx = loop.make_optimizer(config)
    # The state's shapes only (traced, never computed: a 256x256 NCSN++ is not initialised).
    shapes = jax.eval_shape(lambda: loop.create_train_state(config, tx)[1])
    sharding = parallel.replicated(parallel.make_mesh(1, "batch"))
    target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
                          shapes)
    manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"),
                                      config.checkpoint.every, config.checkpoint.keep)
    state, step = checkpoint.restore_latest(manager, target)
    manager.close()
    if state is None:
        raise ValueError(f"No checkpoint in {workdir}/checkpoints to export.")
    return jax.device_get(models.full_params(state["ema"], state.get("buffers", {}))), step


def last_loss(workdir: str):
    """Loss of the last line of ``metrics.jsonl`` (None if absent)."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    return json.loads(lines[-1])["loss"] if lines else None


def export(workdir: str, name: str, out_dir: str, command: str | None = None,
           export_command: str | None = None) -> str:
    """Writes ``out_dir/name.{msgpack,json}``; returns the path stem.

    Args:
      workdir: training workdir (its latest good checkpoint is exported).
      name: prior name (file stem).
      out_dir: destination folder.
      command: the training command that produced the checkpoint (recorded).
      export_command: the export command line (recorded).
    """
    config = read_config(workdir)
    ema, step = restore_ema(workdir, config)
    meta = prior_format.PriorMeta(
        name=name, architecture=models.architecture(config),
        config=loop.model_config(config).to_dict(),
        parameterisation=models.objective(config).parameterisation(),
        resolution=config.data.resolution, channels=models.channels(config),
        intensity=intensity(config), sigma_min=config.train.sigma_min,
        sigma_max=config.train.sigma_max,
        orientation=prior_format.training_orientation(config.data.get("orientation", None),
                                                      config.data.get("path", None)),
        provenance={"train_steps": int(step), "final_loss": last_loss(workdir),
                    "train_config": config.to_dict(), "command": command,
                    "export_command": export_command})
    return prior_format.write(os.path.join(out_dir, name), meta, ema)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)

    def body(args):
        stem = export(args.workdir, args.name, args.out_dir,
                      command=args.train_command.format(workdir=args.workdir),
                      export_command=" ".join([cli.prog(PROGRAM), *argv]))
        print(f"Wrote {stem}.msgpack and {stem}.json")

    return cli.main(PROGRAM, body, argv, errors=(ValueError, checkpoint.CheckpointError))


if __name__ == "__main__":
    sys.exit(main())
