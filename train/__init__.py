"""Training of 2D diffusion priors (command line: ``python -m train``)."""
