"""Network configs (``get_config(arg=None)``) for converted priors, e.g. ``ncsnpp_256.py``."""
