"""The one exception type the CLI turns into a short message (no traceback)."""

from __future__ import annotations

import contextlib

from iscs_jax import io


class UserError(Exception):
    """A problem with the user's input or config; the message names it and the fix."""


@contextlib.contextmanager
def as_user_error(*types: type[BaseException]):
    """Re-raises ``io.VolumeError`` (and the given exception types) as `UserError`."""
    try:
        yield
    except (io.VolumeError, *types) as err:
        raise UserError(str(err)) from err
