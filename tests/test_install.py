"""The built wheel adds one import name, ``iscs_jax``, and runs from a folder with its own
``configs`` package and ``sample.py``.

The wheel is built from a copy of the sources (so the checkout gets no ``build/`` folder) with
the installed setuptools, without network or a virtual environment; the unpacked wheel stands
in for site-packages.
"""

import configparser
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from test_cli import _foreign_folder

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("iscs_jax", "configs", "sample", "train", "pyproject.toml", "README.md")
#: Top-level folders -> their installed package.
MAPPED = {"iscs_jax": "iscs_jax", "configs": "iscs_jax/configs", "sample": "iscs_jax/sample",
          "train": "iscs_jax/train"}


def _can_build_wheels() -> bool:
    """Whether the installed setuptools builds wheels itself (>= 70.1) or with ``wheel``."""
    return any(importlib.util.find_spec(name) is not None
               for name in ("setuptools.command.bdist_wheel", "wheel"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    if not _can_build_wheels():
        pytest.skip("the installed setuptools cannot build a wheel (needs >= 70.1 or wheel)")
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    for name in SOURCES:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
        copy(REPO / name, source / name, **({"ignore": shutil.ignore_patterns(
            "__pycache__", "*.egg-info")} if (REPO / name).is_dir() else {}))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "--no-index", str(source), "-w",
                           str(root / "dist")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    (path,) = (root / "dist").glob("iscs_jax-*.whl")
    return zipfile.ZipFile(path)


def _dist_info(wheel: zipfile.ZipFile, name: str) -> str:
    (path,) = [n for n in wheel.namelist() if n.endswith(f".dist-info/{name}")]
    return wheel.read(path).decode()


def test_the_wheel_adds_only_iscs_jax(wheel):
    names = wheel.namelist()
    tops = {n.split("/")[0] for n in names if ".dist-info/" not in n}
    assert tops == {"iscs_jax"}
    assert _dist_info(wheel, "top_level.txt").split() == ["iscs_jax"]
    for path in ("iscs_jax/configs/ct.py", "iscs_jax/configs/models/ncsnpp_256.py",
                 "iscs_jax/sample/__main__.py", "iscs_jax/train/__main__.py",
                 "iscs_jax/cli.py", "iscs_jax/priors/assets/phantom64.msgpack",
                 "iscs_jax/data/assets/chest_ct_69-132.nii.gz"):
        assert path in names, path


def test_every_package_of_the_checkout_is_in_the_wheel(wheel):
    names = set(wheel.namelist())
    for folder, installed in MAPPED.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.relative_to(REPO / folder).as_posix()
            assert f"{installed}/{relative}" in names, (init, "add it to pyproject's packages")
    for asset in (REPO / "iscs_jax").glob("*/assets/*"):
        assert asset.relative_to(REPO).as_posix() in names, asset


def test_console_scripts_and_metadata(wheel):
    entry_points = configparser.ConfigParser()
    entry_points.read_string(_dist_info(wheel, "entry_points.txt"))
    assert dict(entry_points["console_scripts"]) == {
        "iscs-sample": "iscs_jax.sample.__main__:main",
        "iscs-train": "iscs_jax.train.__main__:main",
        "iscs-convert": "iscs_jax.convert.__main__:main"}
    metadata = _dist_info(wheel, "METADATA")
    assert "Requires-Python: >=3.11" in metadata
    for extra in ("cuda12", "tpu"):
        assert f"Provides-Extra: {extra}" in metadata
        assert f'jax[{extra}]<0.11,>=0.10; extra == "{extra}"' in metadata


def test_the_unpacked_wheel_runs_from_a_folder_with_its_own_configs(wheel, tmp_path):
    """What ``iscs-train`` runs (its entry point), with the folder's ``configs/`` and
    ``sample.py`` first on ``sys.path``: the shipped config is found inside the package."""
    site = tmp_path / "site"
    wheel.extractall(site)
    script = ("import sys, iscs_jax; assert iscs_jax.__file__.startswith(sys.argv[1]), "
              "iscs_jax.__file__; sys.argv[1:2] = []; from iscs_jax.{}.__main__ import main; "
              "sys.exit(main())")
    env = {**os.environ, "PYTHONPATH": str(site), "JAX_PLATFORMS": "cpu"}
    folder = _foreign_folder(tmp_path)
    for package, config, key in (("train", "train_phantom.py:smoke", "train.num_steps"),
                                 ("sample", "ct.py:smoke", "sampler.steps")):
        done = subprocess.run(
            [sys.executable, "-c", script.format(package), str(site), "--config", config,
             f"--config.{key}x=3", "--workdir", str(tmp_path / "W")],
            cwd=folder, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, done.stderr
        assert f"Did you mean {key}" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "W").exists()
