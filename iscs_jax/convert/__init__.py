"""Convert published PyTorch priors into iscs-jax priors.

``from_score_sde(checkpoint, model_config) -> (score, params)`` and
``to_prior(checkpoint, model_config, out)`` for score_sde NCSN++ checkpoints;
``python -m iscs_jax.convert`` is the command line; `iscs_jax.convert.layout`
maps torch tensor names to our parameters. PyTorch (the optional ``convert``
extra) is imported only when a ``.pth`` file is read.
"""

from iscs_jax.convert.score_sde import (ConversionError, from_score_sde, load_model_config,
                                        ncsnpp_config, to_prior)

__all__ = ["ConversionError", "from_score_sde", "load_model_config", "ncsnpp_config", "to_prior"]
