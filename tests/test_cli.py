"""The shared command line (`iscs_jax.cli`): one parser, one error policy, one way to take
config arguments, for ``sample``, ``train``, its helpers and the converter.

Every program here fails before it does any work (no compilation), so these run in seconds.
"""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import train.__main__ as train_main
from iscs_jax import cli
from iscs_jax.convert import __main__ as convert_main
from sample import __main__ as sample_main
from train import export, plot, slab

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
PROGRAMS = {"sample": sample_main.main, "train": train_main.main, "export": export.main,
            "slab": slab.main, "plot": plot.main, "convert": convert_main.main}


def fails(capsys, main, argv, *messages):
    """Runs ``main(argv)`` expecting exit status 2; returns the one-paragraph stderr."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one paragraph
    assert "Traceback" not in err
    for message in messages:
        assert message in err, err
    return err


def test_unknown_config_key_names_the_closest_ones(capsys, tmp_path):
    workdir = tmp_path / "W"
    err = fails(capsys, train_main.main, ["--config", "configs/train_phantom.py:smoke",
                                          "--config.train.nmu_steps=3", "--workdir", str(workdir)],
                "Unknown config key 'train.nmu_steps'", "Did you mean train.num_steps")
    assert "Valid keys: checkpoint.every" in err
    assert not workdir.exists()
    fails(capsys, sample_main.main, ["--config=ct.py", "--config.sampler.stepz=3"],
          "Did you mean sampler.steps")
    fails(capsys, sample_main.main, ["--config=ct.py", "--config.sampler.mode=ddim"],
          "renamed: use sampler.renoise")
    fails(capsys, slab.main, ["--config", "train_chest128.py", "--config.data.paht=x",
                              "--start=0", "--stop=1", "--out=x.nii.gz"], "data.path")


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_every_program_refuses_an_unknown_flag_the_same_way(name, capsys):
    fails(capsys, PROGRAMS[name], ["--workdri=x"], "Unknown flag '--workdri'.", "Valid flags:",
          "--verbose")
    assert PROGRAMS[name](["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ") and "--verbose" in out


def test_did_you_mean_for_a_flag(capsys):
    fails(capsys, export.main, ["--workdir=w", "--nmae=x"], "Did you mean --name?")
    fails(capsys, train_main.main, ["--config=train_phantom.py"], "Missing --workdir")
    fails(capsys, sample_main.main, [], "Missing --config")
    fails(capsys, sample_main.main, ["--config"], "--config needs a value")
    fails(capsys, sample_main.main, ["ct.py"], "Unexpected argument 'ct.py'")


def test_bad_values_name_the_type(capsys):
    fails(capsys, train_main.main, ["--config=train_phantom.py", "--workdir=w",
                                    "--config.train.num_steps=many"],
          "config.train.num_steps", "must be int")
    fails(capsys, sample_main.main, ["--config=ct.py", "--config.data.resize=maybe"],
          "config.data.resize", "must be bool")
    fails(capsys, slab.main, ["--config=train_chest128.py", "--start=x", "--stop=2",
                              "--out=o.nii.gz"], "--start", "must be int")
    fails(capsys, convert_main.main, ["--checkpoint=c.pth", "--model-config=models/ncsnpp_256.py",
                                      "--out=o", "--weights=best"], "not one of ema, model")
    args = cli.parse(train_main.PROGRAM, ["--config", "train_phantom.py", "--workdir", "w",
                                          "--config.train.learning_rate", "2e-3",
                                          "--config.model.channel_mults=(1, 2)"])
    assert args.config.train.learning_rate == 2e-3 and args.config.model.channel_mults == (1, 2)


def test_verbose_shows_the_traceback(tmp_path):
    with pytest.raises(cli.UserError, match="train.num_steps"):
        train_main.main(["--config=train_phantom.py", "--config.train.nmu_steps=3",
                         f"--workdir={tmp_path}", "--verbose"])


def test_library_errors_a_program_names_exit_2(capsys, tmp_path):
    fails(capsys, export.main, [f"--workdir={tmp_path}", "--name=x"], "config.json not found")
    fails(capsys, plot.main, [f"--workdir={tmp_path}", "--out=x.png"], "metrics.jsonl")
    fails(capsys, convert_main.main, [f"--checkpoint={tmp_path}/none.pth", "--out=o",
                                      "--model-config=models/ncsnpp_256.py:tiny"], "none.pth")
    fails(capsys, convert_main.main, [f"--checkpoint={tmp_path}/none.pth", "--out=o",
                                      "--model_config=models/ncsnpp_256.py:big"],
          "Unknown config argument 'big'", "tiny")
    assert not list(tmp_path.iterdir())


def _shipped():
    return cli.shipped_configs("configs")


def test_every_shipped_config_takes_its_arguments_through_apply_arguments():
    assert {"ct.py", "train_phantom.py", "models/ncsnpp_256.py"} <= set(_shipped())
    for name in _shipped():
        module = importlib.import_module("configs." + name[:-3].replace("/", "."))
        assert module.ARGUMENTS, name
        assert "arg ==" not in Path(module.__file__).read_text(), name  # no hand-rolled parsing
        for argument in module.ARGUMENTS:
            config, stem = cli.load_config(f"{name}:{argument}", "configs")
            assert stem == Path(name).stem
        with pytest.raises(cli.UserError, match="Unknown config argument 'fast'. Valid "
                                                f"arguments: {', '.join(module.ARGUMENTS)}"):
            cli.load_config(f"{name}:fast", "configs")


def test_config_arguments_apply_in_their_own_order():
    calls = []
    arguments = {"a": lambda c: calls.append("a"), "b": lambda c: calls.append("b")}
    cli.apply_arguments(None, "b, a", arguments)
    assert calls == ["a", "b"]
    assert cli.apply_arguments("config", None, arguments) == "config"
    with pytest.raises(ValueError, match="Did you mean a"):
        cli.apply_arguments(None, "aa", arguments)


def test_smoke_arguments_shrink_the_runs():
    smoke, full = (cli.load_config(spec, "configs")[0]
                   for spec in ("train_phantom.py:smoke", "train_phantom.py"))
    assert smoke.train.num_steps == 40 < full.train.num_steps
    assert smoke.data.resolution == 32 < full.data.resolution
    both = cli.load_config("ct.py:phantom,smoke", "configs")[0]
    assert (both.sampler.steps, both.prior.name) == (3, "phantom64")
    assert cli.load_config("mri_zsr.py:smoke", "configs")[0].data.num_slices == 4


def test_configs_load_as_members_of_their_package(tmp_path, monkeypatch):
    by_path, _ = cli.load_config(str(CONFIGS / "train_phantom.py"), "configs")
    by_name, _ = cli.load_config("train_phantom", "configs")
    assert by_path == by_name
    member = sys.modules["configs.train_phantom"]
    assert Path(member.__file__).resolve() == CONFIGS / "train_phantom.py"
    # A user's file (a copy of a shipped one) imports the shipped configs relatively...
    (tmp_path / "mine.py").write_text(
        "from . import sample_base\n"
        "def get_config(arg=None):\n"
        "    config = sample_base.get_sample_config('sparse_view', num_views=7)\n"
        "    return sample_base.shrink_for_smoke(config) if arg == 'smoke' else config\n")
    config, name = cli.load_config(str(tmp_path / "mine.py:smoke"), "configs")
    assert (name, config.operator.num_views, config.sampler.steps) == ("mine", 7, 3)
    # ... or by the installed name.
    (tmp_path / "installed.py").write_text(
        "from iscs_jax.configs import ct\n"
        "def get_config(arg=None):\n"
        "    return ct.get_config(arg)\n")
    assert cli.load_config(str(tmp_path / "installed.py"), "configs")[0].operator.num_views == 20
    monkeypatch.chdir(tmp_path)
    with pytest.raises(cli.UserError, match=r"not found.*ct\.py, "):
        cli.load_config("nope.py", "configs")
    (tmp_path / "broken.py").write_text("import no_such_module\n")
    with pytest.raises(cli.UserError, match="broken.py' failed to load: ModuleNotFoundError"):
        cli.load_config("broken.py", "configs")


def _foreign_folder(tmp_path: Path) -> Path:
    """A folder with its own ``configs`` package and ``sample.py`` (a score_sde checkout)."""
    folder = tmp_path / "elsewhere"
    (folder / "configs").mkdir(parents=True)
    (folder / "configs" / "__init__.py").write_text("raise ImportError('the wrong configs')\n")
    (folder / "sample.py").write_text("raise SystemExit('the wrong sample')\n")
    (folder / "train.py").write_text("raise SystemExit('the wrong train')\n")
    return folder


def test_from_the_repository_and_from_a_folder_with_its_own_configs(tmp_path):
    """``python -m train`` in the checkout; ``python -m iscs_jax.train`` / ``iscs_jax.sample``
    elsewhere find the shipped configs in the package, not the folder's ``configs``."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("PYTHONPATH", None)
    workdir = tmp_path / "W"
    runs = [(REPO, "train", "configs/train_phantom.py:smoke", "train.num_steps"),
            (_foreign_folder(tmp_path), "iscs_jax.train", "train_phantom.py:smoke",
             "train.num_steps"),
            (tmp_path / "elsewhere", "iscs_jax.sample", "ct.py:smoke", "sampler.steps")]
    for cwd, module, config, named in runs:
        key = "--config.train.nmu_steps=3" if "train" in module else "--config.sampler.stepz=3"
        done = subprocess.run([sys.executable, "-m", module, "--config", config, key,
                               "--workdir", str(workdir)], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, (module, done.stderr)
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
        assert f"Did you mean {named}" in done.stderr and "Traceback" not in done.stderr
    assert not workdir.exists()
