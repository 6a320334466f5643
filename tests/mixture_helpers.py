"""What the chapter-5 tests share: a two-sample check of samples against a Gaussian mixture."""

from __future__ import annotations

import torch
from scipy import stats

from ddpm_lib import toy


def ks_per_coordinate(g: toy.GaussianMixture, samples: torch.Tensor) -> list[float]:
    """One-sample Kolmogorov-Smirnov p-values of each coordinate of ``samples`` ``[n, D]`` against
    the exact marginal cdf of ``g`` (an isotropic mixture's coordinate is a 1-D mixture)."""
    out = []
    for j in range(g.D):
        marginal = toy.GaussianMixture(g.weights, g.means[:, j : j + 1], g.stds)

        def cdf(v, m=marginal):
            return m.cdf(torch.as_tensor(v, dtype=torch.float64)[:, None]).numpy()

        out.append(float(stats.kstest(samples[:, j].numpy(), cdf).pvalue))
    return out
