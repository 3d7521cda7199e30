"""The one exception type the CLI turns into a short message (no traceback): `UserError`,
the shared command line's (`iscs_jax.cli`)."""

from __future__ import annotations

import contextlib

from iscs_jax import io
from iscs_jax.cli import UserError

__all__ = ["UserError", "as_user_error"]


@contextlib.contextmanager
def as_user_error(*types: type[BaseException]):
    """Re-raises ``io.VolumeError`` (and the given exception types) as `UserError`."""
    try:
        yield
    except (io.VolumeError, *types) as err:
        raise UserError(str(err)) from err
