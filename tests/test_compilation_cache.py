"""Tests for iscs_jax.compilation_cache: the persistent compilation cache the CLI enables."""

import os
import subprocess
import sys
from pathlib import Path

from sample import cli

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import sys
import jax, jax.numpy as jnp
from iscs_jax import compilation_cache
folder = compilation_cache.enable(sys.argv[1] if len(sys.argv) > 1 else None)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((8, 8))).block_until_ready()
print(folder)
"""


def _run(tmp_path, *args):
    env = {k: v for k, v in os.environ.items()
           if k not in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")}
    env.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT, *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def _entries(folder: Path) -> list:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_default_folder_relocation_and_off(tmp_path):
    """By default programs land in the user's cache folder; a given folder replaces it;
    "off" writes nothing anywhere."""
    default = tmp_path / "xdg" / "iscs-jax" / "xla"
    assert _run(tmp_path) == str(default)
    assert _entries(default)
    chosen = tmp_path / "elsewhere"
    assert _run(tmp_path, str(chosen)) == str(chosen)
    assert _entries(chosen)
    before = len(_entries(default))
    assert _run(tmp_path, "off") == "None"
    assert len(_entries(default)) == before


def test_cli_flag_is_parsed():
    args = cli.parse_args(["--config", "ct.py:smoke", "--compilation_cache=off"])
    assert args.compilation_cache == "off"
    assert cli.parse_args(["--config", "ct.py:smoke"]).compilation_cache == ""


def _cli(tmp_path, cache):
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env.update(PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    out = subprocess.run([sys.executable, "-m", "sample", "--config", "ct.py:phantom,smoke",
                          f"--compilation_cache={cache}", "--workdir", str(tmp_path / "results")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_a_second_cli_run_loads_every_program_from_the_cache(tmp_path):
    """The runtime's programs (set-up, initial draw, step) hold no host callback, so the first
    run writes them to the cache and a second run writes nothing new: it compiled nothing."""
    cache = tmp_path / "cache"
    _cli(tmp_path, cache)
    first = sorted(p.name for p in _entries(cache))
    assert len([name for name in first if name.startswith("jit__reconstruct_piece")]) == 3
    _cli(tmp_path, cache)
    assert sorted(p.name for p in _entries(cache)) == first
