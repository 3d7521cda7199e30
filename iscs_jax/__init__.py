"""iscs-jax: 3D reconstruction with 2D diffusion priors and Inter-Slice Consistent Stochasticity."""

__version__ = "0.1.0"
