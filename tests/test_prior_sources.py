"""`iscs_jax.priors.sources`: a prior from any source, errors naming the argument."""

import types

import pytest

from iscs_jax.priors import sources


def test_gaussian_source_needs_no_weights_and_equal_settings_give_equal_denoisers():
    prior = sources.load_source("gaussian", gaussian_mean=0.5, gaussian_std=0.2, resolution=16)
    again = sources.load_source("gaussian", gaussian_mean=0.5, gaussian_std=0.2, resolution=16)
    assert prior.denoise_fn == again.denoise_fn and sources.slice_size(prior) == 16
    assert sources.source_files("gaussian") == [] and sources.orientation_codes(prior) is None
    with pytest.raises(ValueError, match="gaussian_std="):
        sources.load_source("gaussian", gaussian_std=0.0)


@pytest.mark.parametrize("arguments, words", [
    (dict(source="gaussian", kind="bogus"), ["kind='bogus'", "'score_sde'"]),
    (dict(source="gaussian", dtype="float16"), ["dtype='float16'", "bfloat16"]),
    (dict(source="model.pth"), ["path='model.pth'", "kind=score_sde"]),
    (dict(source="phantom64", kind="score_sde"), ["'ve_score' prior", "'edm'", "kind=auto"]),
    (dict(source="no/such/prior"), ["Could not load the prior 'no/such/prior'"]),
])
def test_bad_sources_name_the_argument(arguments, words):
    with pytest.raises(ValueError) as err:
        sources.load_source(**arguments)
    assert all(word in str(err.value) for word in words), str(err.value)


def test_orientation_codes_override_the_priors_own_and_are_checked():
    las = types.SimpleNamespace(metadata={"orientation": "LAS"})
    assert sources.orientation_codes(las) == ("L", "A", "S")
    assert sources.orientation_codes(las, "rpi") == ("R", "P", "I")
    with pytest.raises(ValueError, match="orientation='LAX'"):
        sources.orientation_codes(las, "LAX")
    with pytest.raises(ValueError, match="not square"):
        sources.slice_size(types.SimpleNamespace(resolution=(8, 16)))
