"""Repeated reconstructions: ``num_samples`` draws per noise control on one
`iscs_jax.runtime.Reconstructor`, their mean and standard deviation, each draw resumable from
iterate checkpoints (`iscs_jax.checkpoint.IterateCheckpoints`).

Draw k uses ``fold_in(key, k)`` whatever the control, so controls are compared on the same
keys. Progress is plain Python callbacks between steps (no host callback in the compiled
program).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Sequence

import jax
import numpy as np

from iscs_jax import checkpoint, parallel


class Progress:
    """No progress display: the interface `sample_noise_kinds` calls (``start(total,
    description)``, ``advance()``, ``close()``, ``steps_seen``)."""

    steps_seen = 0

    def start(self, total: int, description: str) -> None:
        """A new reconstruction of ``total`` steps begins."""
        del total, description
        self.steps_seen = 0

    def advance(self) -> None:
        """One more step done."""
        self.steps_seen += 1

    def close(self) -> None:
        """The reconstruction ended."""


def sample_noise_kinds(recon, prepared, key: jax.Array, *, kinds: Sequence[str],
                       num_samples: int = 1, checkpoints: str | os.PathLike | None = None,
                       every: int = 0, progress: Progress | None = None,
                       log: Callable[[str], None] = print) -> dict:
    """``num_samples`` reconstructions for each noise control.

    Args:
      recon: a `iscs_jax.runtime.Reconstructor`; prepared: its ``prepare(y, x_init)``.
      key: the sampling key; draw k uses ``fold_in(key, k)``.
      kinds: the noise controls (`iscs_jax.noise.NOISE_KINDS`).
      num_samples: draws per control.
      checkpoints: a folder where draw k of control ``kind`` is checkpointed (in
        ``<kind>_<k>``) every ``every`` steps and from which it continues; None: none.
      progress: told of each reconstruction's steps (`Progress`).
      log: receives one line per draw (and per checkpoint or resumption).

    Returns:
      kind -> ``(mean [D, R, R], std [D, R, R] or None for one draw, seconds per draw)``.
    """
    progress = Progress() if progress is None else progress
    out = {}
    for kind in kinds:
        draws, seconds = [], []
        for k in range(num_samples):
            store = None if checkpoints is None else checkpoint.IterateCheckpoints(
                str(Path(checkpoints) / f"{kind}_{k}"), int(every))
            start = time.perf_counter()
            draws.append(_draw(recon, prepared, jax.random.fold_in(key, k), kind,
                               f"{kind} {k + 1}/{num_samples}", progress, store, log))
            seconds.append(time.perf_counter() - start)
        draws = np.stack(draws)
        std = draws.std(axis=0) if len(draws) > 1 else None
        out[kind] = (draws.mean(axis=0), std, float(np.mean(seconds)))
    return out


def _draw(recon, prepared, key, kind, label, progress, store, log) -> np.ndarray:
    """One reconstruction as a host array, continued from (and checkpointed to) ``store``."""
    done = None if store is None else store.finished()
    if done is not None:
        log(f"sampled {label}: restored (it finished before the run was stopped)")
        return done
    start = None if store is None else store.restore(recon.iterate_like(prepared))
    if start is not None:
        log(f"{label}: resuming after step {start[0]} of {recon.num_steps}")

    def on_iterate(steps_done, x):
        if store is not None and store.save(steps_done, x):
            log(f"checkpointed step {steps_done}")

    progress.start(recon.num_steps - (0 if start is None else start[0]), label)
    begin = time.perf_counter()
    x = recon.reconstruct(key, prepared, noise=kind, on_step=lambda i: progress.advance(),
                          start=start, on_iterate=on_iterate)
    volume = parallel.gather_to_host(x)
    progress.close()
    log(f"sampled {label}: {progress.steps_seen} steps in {time.perf_counter() - begin:.1f} s")
    if store is not None:
        store.finish(volume)
    return volume
