"""The one exception type the CLI turns into a short message (no traceback): `UserError`,
the shared command line's (`iscs_jax.cli`)."""

from __future__ import annotations

import contextlib
import re

from iscs_jax import io
from iscs_jax.cli import UserError

__all__ = ["UserError", "as_user_error", "config_keys"]


@contextlib.contextmanager
def as_user_error(*types: type[BaseException]):
    """Re-raises ``io.VolumeError`` (and the given exception types) as `UserError`."""
    try:
        yield
    except (io.VolumeError, *types) as err:
        raise UserError(str(err)) from err


@contextlib.contextmanager
def config_keys(**keys: str):
    """Re-raises a library ValueError as `UserError`, each ``argument=`` written as its
    config key ``keys[argument]=`` (e.g. ``start=`` as ``data.slice_start=``)."""
    try:
        yield
    except ValueError as err:  # io.VolumeError included
        message = str(err)
        for argument, key in keys.items():
            message = re.sub(rf"(?<![\w.]){argument}=", f"{key}=", message)
        raise UserError(message) from err
