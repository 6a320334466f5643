r"""Continuous time (chapter 6): the DDPM forward chain as the variance-preserving SDE of Song et
al. (2021), on the library's own ε-networks.

* :mod:`ddpm_lib.sde.vpsde` -- the one continuous :math:`\bar\alpha(\tau)`
  (:class:`ContinuousSchedule`), :class:`VPSDE` (drift, diffusion, marginals, score, the reverse and
  probability-flow drifts).
* :mod:`ddpm_lib.sde.flow` -- the probability-flow ODE solved by ``scipy.integrate.solve_ivp``
  (:func:`solve_flow`), encoding data to :math:`\mathbf x(1)` (:func:`encode`) and the exact
  log-likelihood by the instantaneous change of variables (:func:`log_likelihood`).

The samplers are :func:`ddpm_lib.sample.reverse_sde` and :func:`ddpm_lib.sample.probability_flow`.
"""

from .flow import Flow, LogLikelihood, encode, log_likelihood, solve_flow
from .vpsde import VPSDE, ContinuousSchedule, Marginal

__all__ = [
    "VPSDE",
    "ContinuousSchedule",
    "Marginal",
    "Flow",
    "LogLikelihood",
    "encode",
    "log_likelihood",
    "solve_flow",
]
