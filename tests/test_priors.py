"""The prior file format: round trip, checksum, atomic writes, the first layout, dispatch."""

import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest

from iscs_jax import priors
from iscs_jax.denoiser import Denoiser
from iscs_jax.priors import format as prior_format


def _meta(**overrides):
    fields = dict(name="toy", architecture="unet", config={"base_width": 8},
                  parameterisation={"kind": "edm", "sigma_data": 0.5, "data_mean": 0.0},
                  resolution=16, channels=1,
                  intensity={"kind": "hu_window", "hu_min": -1000.0, "hu_max": 1600.0},
                  sigma_min=0.01, sigma_max=80.0, provenance={"note": "test"})
    return prior_format.PriorMeta(**{**fields, **overrides})


PARAMS = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)},
          "b": {"0": {"bias": np.ones(3, np.float32)}}}


def test_round_trip_and_no_temporary_files_left(tmp_path):
    stem = prior_format.write(str(tmp_path / "sub" / "toy"), _meta(), PARAMS)
    meta, params = prior_format.read(stem)
    assert meta == _meta()
    np.testing.assert_array_equal(params["a"]["kernel"], PARAMS["a"]["kernel"])
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["toy.json", "toy.msgpack"]
    doc = json.loads((tmp_path / "sub" / "toy.json").read_text())
    assert (doc["format"], doc["format_version"]) == ("iscs-jax-prior", 1)


def test_weights_from_another_write_are_detected(tmp_path):
    stem = prior_format.write(str(tmp_path / "one"), _meta(), PARAMS)
    other = prior_format.write(str(tmp_path / "two"), _meta(),
                               {"a": {"kernel": np.zeros((2, 3), np.float32)}})
    shutil.copy(other + ".msgpack", stem + ".msgpack")
    with pytest.raises(prior_format.PriorFormatError, match="checksum"):
        prior_format.read(stem)


def test_failed_write_leaves_the_previous_prior_intact(tmp_path):
    stem = prior_format.write(str(tmp_path / "toy"), _meta(), PARAMS)
    before = (tmp_path / "toy.json").read_bytes(), (tmp_path / "toy.msgpack").read_bytes()
    with pytest.raises(TypeError):
        prior_format.write(stem, _meta(), {"a": object()})
    after = (tmp_path / "toy.json").read_bytes(), (tmp_path / "toy.msgpack").read_bytes()
    assert before == after and len(list(tmp_path.iterdir())) == 2


@pytest.mark.parametrize("overrides,message", [
    (dict(architecture="vit"), "architecture 'vit'"),
    (dict(parameterisation={"kind": "edm"}), "needs 'sigma_data'"),
    (dict(intensity={"kind": "minmax"}), "intensity kind 'minmax'"),
    (dict(sigma_min=2.0, sigma_max=1.0), "sigma_min < sigma_max"),
])
def test_invalid_metadata_is_named(overrides, message):
    with pytest.raises(prior_format.PriorFormatError, match=message):
        _meta(**overrides)


def test_newer_format_version_asks_for_an_upgrade(tmp_path):
    stem = prior_format.write(str(tmp_path / "toy"), _meta(), PARAMS)
    doc = json.loads((tmp_path / "toy.json").read_text())
    (tmp_path / "toy.json").write_text(json.dumps({**doc, "format_version": 99}))
    with pytest.raises(prior_format.PriorFormatError, match="upgrade iscs-jax"):
        prior_format.read(stem)


@pytest.mark.parametrize("name", ["phantom64"])  # chest128 is now exported in format 1 directly
def test_shipped_priors_denoise_exactly_as_in_the_first_layout(tmp_path, name):
    """A shipped prior, rewritten in format 1, gives the same output as a copy in the first
    layout (U-Net keys at the top level) read through the legacy path: weights unchanged."""
    stem = priors.resolve(name)
    meta = prior_format.read_meta(stem)
    legacy = {"name": meta.name, "model": meta.config, "resolution": meta.resolution,
              "sigma_data": meta.parameterisation["sigma_data"],
              "data_mean": meta.parameterisation["data_mean"], "sigma_min": meta.sigma_min,
              "sigma_max": meta.sigma_max, **meta.provenance}
    (tmp_path / "old.json").write_text(json.dumps(legacy))
    shutil.copy(stem + ".msgpack", tmp_path / "old.msgpack")
    new, old = priors.load(name), priors.load(str(tmp_path / "old"))
    assert old.metadata["architecture"] == "unet" and meta.provenance["format_rewrite"]
    assert old.metadata["provenance"]["train_steps"] == meta.provenance["train_steps"]
    assert old.metadata["intensity"] == meta.intensity
    x = jax.random.uniform(jax.random.key(0), (2, meta.resolution, meta.resolution))
    for sigma in (0.05, 3.0):
        np.testing.assert_array_equal(jax.jit(new.denoise_fn)(x, sigma),
                                      jax.jit(old.denoise_fn)(x, sigma))


def test_parameterisation_must_fit_the_architecture(tmp_path):
    stem = priors.resolve("phantom64")
    meta, params = prior_format.read(stem)
    wrong = dataclasses.replace(meta, parameterisation={"kind": "ve_score"})
    prior_format.write(str(tmp_path / "wrong"), wrong, params)
    with pytest.raises(ValueError, match="must have parameterisation 'edm'"):
        priors.load(str(tmp_path / "wrong"))


def test_loaded_weights_are_program_inputs_not_constants():
    """Passed to jit as an argument, a prior's `Denoiser` keeps its weights out of the program
    (a closure over it compiles them in as constants); both give the same values."""
    prior = priors.load("phantom64")
    assert isinstance(prior.denoise_fn, Denoiser)
    x = jax.numpy.asarray(np.random.default_rng(0).random((2, 64, 64)), jax.numpy.float32)
    as_argument = jax.jit(lambda d, x: d(x, 0.5))
    closed_over = jax.jit(lambda x: prior.denoise_fn(x, 0.5))
    argument_text = as_argument.lower(prior.denoise_fn, x).as_text()
    closure_text = closed_over.lower(x).as_text()
    assert len(argument_text) * 5 < len(closure_text)
    np.testing.assert_allclose(as_argument(prior.denoise_fn, x), closed_over(x), atol=1e-5)


def test_a_plain_denoise_fn_wraps_into_an_equal_denoiser():
    """The same plain function gives equal pytree structures (jit reuses its compilation)."""

    def fn(x, sigma):
        return x / (1.0 + sigma**2)

    first, second = Denoiser.of(fn), Denoiser.of(fn)
    assert jax.tree.structure(first) == jax.tree.structure(second)
    assert Denoiser.of(first) is first
    np.testing.assert_allclose(first(np.ones((1, 4, 4), np.float32), 1.0), 0.5)


def test_orientation_field_round_trips_and_defaults_for_older_files(tmp_path):
    stem = prior_format.write(str(tmp_path / "toy"), _meta(orientation="las"), PARAMS)
    assert prior_format.read_meta(stem).orientation == "LAS"
    doc = json.loads((tmp_path / "toy.json").read_text())
    assert doc["orientation"] == "LAS"
    del doc["orientation"]  # a file written before the field existed
    (tmp_path / "toy.json").write_text(json.dumps(doc))
    assert prior_format.read_meta(stem).orientation == prior_format.DEFAULT_ORIENTATION
    with pytest.raises(prior_format.PriorFormatError, match="orientation.*L/R, A/P, S/I"):
        _meta(orientation="LRS")


def test_shipped_priors_record_their_training_data_orientation():
    """chest128: the chest CT (its embedded slab keeps its orientation); mri128: the MNI
    template (its slab likewise); phantom64: the phantom's documented convention."""
    from iscs_jax.data import embedded, packaged

    found = {name: prior_format.read_meta(priors.resolve(name)).orientation
             for name in ("chest128", "mri128", "phantom64")}
    slab = {name: prior_format.training_orientation(path=packaged.resolve(embedded.FILES[key]))
            for name, key in (("chest128", "chest_ct"), ("mri128", "mri"))}
    assert found == {**slab, "phantom64": prior_format.PHANTOM_ORIENTATION}
    assert found == {"chest128": "LAS", "mri128": "RAS", "phantom64": "LPI"}
    assert prior_format.training_orientation("ras", "ignored.nii") == "RAS"
    with pytest.raises(ValueError, match="data.orientation"):
        prior_format.training_orientation(None, "scans/")
