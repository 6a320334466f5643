r"""Two measures of "these points are draws of that law", shared by chapters 5-7, the exercises
and the tests (d2l's rule: the book computes its numbers with the library it teaches).

* :func:`ks_per_coordinate`: a one-sample Kolmogorov-Smirnov test of each coordinate against an
  exact :class:`~ddpm_lib.toy.GaussianMixture` (a coordinate of an isotropic mixture is a 1-D
  mixture with the same weights).
* :func:`energy_distance`: the two-sample energy distance of Székely & Rizzo, zero exactly when
  the two laws agree.

The KS test computes in float64 on the CPU, the energy distance in the samples' dtype. Re-exported by :mod:`ddpm_lib.toy`.
"""

from __future__ import annotations

import torch

from .mixture import GaussianMixture


def ks_per_coordinate(samples: torch.Tensor, law: GaussianMixture) -> list[float]:
    r"""Kolmogorov-Smirnov p-values of each coordinate of ``samples`` ``[n, D]`` against the exact
    marginal of ``law`` there (a ``D``-dimensional :class:`GaussianMixture`): the statistic is
    :math:`\sup_x |F_n(x) - F_j(x)|` with the empirical cdf :math:`F_n` of column ``j`` and the
    marginal :math:`F_j(x) = \sum_k \pi_k \Phi\big((x - \mu_{kj}) / s_k\big)`
    (:meth:`GaussianMixture.cdf`), its p-value from ``scipy.stats.kstest``. Returns ``D`` floats.

    The cdf is passed as a callable, the form that works on scipy 1.17 and 1.18 alike (1.18
    refuses ``kstest(x, "norm", args=...)``)."""
    from scipy import stats  # imported here: ``import ddpm_lib.toy`` stays light

    if not isinstance(law, GaussianMixture):
        raise TypeError(f"law must be a toy.GaussianMixture, got {type(law).__name__}")
    if not isinstance(samples, torch.Tensor) or not samples.dtype.is_floating_point:
        raise TypeError(f"samples must be a floating-point torch.Tensor, got {samples!r:.80}")
    if samples.dim() != 2 or samples.shape[1] != law.D or samples.shape[0] < 1:
        raise ValueError(f"samples must have shape [n, {law.D}], n >= 1, got {list(samples.shape)}")
    x = samples.detach().double().cpu()
    out = []
    for j in range(law.D):
        marginal = GaussianMixture(law.weights, law.means[:, j : j + 1], law.stds)

        def cdf(v, m=marginal):
            return m.cdf(torch.as_tensor(v, dtype=torch.float64)[:, None]).numpy()

        out.append(float(stats.kstest(x[:, j].numpy(), cdf).pvalue))
    return out


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    r"""The energy distance between the samples ``x`` ``[n, D]`` and ``y`` ``[m, D]`` (Székely &
    Rizzo 2013, "Energy statistics", as a V-statistic: every pair, each point's distance to
    itself included):

    .. math:: \mathcal E(x, y) = \frac{2}{nm}\sum_{i,j}\|x_i - y_j\|
        - \frac{1}{n^2}\sum_{i,i'}\|x_i - x_{i'}\| - \frac{1}{m^2}\sum_{j,j'}\|y_j - y_{j'}\|

    :math:`\ge 0`, and its population value is 0 only when the two laws agree; two samples of one
    law give a small positive value (the floor to compare a sampler with). Computed in the
    samples' dtype; returns a float."""
    for name, v in (("x", x), ("y", y)):
        if not isinstance(v, torch.Tensor) or not v.dtype.is_floating_point:
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got {v!r:.80}")
        if v.dim() != 2 or v.shape[0] < 1:
            raise ValueError(f"{name} must have shape [n, D], n >= 1, got {list(v.shape)}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same D, got {x.shape[1]} and {y.shape[1]}")
    return float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())
