"""The command line of every iscs-jax program: one parser, one ``--verbose``, one error policy.

Used by ``python -m sample`` (``iscs-sample``), ``python -m train`` (``iscs-train``), the
trainer's helpers (``python -m train.export``, ``train.slab``, ``train.plot``) and
``python -m iscs_jax.convert`` (``iscs-convert``). Each describes itself as a `Program` (its
`Flag` s, whether it takes ``--config``) and hands `main` the function that does its work.

* ``--config FILE[:ARG,...]`` loads a config file's ``get_config(arg)`` (`load_config`);
  ``--config.KEY=VALUE`` sets one of its fields, converted to the field's type; every other
  flag is ``--NAME=VALUE`` or ``--NAME VALUE`` (``-`` and ``_`` are the same in names);
  ``--verbose`` (``-v``) shows tracebacks and INFO logging; ``--help`` (``-h``) the usage.
* Every mistake (an unknown flag or config key, a bad value, a missing file, and the library
  errors a program names) prints one paragraph on stderr, starting ``error:``, and exits with
  status 2; an unknown name comes with a did-you-mean and the valid names. No traceback
  without ``--verbose``.

Configs are found in a configs package: ``configs`` beside the top-level ``sample/`` and
``train/`` folders of a checkout, ``iscs_jax.configs`` once installed (`sibling` names it for
the program's own package). A bare name (``ct.py``, ``models/ncsnpp_256.py``) is a member of
that package, imported as such so its relative imports (``from . import sample_base``) work; a
file given by path is imported as a member when it lies inside the package, and otherwise
loaded as a file whose relative imports also resolve in that package. Config arguments
(``ct.py:smoke``, ``ct.py:phantom,smoke``) are the one mechanism of every shipped config:
``get_config(arg)`` ends with `apply_arguments` on its ``ARGUMENTS`` dict.

This is the one library module that imports ml_collections (configs are ConfigDicts); the
rest of ``iscs_jax`` takes plain arguments.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib
import importlib.util
import logging
import sys
import textwrap
import types
from pathlib import Path
from typing import Any, Callable, Mapping

import ml_collections

#: `Flag.default` of a flag that must be given.
REQUIRED = object()
#: Flags that take no value.
SWITCHES = {"--verbose": "verbose", "-v": "verbose", "--help": "help", "-h": "help"}


class UserError(Exception):
    """A problem with the user's input or config; the message names it and the fix."""


@dataclasses.dataclass(frozen=True)
class Flag:
    """``--name VALUE``: converted by ``type`` (str, int, float), one of ``choices`` if set;
    a ``bool`` flag is a switch (``--name`` alone sets it; ``--name=false`` also parses)."""
    name: str
    help: str
    default: Any = REQUIRED
    type: type = str
    choices: tuple = ()
    metavar: str = "VALUE"


@dataclasses.dataclass(frozen=True)
class Program:
    """A command line: its name and summary, its flags, and its config.

    ``config``: the help of ``--config`` (required then), or None for a program without one;
    ``configs``: the package holding the shipped configs (`sibling`), None for none;
    ``renamed_keys``: config keys that moved -> where to (named in the error);
    ``interrupted``: what Ctrl-C prints.
    """
    name: str
    summary: str
    flags: tuple[Flag, ...] = ()
    config: str | None = None
    configs: str | None = None
    renamed_keys: Mapping[str, str] = dataclasses.field(default_factory=dict)
    interrupted: str = "Interrupted."


def sibling(package: str, name: str) -> str:
    """The package ``name`` beside ``package``: ``sibling("iscs_jax.sample", "configs")`` is
    ``"iscs_jax.configs"``, ``sibling("sample", "configs")`` is ``"configs"``."""
    parent = package.rpartition(".")[0]
    return f"{parent}.{name}" if parent else name


def unknown(kind: str, name: str, valid) -> str:
    """``Unknown config key 'name'. Did you mean ...? Valid keys: ...`` for an error message."""
    valid = list(valid)
    close = difflib.get_close_matches(name, valid, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return f"Unknown {kind} {name!r}.{hint} Valid {kind.split()[-1]}s: {', '.join(valid)}."


# ----------------------------------------------------------------------------------- configs


def apply_arguments(config: ml_collections.ConfigDict, arg: str | None,
                    arguments: Mapping[str, Callable]) -> ml_collections.ConfigDict:
    """Applies the comma-separated config arguments ``arg`` (``"smoke"``, ``"phantom,smoke"``).

    Each named ``arguments[name](config)`` changes ``config`` in place, in the order of
    ``arguments`` (not of ``arg``); every config file's ``get_config(arg)`` ends with this.

    Raises:
      ValueError: an unknown argument; the message lists the valid ones.
    """
    names = [a.strip() for a in str(arg or "").split(",") if a.strip()]
    for name in names:
        if name not in arguments:
            raise ValueError(unknown("config argument", name, arguments) +
                             " Several are comma-separated (FILE.py:ARG1,ARG2).")
    for name, change in arguments.items():
        if name in names:
            change(config)
    return config


def _package_dir(package: str | None) -> Path | None:
    """The folder of the configs package, or None if there is none to import."""
    if not package:
        return None
    try:
        module = importlib.import_module(package)
    except ImportError:
        return None
    return Path(list(module.__path__)[0]).resolve()


def shipped_configs(package: str | None) -> list[str]:
    """The config files of ``package`` (those defining ``get_config``), e.g. ``ct.py``."""
    root = _package_dir(package)
    if root is None:
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                  if not p.name.startswith("_") and "def get_config" in p.read_text())


def resolve_config_path(name: str, package: str | None) -> Path:
    """A config file: a path, else a bare name in ``package`` (".py" optional)."""
    root = _package_dir(package)
    candidates = [Path(name)]
    if root is not None and not Path(name).is_absolute():
        candidates += [root / name, root / f"{name}.py"]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    where = f" or in {str(root)!r}" if root else ""
    shipped = shipped_configs(package)
    listing = f" or one of the shipped configs: {', '.join(shipped)}" if shipped else ""
    raise UserError(f"Config file {name!r} was not found (looked in the current directory"
                    f"{where}). Give a path to a config .py file{listing}.")


def _member_name(path: Path, package: str | None) -> str | None:
    """``package.a.b`` for ``<package folder>/a/b.py``; None outside the package."""
    root = _package_dir(package)
    if root is None or not path.is_relative_to(root):
        return None
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join((package, *parts)) if all(p.isidentifier() for p in parts) else None


def _import_config(path: Path, package: str | None) -> types.ModuleType:
    """The config module at ``path``: a member of ``package``, or a file loaded in it."""
    member = _member_name(path, package)
    try:
        if member is not None:
            return importlib.import_module(member)
        stem = "".join(c if c.isalnum() else "_" for c in path.stem)
        name = f"{package}._file_{stem}" if _package_dir(package) else f"_config_{stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    except Exception as err:  # a broken user file: one paragraph, the traceback with --verbose
        raise UserError(f"Config file {str(path)!r} failed to load: {type(err).__name__}: "
                        f"{err}") from err


def load_config(spec: str, package: str | None) -> tuple[ml_collections.ConfigDict, str]:
    """``(get_config(arg), file stem)`` of the config ``FILE[:ARG]``.

    Args:
      spec: a path or a name in ``package`` (``ct.py``, ``models/ncsnpp_256.py``), with the
        config arguments after a colon (``ct.py:phantom,smoke``).
      package: the configs package (`sibling` of the program's package), or None.
    """
    name, _, arg = spec.partition(":")
    path = resolve_config_path(name, package)
    module = _import_config(path, package)
    if not hasattr(module, "get_config"):
        raise UserError(f"Config file {str(path)!r} defines no get_config(arg=None) function.")
    try:
        config = module.get_config(arg or None)
    except ValueError as err:
        raise UserError(f"Config {spec!r}: {err}") from err
    return config, path.stem


def flat_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    """Every leaf key of ``config`` in dotted form (``sampler.steps``)."""
    keys = []
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            keys += flat_keys(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def parse_value(raw: str, field_type, what: str):
    """The command-line text ``raw`` as a ``field_type`` (a Python literal when None)."""
    try:
        if field_type is bool:
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError("expected true or false")
            return raw.lower() in ("true", "1", "yes")
        if field_type is str:
            return raw
        if field_type in (int, float):
            return field_type(raw)
        value = ast.literal_eval(raw)
        return value if field_type is None or isinstance(value, field_type) else field_type(value)
    except (ValueError, SyntaxError, TypeError) as err:
        kind = getattr(field_type, "__name__", "a Python literal")
        raise UserError(f"Cannot set {what} to {raw!r}: it must be {kind} ({err}).") from err


def apply_override(config: ml_collections.ConfigDict, key: str, raw: str,
                   renamed_keys: Mapping[str, str] | None = None) -> None:
    """Sets ``config.<key>`` from its command-line text, checking the key and the type."""
    *sections, leaf = key.split(".")
    holder = config
    for section in sections:
        holder = holder.get(section) if isinstance(holder, ml_collections.ConfigDict) else None
    if not isinstance(holder, ml_collections.ConfigDict) or leaf not in holder \
            or isinstance(holder[leaf], ml_collections.ConfigDict):
        if key in (renamed_keys or {}):
            raise UserError(f"Config key {key!r} was renamed: use {renamed_keys[key]}.")
        raise UserError(unknown("config key", key, flat_keys(config)))
    value = parse_value(raw, holder.get_type(leaf), f"config.{key}")
    try:
        holder[leaf] = value
    except TypeError as err:
        raise UserError(f"Cannot set config.{key} to {raw!r}: {err}.") from err


# ------------------------------------------------------------------------------------- flags


def _canonical(name: str) -> str:
    """``--model-config`` -> ``--model_config`` (dashes and underscores are the same)."""
    return "--" + name[2:].replace("-", "_") if name.startswith("--") else name


def _split_args(argv: list[str], switches=()) -> list[tuple[str, str | None]]:
    """``["--a=1", "--b", "2", "-v"]`` -> ``[("--a", "1"), ("--b", "2"), ("-v", None)]``;
    the names in ``switches`` (besides `SWITCHES`) never take the next argument."""
    pairs, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-"):
            raise UserError(f"Unexpected argument {arg!r}: every argument is a flag "
                            "(--NAME=VALUE).")
        name, eq, value = arg.partition("=")
        name = _canonical(name)
        if not eq and name not in SWITCHES and name not in switches and i + 1 < len(argv) \
                and not argv[i + 1].startswith("--"):
            value, eq, i = argv[i + 1], "=", i + 1
        pairs.append((name, value if eq else None))
        i += 1
    return pairs


def _flag_value(program: Program, name: str, raw: str) -> tuple[str, Any]:
    """``(flag name, converted value)`` of ``--name=raw``."""
    flags = {f"--{flag.name}": flag for flag in program.flags}
    if name not in flags:
        valid = [*flags, *(("--config", "--config.KEY") if program.config else ()),
                 "--verbose", "--help"]
        raise UserError(unknown("flag", name, valid))
    flag = flags[name]
    if flag.choices and raw not in flag.choices:
        raise UserError(f"{name}={raw!r} is not one of {', '.join(flag.choices)}.")
    return flag.name, parse_value(raw, flag.type, name)


def parse(program: Program, argv: list[str]) -> types.SimpleNamespace:
    """The command line ``argv`` (without the program name) of ``program``.

    Returns:
      ``config`` (a ConfigDict, or None), ``config_name`` (the config file's stem),
      ``verbose``, ``help`` and one attribute per `Flag`.
    """
    bools = {f"--{flag.name}" for flag in program.flags if flag.type is bool}
    pairs = _split_args(list(argv), bools)
    switches = {SWITCHES[name] for name, _ in pairs if name in SWITCHES}
    args = types.SimpleNamespace(config=None, config_name="", verbose="verbose" in switches,
                                 help="help" in switches,
                                 **{flag.name: flag.default for flag in program.flags})
    if args.help:
        return args
    spec, overrides = None, []
    for name, raw in pairs:
        if name in SWITCHES:
            continue
        if raw is None and name in bools:
            raw = "true"
        if raw is None:
            raise UserError(f"{name} needs a value ({name}=VALUE).")
        if program.config and name == "--config":
            spec = raw
        elif program.config and name.startswith("--config."):
            overrides.append((name[len("--config."):], raw))
        else:
            setattr(args, *_flag_value(program, name, raw))
    missing = ([] if spec or not program.config else ["--config"]) + \
        [f"--{flag.name}" for flag in program.flags if getattr(args, flag.name) is REQUIRED]
    if missing:
        raise UserError(f"Missing {', '.join(missing)} (see {prog(program)} --help).")
    if spec is not None:
        args.config, args.config_name = load_config(spec, program.configs)
        for key, raw in overrides:
            apply_override(args.config, key, raw, program.renamed_keys)
    return args


def prog(program: Program) -> str:
    """How the user called the program: ``iscs-sample`` for a console script, else its name."""
    called = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return called if called.startswith("iscs-") else program.name


def usage(program: Program) -> str:
    """The ``--help`` text."""
    rows = []
    if program.config:
        rows += [("--config CONFIG[:ARG]", program.config),
                 ("--config.KEY=VALUE", "set one config field, e.g. --config.a.b=3.")]
    for flag in program.flags:
        default = "" if flag.default is REQUIRED else f" (default: {flag.default!r})"
        rows.append((f"--{flag.name} {flag.metavar}", flag.help + default))
    rows += [("--verbose, -v", "show tracebacks and library logging."),
             ("--help, -h", "show this text.")]
    width = max(len(left) for left, _ in rows) + 4
    lines = [textwrap.fill(right, 100, initial_indent=f"  {left:<{width - 2}}",
                           subsequent_indent=" " * width) for left, right in rows]
    return (f"usage: {prog(program)} [flags]\n\n{textwrap.fill(program.summary, 100)}\n\n"
            + "\n".join(lines))


# ------------------------------------------------------------------------------ error policy


def _set_logging(verbose: bool) -> None:
    """INFO logging with ``--verbose``; otherwise warnings only (Orbax logs each save at INFO
    through absl's logger)."""
    level = logging.INFO if verbose else logging.WARNING
    logging.getLogger("absl").setLevel(level)
    if verbose:
        logging.basicConfig(level=level)


def main(program: Program, body: Callable[[types.SimpleNamespace], int | None],
         argv: list[str] | None = None, errors: tuple[type[BaseException], ...] = ()) -> int:
    """Parses ``argv`` (default ``sys.argv[1:]``) and runs ``body(args)`` under the error policy.

    `UserError` and the ``errors`` types print ``error: <one paragraph>`` on stderr and return
    2 (with ``--verbose`` they propagate, traceback and all); Ctrl-C prints
    ``program.interrupted`` and returns 130.

    Returns:
      The process exit status: ``body``'s return value, 0 when it returns None.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = any(arg in ("--verbose", "-v") for arg in argv)
    _set_logging(verbose)
    try:
        args = parse(program, argv)
        if args.help:
            print(usage(program))
            return 0
        return int(body(args) or 0)
    except (UserError, *errors) as err:
        if verbose:
            raise
        print("error: " + " ".join(str(err).split()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(program.interrupted, file=sys.stderr)
        return 130
