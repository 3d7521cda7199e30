"""``python -m sample --config ct.py[:smoke] [--config.KEY=VALUE ...] [--workdir DIR]
[--compilation_cache DIR|off] [--resume] [--verbose]`` (installed: ``iscs-sample``).

Reconstructs a volume (default: the embedded chest CT slab) and writes
``<workdir>/<config>/<timestamp>/``, whose path is the last line printed.
Input and config problems print one paragraph (no traceback unless
``--verbose``) and exit with status 2 (`iscs_jax.cli.main`).
"""

from __future__ import annotations

import sys

from iscs_jax import cli as shared


def _reconstruct(args) -> None:
    from iscs_jax import compilation_cache

    from . import cohort

    compilation_cache.enable(args.compilation_cache)
    # one volume (run.run), or a folder / glob of volumes or several seeds (summary.json)
    folder = cohort.run(args.config, args.config_name, args.workdir, resume=args.resume)
    if folder is not None:  # None on processes other than 0 (they write nothing)
        print(folder)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    from . import cli

    return shared.main(cli.PROGRAM, _reconstruct, argv)


if __name__ == "__main__":
    sys.exit(main())
