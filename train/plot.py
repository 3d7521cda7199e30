"""Plot a training run's loss curve: ``python -m train.plot --workdir DIR --out loss.png``.

Reads ``DIR/metrics.jsonl`` (one JSON line per logged step) and draws the loss (and a running
mean) against the step, with the total training time in the title.
"""

import json
import sys

import matplotlib
import numpy as np
from absl import app, flags

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir.", required=True)
_OUT = flags.DEFINE_string("out", None, "Output .png path.", required=True)


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


def main(argv):
    del argv
    try:
        records = read_metrics(f"{_WORKDIR.value}/metrics.jsonl")
    except (OSError, ValueError, KeyError) as err:
        print(f"error: cannot read {_WORKDIR.value}/metrics.jsonl ({err})", file=sys.stderr)
        sys.exit(2)
    minutes = training_seconds(records) / 60
    plot_loss(records, _OUT.value, f"{_WORKDIR.value}: {records[-1]['step']} steps, "
                                   f"{minutes:.0f} min of training")
    print(f"wrote {_OUT.value}: {len(records)} points, last loss {records[-1]['loss']:.4f}, "
          f"{minutes:.1f} min of training")


if __name__ == "__main__":
    app.run(main)
