r"""Samplers for a trained ε-model: ancestral sampling (Algorithm 2) and DDIM, both with
classifier-free guidance, on data of any shape; and Langevin dynamics for a score function.

Both take ``model(x_t, t[, labels]) -> eps`` (a :class:`ddpm_lib.models.UNet` or any callable with
that signature), a :class:`ddpm_lib.Diffusion` and a number of samples ``n``, and return samples
``[n, *shape]``. ``shape`` is the shape of one sample: ``x_T.shape[1:]`` when a starting noise ``x_T``
is given, else the ``shape`` argument, by default ``(1, 28, 28)`` (an MNIST image); ``(1,)`` and
``(2,)`` are the 1-D and 2-D toy data of part II. Every random draw comes from ``generator`` when
one is given.

Two flags clamp to the data range [-1, 1], with the same meaning in both samplers:
``clip_samples`` clamps the samples returned (on by default in both), ``clip_x0`` clamps the
prediction :math:`\hat x_0` inside every step (off by default in :func:`ancestral`, on in
:func:`ddim`; each docstring says why).
"""

from .base import (
    IMAGE_SHAPE,
    THRESHOLDS,
    classifier_gradient,
    ddim_timesteps,
    guided_eps,
    threshold_x0,
)
from .continuous import ODESample, probability_flow, reverse_sde
from .discrete import Trajectory, ancestral, ddim, langevin
from .inpaint import inpaint

__all__ = [
    "ancestral",
    "ddim",
    "langevin",
    "reverse_sde",
    "probability_flow",
    "ODESample",
    "inpaint",
    "guided_eps",
    "classifier_gradient",
    "threshold_x0",
    "THRESHOLDS",
    "ddim_timesteps",
    "Trajectory",
    "IMAGE_SHAPE",
]
