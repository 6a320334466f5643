r"""The variational bound of Ho et al. (2020) and the losses built on it (chapter 4).

* :mod:`ddpm_lib.bound.vlb` -- :math:`L_\text{simple}` (Algorithm 1, Eq. 14), the bound's terms
  :math:`L_T`, :math:`L_{t-1}`, :math:`L_0` (Eq. 5) per example, the reverse variances
  :math:`\sigma_t^2` and the prior term in bits/dim.
* :mod:`ddpm_lib.bound.estimators` -- measuring the bound: the ε-weights :math:`\lambda_t`, an
  unbiased bits/dim estimator with a confidence interval, the bound by direct Monte Carlo and the
  simple loss per t-bucket.

The Gaussian KL and the discretised decoder the terms use are in :mod:`ddpm_lib.losses`."""

from .estimators import (
    STRATA,
    EpsWeights,
    TBucketLoss,
    VLBEstimate,
    eps_weights,
    loss_by_t_bucket,
    vlb_direct,
    vlb_estimate,
    vlb_estimates,
)
from .vlb import DECODERS, VLBTerms, loss_simple, prior_bpd, reverse_variances, vlb_terms

__all__ = [
    "DECODERS",
    "VLBTerms",
    "loss_simple",
    "reverse_variances",
    "vlb_terms",
    "prior_bpd",
    "EpsWeights",
    "STRATA",
    "VLBEstimate",
    "TBucketLoss",
    "eps_weights",
    "vlb_estimate",
    "vlb_estimates",
    "vlb_direct",
    "loss_by_t_bucket",
]
