"""Orbax checkpointing of a training state pytree: periodic, atomic, keep-last-N,
and a restore that skips a corrupted latest step instead of crashing; and of a
reconstruction's iterate (`IterateCheckpoints`), so a long run can resume.
"""

from __future__ import annotations

import logging
import os

import jax
import numpy as np
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """No checkpoint in a directory could be restored."""


def make_manager(directory: str, save_every: int, keep: int) -> ocp.CheckpointManager:
    """A synchronous `CheckpointManager` saving every ``save_every`` steps, keeping ``keep``.

    Orbax writes each step to a temporary directory and renames it when
    complete, so a killed save never leaves a half-written step behind.
    """
    if save_every < 1 or keep < 1:
        raise ValueError(f"checkpoint.every={save_every} and checkpoint.keep={keep} must be >= 1.")
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=save_every, max_to_keep=keep, create=True,
        enable_async_checkpointing=False, cleanup_tmp_directories=True)
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def save(manager: ocp.CheckpointManager, step: int, state, force: bool = False) -> bool:
    """Saves ``state`` (any pytree of arrays) at ``step`` if due (or ``force``)."""
    saved = manager.save(step, args=ocp.args.StandardSave(state), force=force)
    manager.wait_until_finished()
    return saved


def restore_latest(manager: ocp.CheckpointManager, target):
    """Restores the newest readable step, falling back to older ones.

    Args:
      manager: from `make_manager`.
      target: a pytree like the saved state (arrays or ``jax.ShapeDtypeStruct``
        with shardings); it fixes structure, dtypes and placement.

    Returns:
      ``(state, step)``, or ``(None, None)`` when the directory holds no checkpoint.

    Raises:
      CheckpointError: checkpoints exist but none can be read.
    """
    steps = sorted(manager.all_steps(), reverse=True)
    abstract = jax.tree.map(_abstract, target)
    errors = []
    for step in steps:
        try:
            state = manager.restore(step, args=ocp.args.StandardRestore(abstract))
            return state, step
        except Exception as err:  # corrupted or partial step directory
            msg = f"step {step}: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
            log.warning("Checkpoint %s is unreadable, trying an older one (%s)", step, msg)
            errors.append(msg)
    if steps:
        raise CheckpointError(
            f"None of the checkpoints {steps} in {manager.directory} could be restored:\n  "
            + "\n  ".join(errors)
            + "\nDelete the damaged step directories (or the whole workdir) to start afresh.")
    return None, None


def _abstract(x):
    if isinstance(x, jax.ShapeDtypeStruct):
        return x
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))


class IterateCheckpoints:
    """A reconstruction's iterate checkpointed every ``every`` steps, to resume a killed run.

    Step ``s`` holds the padded iterate after ``s`` sampler steps (what
    `iscs_jax.runtime.Reconstructor.reconstruct` gives ``on_iterate``); saves are atomic
    (Orbax), the last two steps are kept. `finish` stores the finished volume
    (``finished.npy``, written to a temporary name and renamed) so a resumed run skips it.

    Args:
      directory: a folder of this reconstruction alone (created).
      every: save every this many steps (>= 1).
    """

    FINISHED = "finished.npy"

    def __init__(self, directory: str, every: int):
        self.directory = os.path.abspath(directory)
        self.manager = make_manager(self.directory, every, keep=2)

    def save(self, steps_done: int, x) -> bool:
        """Saves the iterate after ``steps_done`` steps if due; whether it saved."""
        return save(self.manager, int(steps_done), {"x": x})

    def restore(self, like) -> tuple[int, object] | None:
        """``(steps_done, x)`` of the newest readable step, or ``None`` when none was saved.

        Args:
          like: the iterate's ``jax.ShapeDtypeStruct`` (shape, dtype and sharding).
        """
        state, step = restore_latest(self.manager, {"x": like})
        return None if state is None else (int(step), state["x"])

    def finish(self, volume) -> None:
        """Stores the finished volume (host data)."""
        path = os.path.join(self.directory, self.FINISHED)
        with open(path + ".tmp", "wb") as file:
            np.save(file, np.asarray(volume))
        os.replace(path + ".tmp", path)

    def finished(self):
        """The finished volume, or ``None`` if the reconstruction did not finish."""
        path = os.path.join(self.directory, self.FINISHED)
        return np.load(path) if os.path.exists(path) else None
