"""``python -m sample --config ct.py[:smoke] [--config.KEY=VALUE ...] [--workdir DIR]
[--compilation_cache DIR|off] [--verbose]``.

Reconstructs a volume (default: the embedded phantom) and writes
``<workdir>/<config>/<timestamp>/``, whose path is the last line printed.
Input and config problems print one paragraph (no traceback unless
``--verbose``) and exit with status 2.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = "--verbose" in argv or "-v" in argv
    from sample import cli, compilation_cache, run
    from sample.errors import UserError

    try:
        args = cli.parse_args(argv)
        if args.help:
            print(cli.USAGE)
            return 0
        compilation_cache.enable(args.compilation_cache)
        folder = run.run(args.config, args.config_name, args.workdir)
    except UserError as err:
        if verbose:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrupted: no result folder was written.", file=sys.stderr)
        return 130
    if folder is not None:  # None on processes other than 0 (they write nothing)
        print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
