"""Reconstruction CLI: ``python -m sample --config ct.py`` (see `sample.run.run`).

The same files are the package ``sample`` in a checkout and ``iscs_jax.sample`` once
installed; ``configs`` is the configs package beside it (``configs``, ``iscs_jax.configs``),
where the CLI finds the shipped configs.
"""

import importlib

from iscs_jax.cli import sibling

configs = importlib.import_module(sibling(__name__, "configs"))
