"""``python -m iscs_jax.convert --checkpoint ckpt.pth --model-config models/ncsnpp_256.py
--out priors/NAME [--weights ema|model] [--orientation LPS]`` (installed: ``iscs-convert``): writes
``priors/NAME.json`` + ``priors/NAME.msgpack``.

``--model-config`` is a shipped network config (``models/ncsnpp_256.py[:tiny]``) or a path.
Bad input exits with status 2 and a one-paragraph message (`iscs_jax.cli.main`).
"""

from __future__ import annotations

import sys

from iscs_jax import cli
from iscs_jax.convert import score_sde

PROGRAM = cli.Program(
    name="python -m iscs_jax.convert",
    summary="Converts a score_sde NCSN++ PyTorch checkpoint into an iscs-jax prior.",
    flags=(
        cli.Flag("checkpoint", "score_sde checkpoint (.pth).", metavar="PATH"),
        cli.Flag("model_config", "network config: a shipped one (models/ncsnpp_256.py[:tiny]) "
                 "or a path.", metavar="CONFIG[:ARG]"),
        cli.Flag("out", "output path stem, e.g. priors/aapm256.", metavar="STEM"),
        cli.Flag("weights", "EMA weights or the raw trained ones.", default="ema",
                 choices=tuple(score_sde.WEIGHTS), metavar="|".join(score_sde.WEIGHTS)),
        cli.Flag("orientation", "axis codes of the training images' NIfTI (i, j, k) axes, "
                 "e.g. LAS (recorded in the prior; inputs are reoriented to it).",
                 default=score_sde.DEFAULT_ORIENTATION, metavar="CODES"),
    ))
#: The configs package (``iscs_jax.configs`` once installed; absent in a bare checkout, where
#: ``--model-config`` is a path).
CONFIGS = cli.sibling(__package__, "configs")


def _convert(args) -> None:
    model_config, _ = cli.load_config(args.model_config, CONFIGS)
    stem = score_sde.to_prior(args.checkpoint, model_config, args.out, args.weights,
                              args.orientation)
    print(f"Wrote {stem}.json and {stem}.msgpack; use it with "
          f"--config.prior.path={stem} --config.prior.kind=score_sde")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    return cli.main(PROGRAM, _convert, argv, errors=(score_sde.ConversionError, OSError))


if __name__ == "__main__":
    sys.exit(main())
