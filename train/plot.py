"""Plot a training run's loss curve: ``python -m train.plot --workdir DIR --out loss.png``.

Reads ``DIR/metrics.jsonl`` (one JSON line per logged step) and draws the loss (and a running
mean) against the step, with the total training time in the title.
"""

import json
import sys

import matplotlib
import numpy as np

from iscs_jax import cli

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PROGRAM = cli.Program(
    name="python -m train.plot",
    summary="Plots a training run's loss curve from DIR/metrics.jsonl.",
    flags=(cli.Flag("workdir", "training workdir.", metavar="DIR"),
           cli.Flag("out", "output .png path.", metavar="PATH")))


def read_metrics(path: str) -> list[dict]:
    """The logged records of ``metrics.jsonl``, in step order."""
    with open(path) as f:
        return sorted((json.loads(line) for line in f if line.strip()), key=lambda r: r["step"])


def training_seconds(records: list[dict]) -> float:
    """Active training time: the sum of log intervals (``log_every / steps_per_s``)."""
    steps = np.diff([0] + [r["step"] for r in records])
    return float(sum(n / r["steps_per_s"] for n, r in zip(steps, records)))


def plot_loss(records: list[dict], out: str, title: str) -> None:
    """Writes the loss curve of ``records`` to ``out``."""
    step = np.array([r["step"] for r in records])
    loss = np.array([r["loss"] for r in records])
    window = min(len(loss), 10)
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.plot(step, loss, lw=0.8, alpha=0.5, label="loss (logged batches)")
    ax.plot(step[window - 1:], smooth, lw=1.5, label=f"running mean of {window}")
    ax.set(xlabel="step", ylabel="EDM-weighted loss", yscale="log", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def _plot(args) -> None:
    try:
        records = read_metrics(f"{args.workdir}/metrics.jsonl")
    except (OSError, ValueError, KeyError) as err:
        raise cli.UserError(f"cannot read {args.workdir}/metrics.jsonl ({err})") from err
    if not records:
        raise cli.UserError(f"{args.workdir}/metrics.jsonl holds no logged step.")
    minutes = training_seconds(records) / 60
    plot_loss(records, args.out, f"{args.workdir}: {records[-1]['step']} steps, "
                                 f"{minutes:.0f} min of training")
    print(f"wrote {args.out}: {len(records)} points, last loss {records[-1]['loss']:.4f}, "
          f"{minutes:.1f} min of training")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    return cli.main(PROGRAM, _plot, argv)


if __name__ == "__main__":
    sys.exit(main())
