"""Orbax checkpointing of a training state pytree: periodic, atomic, keep-last-N,
and a restore that skips a corrupted latest step instead of crashing; and of a
reconstruction's iterate (`IterateCheckpoints`), so a long run can resume.

A trainer resumes with `set_aside_partial` then `restore_or_set_aside`: a step directory
that cannot be read, and a temporary one a killed save left behind, are moved (never
deleted) into ``<directory>/damaged/`` (`DAMAGED`), outside Orbax's step listing, so the
run resumes from the newest readable step and can save the later steps again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time

import jax
import numpy as np
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)

#: The sub-folder of a checkpoint directory holding the step directories set aside.
DAMAGED = "damaged"
#: What Orbax appends to a step directory's name while it writes it (renamed when complete).
TMP_SUFFIX = ".orbax-checkpoint-tmp"


class CheckpointError(RuntimeError):
    """No checkpoint in a directory could be restored."""


@dataclasses.dataclass(frozen=True)
class SetAside:
    """A step directory moved into ``damaged/``.

    Attributes:
      name: its name in the checkpoint directory (``"40"``, ``"40.orbax-checkpoint-tmp-..."``).
      path: where it is now.
      reason: why (the restore error, or "left half-written by an interrupted save").
    """

    name: str
    path: str
    reason: str

    def describe(self) -> str:
        """One line for the user: what was moved where, and why."""
        return f"checkpoint {self.name} ({self.reason}) moved to {self.path}"


def make_manager(directory: str, save_every: int, keep: int,
                 cleanup_tmp: bool = False) -> ocp.CheckpointManager:
    """A synchronous `CheckpointManager` saving every ``save_every`` steps, keeping ``keep``.

    Orbax writes each step to a temporary directory and renames it when
    complete, so a killed save never leaves a half-written step behind.

    Args:
      cleanup_tmp: let Orbax delete the temporary directories of interrupted saves when it
        opens ``directory`` (else they stay: `set_aside_partial` moves them aside; a reader
        such as an export must not delete a save in progress).
    """
    if save_every < 1 or keep < 1:
        raise ValueError(f"checkpoint.every={save_every} and checkpoint.keep={keep} must be >= 1.")
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=save_every, max_to_keep=keep, create=True,
        enable_async_checkpointing=False, cleanup_tmp_directories=cleanup_tmp)
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def set_aside(directory: str, name: str, reason: str) -> SetAside:
    """Moves ``directory/name`` to ``directory/damaged/name-<UTC time>`` (a fresh name)."""
    folder = os.path.join(os.path.abspath(directory), DAMAGED)
    os.makedirs(folder, exist_ok=True)
    base = os.path.join(folder, f"{name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    path, n = base, 1
    while os.path.exists(path):
        path, n = f"{base}-{n}", n + 1
    shutil.move(os.path.join(directory, name), path)
    moved = SetAside(name, path, reason)
    log.info("Set aside %s", moved.describe())
    return moved


def set_aside_partial(directory: str) -> list[SetAside]:
    """Moves the temporary step directories of interrupted saves (`TMP_SUFFIX`) aside.

    Call it before `make_manager` and only where no save can be in progress (a trainer
    starting, process 0 of a multi-host run).
    """
    if not os.path.isdir(directory):
        return []
    return [set_aside(directory, name, "left half-written by an interrupted save")
            for name in sorted(os.listdir(directory)) if TMP_SUFFIX in name]


def save(manager: ocp.CheckpointManager, step: int, state, force: bool = False) -> bool:
    """Saves ``state`` (any pytree of arrays) at ``step`` if due (or ``force``)."""
    saved = manager.save(step, args=ocp.args.StandardSave(state), force=force)
    manager.wait_until_finished()
    return saved


def _try_restore(manager: ocp.CheckpointManager, step: int, abstract):
    """``(state, None)`` of ``step``, or ``(None, "ErrorType: first line")`` if unreadable."""
    try:
        return manager.restore(step, args=ocp.args.StandardRestore(abstract)), None
    except Exception as err:  # corrupted or partial step directory
        return None, f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"


def _none_readable(manager: ocp.CheckpointManager, errors: list) -> CheckpointError:
    return CheckpointError(
        f"None of the checkpoints {[step for step, _ in errors]} in {manager.directory} could "
        "be restored:\n  " + "\n  ".join(f"step {step}: {error}" for step, error in errors)
        + "\nDelete the damaged step directories (or the whole workdir) to start afresh.")


def _newest_readable(manager: ocp.CheckpointManager, target):
    """``(state, step, errors)``: the newest readable step and ``[(step, error)]`` of the
    newer unreadable ones; ``(None, None, [])`` without checkpoints.

    Raises:
      CheckpointError: checkpoints exist but none can be read.
    """
    abstract = jax.tree.map(_abstract, target)
    errors = []
    for step in sorted(manager.all_steps(), reverse=True):
        state, error = _try_restore(manager, step, abstract)
        if error is None:
            return state, step, errors
        errors.append((step, error))
    if errors:
        raise _none_readable(manager, errors)
    return None, None, []


def restore_latest(manager: ocp.CheckpointManager, target):
    """Restores the newest readable step, falling back to older ones (moves nothing).

    Args:
      manager: from `make_manager`.
      target: a pytree like the saved state (arrays or ``jax.ShapeDtypeStruct``
        with shardings); it fixes structure, dtypes and placement.

    Returns:
      ``(state, step)``, or ``(None, None)`` when the directory holds no checkpoint.

    Raises:
      CheckpointError: checkpoints exist but none can be read.
    """
    state, step, errors = _newest_readable(manager, target)
    for bad, error in errors:
        log.warning("Checkpoint %s is unreadable, restored step %s instead (%s)", bad, step,
                    error)
    return state, step


def restore_or_set_aside(manager: ocp.CheckpointManager, target):
    """Like `restore_latest`, but the unreadable steps newer than the one restored are moved
    into ``damaged/`` (`set_aside`), so a resumed run can save those steps again.

    Only process 0 moves them; every process then reloads the step listing. When no step is
    readable nothing is moved (a `CheckpointError`, as `restore_latest`).

    Returns:
      ``(state, step, set_aside)``: the restored state and step (``None, None`` when there is
      no checkpoint) and the `SetAside` records.
    """
    state, step, errors = _newest_readable(manager, target)
    if not errors:
        return state, step, []
    directory = str(manager.directory)
    moved = [set_aside(directory, str(bad), f"unreadable: {error}")
             for bad, error in errors] if jax.process_index() == 0 else []
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices("iscs_jax.checkpoint.restore_or_set_aside")
    manager.reload()
    return state, step, moved


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
        self.manager = make_manager(self.directory, every, keep=2, cleanup_tmp=True)

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
