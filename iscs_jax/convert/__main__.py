"""``python -m iscs_jax.convert --checkpoint ckpt.pth --model-config configs/models/ncsnpp_256.py
--out priors/NAME [--weights ema|model]``: writes ``priors/NAME.json`` + ``priors/NAME.msgpack``.

Bad input exits with status 2 and a one-paragraph message.
"""

from __future__ import annotations

import argparse
import sys

from iscs_jax.convert import score_sde


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iscs_jax.convert", description=(
        "Convert a score_sde NCSN++ PyTorch checkpoint into an iscs-jax prior."))
    parser.add_argument("--checkpoint", required=True, help="score_sde checkpoint (.pth).")
    parser.add_argument("--model-config", required=True,
                        help="model config file, e.g. configs/models/ncsnpp_256.py[:arg].")
    parser.add_argument("--out", required=True, help="output path stem, e.g. priors/aapm256.")
    parser.add_argument("--weights", choices=score_sde.WEIGHTS, default="ema",
                        help="EMA weights (default) or the raw trained ones.")
    args = parser.parse_args(argv)
    try:
        stem = score_sde.to_prior(args.checkpoint, args.model_config, args.out, args.weights)
    except (score_sde.ConversionError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Wrote {stem}.json and {stem}.msgpack; use it with "
          f"--config.prior.path={stem} --config.prior.kind=score_sde")
    return 0


if __name__ == "__main__":
    sys.exit(main())
