"""Reconstruction CLI: ``python -m sample --config ct.py`` (see `sample.run.run`)."""
