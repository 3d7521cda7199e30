"""score_sde checkpoint conversion: EMA alignment, error listings, the CLI, no torch at import."""

import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from iscs_jax import priors
from iscs_jax.convert import ConversionError, from_score_sde, score_sde
from iscs_jax.convert import __main__ as convert_cli
from test_ncsnpp import MODEL_CONFIG, random_state_dict, tiny_config

TINY = MODEL_CONFIG + ":tiny"


@pytest.fixture(scope="module")
def state_dict():
    return random_state_dict(tiny_config(), seed=1)


def _trainable(sd):
    return [name for name in sd if name not in ("sigmas", "all_modules.0.W")]


def _leaves(params):
    return jax.tree.leaves(params)


def test_ema_list_is_aligned_with_the_trainable_parameters(state_dict):
    """EMA weights (a list) + sigmas and the Fourier W from `model` give the same parameters as
    a state_dict holding those tensors by name; the `module.` prefix is stripped."""
    rng = np.random.default_rng(2)
    names = _trainable(state_dict)
    shadow = [v + rng.normal(0, 0.01, v.shape).astype(np.float32)
              for v in (state_dict[n] for n in names)]
    checkpoint = {"model": {f"module.{k}": v for k, v in state_dict.items()},
                  "ema": {"decay": 0.999, "num_updates": 3, "shadow_params": shadow}, "step": 3}
    _, from_ema = from_score_sde(checkpoint, TINY)
    by_name = {**state_dict, **dict(zip(names, shadow))}
    _, expected = from_score_sde({"model": by_name}, TINY, weights="model")
    _, raw = from_score_sde(checkpoint, TINY, weights="model")
    for a, b in zip(_leaves(from_ema), _leaves(expected)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(_leaves(from_ema), _leaves(raw)))


def test_mismatches_are_listed_in_one_error(state_dict):
    sd = dict(state_dict)
    del sd["all_modules.3.bias"]
    sd["all_modules.99.weight"] = np.zeros(3, np.float32)
    sd["all_modules.1.weight"] = sd["all_modules.1.weight"].T
    with pytest.raises(ConversionError) as err:
        from_score_sde({"model": sd}, TINY, weights="model")
    message = str(err.value)
    assert "1 missing: all_modules.3.bias" in message
    assert "1 unmapped: all_modules.99.weight" in message
    assert "all_modules.1.weight (32, 64) (expected (64, 32))" in message


def test_ema_errors_name_the_fix(state_dict):
    with pytest.raises(ConversionError, match="--weights model"):
        from_score_sde({"model": state_dict}, TINY)
    short = {"model": state_dict, "ema": {"shadow_params": [np.zeros(1)] * 5}}
    with pytest.raises(ConversionError, match="EMA holds 5 tensors"):
        from_score_sde(short, TINY)
    with pytest.raises(ConversionError, match="EMA holds"):  # the 256 config on a tiny checkpoint
        from_score_sde({"model": state_dict, "ema": {"shadow_params": [0] * 3}}, MODEL_CONFIG)


def test_cli_converts_a_pth_file_into_a_prior_that_loads(state_dict, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    names = _trainable(state_dict)
    checkpoint = {"model": {f"module.{k}": torch.from_numpy(v) for k, v in state_dict.items()},
                  "ema": {"decay": 0.999, "num_updates": 7,
                          "shadow_params": [torch.from_numpy(state_dict[n]) for n in names]},
                  "optimizer": {"state": {}, "param_groups": []}, "step": 7}
    torch.save(checkpoint, tmp_path / "ckpt.pth")
    out = tmp_path / "priors" / "tiny"
    assert convert_cli.main(["--checkpoint", str(tmp_path / "ckpt.pth"), "--model-config", TINY,
                             "--out", str(out)]) == 0
    assert "--config.prior.kind=score_sde" in capsys.readouterr().out
    prior = priors.load(str(out))
    meta = prior.metadata
    assert (meta["architecture"], meta["parameterisation"]["kind"]) == ("ncsnpp", "ve_score")
    assert (prior.resolution, prior.sigma_max, meta["intensity"]["hu_max"]) == (32, 378.0, 1600.0)
    assert meta["provenance"]["step"] == 7 and meta["provenance"]["weights"] == "ema"
    assert meta["orientation"] == score_sde.DEFAULT_ORIENTATION == "LPS"  # documented default
    score, _ = from_score_sde({"model": state_dict}, TINY, weights="model")
    x = jax.random.uniform(jax.random.key(0), (2, 32, 32))
    tweedie = x + 0.25 * score(x[..., None], jnp.full((2,), 0.5))[..., 0]
    np.testing.assert_allclose(prior.denoise_fn(x, 0.5), tweedie, rtol=1e-5, atol=1e-6)


def test_cli_bad_input_exits_2_without_a_traceback(tmp_path, capsys):
    code = convert_cli.main(["--checkpoint", str(tmp_path / "none.pth"), "--model-config", TINY,
                             "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "none.pth" in err and "Traceback" not in err
    code = convert_cli.main(["--checkpoint", str(tmp_path / "none.pth"), "--model-config",
                             str(tmp_path / "nope.py"), "--out", str(tmp_path / "x")])
    assert code == 2 and "nope.py" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_torch_is_not_imported_by_the_library():
    code = ("import sys, iscs_jax, iscs_jax.models, iscs_jax.priors, iscs_jax.convert; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=pathlib.Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr


def test_model_config_errors():
    with pytest.raises(ConversionError, match="architecture='ncsnpp'"):
        score_sde.ncsnpp_config({"architecture": "unet", "model": {}})
    with pytest.raises(ConversionError, match="resblock_type"):
        score_sde.ncsnpp_config({"model": {"resblock_type": "ddpm"}})


def test_converted_orientation_can_be_overridden():
    cfg = tiny_config()
    intensity = {"kind": "hu_window", "hu_min": -1000.0, "hu_max": 1600.0}
    assert score_sde.prior_meta(cfg, intensity, "x", {}).orientation == "LPS"
    assert score_sde.prior_meta(cfg, intensity, "x", {}, orientation="las").orientation == "LAS"
    flags = {flag.name: flag for flag in convert_cli.PROGRAM.flags}
    assert flags["orientation"].default == score_sde.DEFAULT_ORIENTATION
