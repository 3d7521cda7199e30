"""What a run shows: the progress bar (tqdm), and the result folder of `iscs_jax.results` with
its errors as `UserError`s naming ``--workdir`` and ``--resume``."""

from __future__ import annotations

import contextlib

from tqdm.auto import tqdm

from iscs_jax import results
from iscs_jax.results import RUN_CONFIG, format_table, result_folder  # noqa: F401

from .errors import UserError

RESUME_HINT = "run the same config and overrides with --resume"


class StepProgress:
    """A tqdm bar over a sampler's steps, advanced from Python between steps (the compiled
    programs hold no host callback, so JAX's persistent compilation cache keeps them)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._bar = None
        self.steps_seen = 0  # steps of the current bar (counted even when tqdm is hidden)

    def start(self, total: int, description: str) -> None:
        """Opens a bar of ``total`` steps (closing any open one)."""
        self.close()
        self.steps_seen = 0
        disable = None if self.enabled else True  # None: shown on a terminal only
        self._bar = tqdm(total=total, desc=description, unit="step", disable=disable,
                         leave=False, dynamic_ncols=True)

    def advance(self) -> None:
        """Marks one more step done."""
        self.steps_seen += 1
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        """Closes the open bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def check_workdir(parent, workdir) -> None:
    """`results.check_workdir`, naming ``--workdir``."""
    try:
        results.check_workdir(parent, workdir, name="--workdir")
    except results.ResultsError as err:
        raise UserError(str(err)) from err


def unfinished_run(parent, config_json: str):
    """`results.unfinished_run` for ``--resume``: it must exist and have run this config."""
    try:
        found = results.unfinished_run(parent, config_json)
    except results.ResultsError as err:
        raise UserError(f"--resume: {err}; resume it with the same config and overrides, or "
                        "drop --resume to start afresh.") from err
    if found is None:
        raise UserError(f"--resume: there is no unfinished run in {str(parent)!r} to continue "
                        "(a run can be resumed when it was started with "
                        "--config.checkpoint.every=K); drop --resume to start afresh.")
    return found


def clean_stale(parent, log=print, keep=None) -> None:
    """`results.clean_stale`, its note on a resumable run naming ``--resume``."""
    results.clean_stale(parent, log, keep, resume_hint=RESUME_HINT)


@contextlib.contextmanager
def write_errors(resumable: bool = False):
    """A `results.WriteError` in the block (e.g. `result_folder`'s closing rename) as a
    one-paragraph `UserError`; ``resumable``: the unfinished run is kept for ``--resume``."""
    try:
        yield
    except results.WriteError as err:
        kept = (" The unfinished run is kept: once there is room, run the same command "
                "with --resume." if resumable else " Nothing was written.")
        raise UserError(f"{err} Free some space or pass another --workdir (or fix its "
                        f"permissions).{kept}") from err


@contextlib.contextmanager
def writing(where, resumable: bool = False):
    """`results.writing` with `write_errors`."""
    with write_errors(resumable), results.writing(where):
        yield
