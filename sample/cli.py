"""Command line: ``--config NAME[:ARG]``, ``--config.KEY=VALUE``, ``--workdir``, ``--verbose``.

Hand-written (instead of absl's ``config_flags``) so that every mistake, an
unknown key above all, becomes a `UserError` listing the valid keys rather than
a traceback.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib.util
from pathlib import Path

import ml_collections

import configs
from sample.errors import UserError

CONFIG_DIR = Path(configs.__file__).resolve().parent
USAGE = """usage: python -m sample --config CONFIG[:smoke] [--config.KEY=VALUE ...]
                        [--workdir DIR] [--compilation_cache DIR|off] [--verbose]

  --config     a config file: a bare name (ct.py, lact.py) is looked up in configs/, a path is
               used as is; ":smoke" shrinks the run to seconds.
  --config.K   override one config field, e.g. --config.sampler.steps=50
               --config.data.path=scan.nii.gz --config.compare=iid,iscs
  --workdir    results root (default: results); the run folder is <workdir>/<config>/<time>.
  --compilation_cache  where compiled programs are kept for the next run (default:
               $JAX_COMPILATION_CACHE_DIR, else ~/.cache/iscs-jax/xla); "off" disables it.
  --verbose    show tracebacks and library logging.
"""


@dataclasses.dataclass
class Args:
    """Parsed command line."""
    config: ml_collections.ConfigDict | None
    config_name: str
    workdir: str = "results"
    verbose: bool = False
    compilation_cache: str = ""  # "" = default folder, "off" = disabled
    help: bool = False


def resolve_config_path(name: str) -> Path:
    """A config file from a path, or a bare name looked up in ``configs/`` (".py" optional)."""
    candidates = [Path(name)]
    if not Path(name).is_absolute():
        candidates.append(CONFIG_DIR / name)
        if not name.endswith(".py"):
            candidates.append(CONFIG_DIR / f"{name}.py")
    for path in candidates:
        if path.is_file():
            return path
    shipped = sorted(p.name for p in CONFIG_DIR.glob("*.py") if not p.name.startswith("_"))
    raise UserError(f"Config file {name!r} was not found (looked in the current directory and in "
                    f"{str(CONFIG_DIR)!r}). Give a path to a config .py file or one of the "
                    f"shipped configs: {', '.join(shipped)}.")


def load_config(spec: str) -> tuple[ml_collections.ConfigDict, str]:
    """Loads ``path[:arg]`` by calling its ``get_config(arg)``; returns (config, name)."""
    name, _, arg = spec.partition(":")
    path = resolve_config_path(name)
    module_spec = importlib.util.spec_from_file_location(f"_sample_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
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


#: Keys that moved, and where to.
RENAMED_KEYS = {
    "sampler.mode": "sampler.renoise (the re-noising rule; sampler.name picks the sampler)",
    "sampler.cg_iters": "sampler.dds.cg_iters (each sampler has its own section, e.g. "
                        "sampler.ddnm.cg_iters)",
    "sampler.rho": "sampler.dds.rho (or sampler.admm_tv.rho)",
}


def _unknown_key(config, key: str) -> UserError:
    if key in RENAMED_KEYS:
        return UserError(f"Config key {key!r} was renamed: use {RENAMED_KEYS[key]}.")
    valid = flat_keys(config)
    close = difflib.get_close_matches(key, valid, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return UserError(f"Unknown config key {key!r}.{hint} Valid keys: {', '.join(valid)}.")


def _parse_value(raw: str, field_type, key: str):
    """Converts the command-line text to the type the config field has."""
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
        raise UserError(f"Cannot set config.{key} to {raw!r}: it must be {kind} ({err}).") from err


def apply_override(config: ml_collections.ConfigDict, key: str, raw: str) -> None:
    """Sets ``config.<key>`` from its command-line text, checking the key and the type."""
    *sections, leaf = key.split(".")
    holder = config
    for section in sections:
        holder = holder.get(section) if isinstance(holder, ml_collections.ConfigDict) else None
    if not isinstance(holder, ml_collections.ConfigDict) or leaf not in holder \
            or isinstance(holder[leaf], ml_collections.ConfigDict):
        raise _unknown_key(config, key)
    value = _parse_value(raw, holder.get_type(leaf), key)
    try:
        holder[leaf] = value
    except TypeError as err:
        raise UserError(f"Cannot set config.{key} to {raw!r}: {err}.") from err


def _split_args(argv: list[str]) -> list[tuple[str, str | None]]:
    """``["--a=1", "--b", "2", "--v"]`` -> ``[("--a", "1"), ("--b", "2"), ("--v", None)]``."""
    pairs, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-"):
            raise UserError(f"Unexpected argument {arg!r}.\n{USAGE}")
        name, eq, value = arg.partition("=")
        if not eq and name not in ("--verbose", "-v", "--help", "-h") and i + 1 < len(argv) \
                and not argv[i + 1].startswith("--"):
            value, i = argv[i + 1], i + 1
        pairs.append((name, value if (eq or value) else None))
        i += 1
    return pairs


def parse_args(argv: list[str]) -> Args:
    """Parses the command line (without the program name) into `Args`."""
    pairs = _split_args(list(argv))
    names = [name for name, _ in pairs]
    if "--help" in names or "-h" in names:
        return Args(config=None, config_name="", help=True)
    spec, workdir, cache, overrides = None, "results", "", []
    for name, value in pairs:
        if name in ("--verbose", "-v"):
            continue
        if value is None:
            raise UserError(f"{name} needs a value ({name}=VALUE).\n{USAGE}")
        if name == "--config":
            spec = value
        elif name == "--workdir":
            workdir = value
        elif name == "--compilation_cache":
            cache = value
        elif name.startswith("--config."):
            overrides.append((name[len("--config."):], value))
        else:
            raise UserError(f"Unknown flag {name!r}.\n{USAGE}")
    if spec is None:
        raise UserError(f"No config given: pass --config ct.py (or lact.py, or a path).\n{USAGE}")
    config, config_name = load_config(spec)
    for key, raw in overrides:
        apply_override(config, key, raw)
    return Args(config, config_name, workdir, verbose="--verbose" in names or "-v" in names,
                compilation_cache=cache)
