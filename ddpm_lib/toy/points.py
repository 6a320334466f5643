r"""Data on a few points (chapter 3): the posterior over the points, Bayes' rule on a grid,
and a Monte Carlo regression of the reverse step. Float64 on the CPU."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from .._validate import check_int, check_t
from .mixture import GaussianMixture

if TYPE_CHECKING:
    from ..diffusion import Diffusion

_LOG_2PI = math.log(2.0 * math.pi)


# ------------------------------------------------------------------ data on a few points (ch. 3)
class GridPosterior(NamedTuple):
    """A density tabulated on a grid: ``grid`` and ``density`` float64 ``[n]`` (it integrates to
    1), and its ``mean`` and ``variance`` (Simpson's rule)."""

    grid: np.ndarray
    density: np.ndarray
    mean: float
    variance: float


class Regression(NamedTuple):
    r"""Least-squares fit :math:`x_{t-1} \approx \text{slope}\cdot x_t + \text{intercept}` on simulated
    pairs (float64 ``[n]`` each), with standard errors and the residual variance."""

    x_t: torch.Tensor
    x_prev: torch.Tensor
    slope: float
    intercept: float
    residual_variance: float
    slope_se: float
    intercept_se: float
    residual_variance_se: float


def _step(d: Diffusion, t: int, lo: int) -> int:
    return int(check_t(t, lo, d.T))


def _points(x0_values: Sequence[float], x0_probs: Sequence[float] | None):
    values = np.atleast_1d(np.asarray(x0_values, dtype=np.float64))
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"x0_values must be a non-empty list of finite numbers, got {x0_values}")
    if x0_probs is None:
        return values, np.full(values.size, 1.0 / values.size)
    probs = np.asarray(x0_probs, dtype=np.float64)
    if probs.shape != values.shape or np.any(probs <= 0) or abs(probs.sum() - 1) > 1e-9:
        raise ValueError(
            f"x0_probs must hold {values.size} positive probabilities summing to 1, got {x0_probs}"
        )
    return values, probs


def data_posterior(
    d: Diffusion,
    x_t: float,
    t: int,
    x0_values: Sequence[float],
    x0_probs: Sequence[float] | None = None,
) -> np.ndarray:
    r"""For data that takes the values :math:`v_k` with probabilities :math:`p_k`, the probability of
    each value given the noisy :math:`x_t`, by Bayes with Ho et al. 2020, Eq. 4:

    .. math:: q(x_0 = v_k \mid x_t) = \frac{p_k\,\mathcal N(x_t; \sqrt{\bar\alpha_t} v_k,
        1-\bar\alpha_t)}{\sum_j p_j\,\mathcal N(x_t; \sqrt{\bar\alpha_t} v_j, 1-\bar\alpha_t)}

    ``t`` in ``[1, T]``; returns float64 ``[K]`` summing to 1 (uniform ``p`` if ``x0_probs`` is None).
    """
    t = _step(d, t, 1)
    values, probs = _points(x0_values, x0_probs)
    ab = float(d.alpha_bars[t])
    # q(x_t) for point data is the mixture of the noised points; its responsibilities are the answer.
    q_t = GaussianMixture(
        probs, math.sqrt(ab) * values[:, None], np.full(values.size, math.sqrt(1 - ab))
    )
    joint = q_t.joint_log_prob(torch.tensor([[float(x_t)]], dtype=torch.float64))[0]
    return torch.softmax(joint, dim=0).numpy()


def bayes_on_grid(
    d: Diffusion,
    x_t: float,
    t: int,
    x0_values: Sequence[float],
    x0_probs: Sequence[float] | None = None,
    n: int = 20_001,
) -> GridPosterior:
    r"""Bayes' rule for one reverse step, by brute force on a 1-D grid (no posterior formula used):

    .. math:: q(x_{t-1}\mid x_t) = \frac{q(x_t\mid x_{t-1})\,q(x_{t-1})}{\int q(x_t\mid x')\,q(x')
        \,dx'},\qquad q(x_{t-1}) = \sum_k p_k\,\mathcal N\big(x_{t-1};\sqrt{\bar\alpha_{t-1}}\,v_k,
        1-\bar\alpha_{t-1}\big)

    with :math:`q(x_t\mid x_{t-1}) = \mathcal N(x_t; \sqrt{\alpha_t}x_{t-1}, \beta_t)` (Ho et al.
    2020, Eqs. 2 and 4). With one value :math:`v_1 = x_0` this is :math:`q(x_{t-1}\mid x_t, x_0)`.

    A coarse pass over every plausible region finds where the posterior lives; the fine grid of
    ``n`` points spans that region only. Args: ``x_t`` a number; ``t`` in ``[2, T]`` (at ``t = 1``
    the single-point posterior is a point mass, which no grid resolves); ``n`` odd, ``>= 101``."""
    from scipy import integrate, special, stats

    t = _step(d, t, 2)
    if isinstance(n, bool) or not isinstance(n, int) or n < 101 or n % 2 == 0:
        raise ValueError(f"n must be an odd integer >= 101, got {n}")
    values, probs = _points(x0_values, x0_probs)
    alpha, beta, ab_prev = float(d.alphas[t]), float(d.betas[t]), float(d.alpha_bars[t - 1])
    prior_sd = math.sqrt(1 - ab_prev)

    def log_post(x: np.ndarray) -> np.ndarray:
        comps = stats.norm.logpdf(x[:, None], math.sqrt(ab_prev) * values[None, :], prior_sd)
        log_prior = special.logsumexp(comps + np.log(probs)[None, :], axis=1)
        return log_prior + stats.norm.logpdf(x_t, math.sqrt(alpha) * x, math.sqrt(beta))

    centres = [x_t / math.sqrt(alpha), *(math.sqrt(ab_prev) * values)]
    widths = (math.sqrt(beta / alpha), prior_sd)
    lo, hi = min(centres) - 12 * max(widths), max(centres) + 12 * max(widths)
    n_coarse = int(min(max((hi - lo) / (min(widths) / 8), 2_001), 2_000_001))
    coarse = np.linspace(lo, hi, n_coarse)
    lp = log_post(coarse)
    inside = np.nonzero(lp > lp.max() - 60.0)[0]  # e^-60: nothing outside contributes
    step = coarse[1] - coarse[0]
    grid = np.linspace(coarse[inside[0]] - 2 * step, coarse[inside[-1]] + 2 * step, n)
    lp = log_post(grid)
    unnorm = np.exp(lp - lp.max())  # the shift avoids underflow; normalised next
    density = unnorm / integrate.simpson(unnorm, x=grid)
    mean = float(integrate.simpson(grid * density, x=grid))
    variance = float(integrate.simpson((grid - mean) ** 2 * density, x=grid))
    return GridPosterior(grid, density, mean, variance)


def regress_posterior(
    d: Diffusion, x0: float, t: int, n: int, generator: torch.Generator | None = None
) -> Regression:
    r"""Monte Carlo: draw ``n`` pairs :math:`x_{t-1}\sim q(x_{t-1}\mid x_0)` (Ho et al. 2020, Eq. 4),
    then :math:`x_t \sim q(x_t\mid x_{t-1})` (Eq. 2), and fit :math:`x_{t-1}` on :math:`[x_t, 1]` by
    least squares. Given :math:`x_0` the pair is jointly Gaussian, so the fit recovers the posterior
    mean's coefficients (slope :math:`\approx` the :math:`x_t` one, intercept :math:`\approx` the
    :math:`x_0` one times :math:`x_0`) and the residual variance :math:`\approx\tilde\beta_t`.
    ``t`` in ``[2, T]``, ``n >= 10``."""
    t = _step(d, t, 2)
    check_int("n", n, 10)
    x0s = torch.full((n, 1), float(x0), dtype=torch.float64)
    x_prev = d.q_sample(x0s, t - 1, generator=generator)
    x_t = d.q_step(x_prev, t, generator=generator)
    design = torch.cat([x_t, torch.ones_like(x_t)], dim=1)
    coef = torch.linalg.lstsq(design, x_prev).solution[:, 0]
    resid = x_prev[:, 0] - design @ coef
    s2 = float(resid.pow(2).sum()) / (n - 2)
    cov = s2 * torch.linalg.inv(design.T @ design)  # the textbook OLS covariance
    return Regression(x_t[:, 0], x_prev[:, 0], float(coef[0]), float(coef[1]), s2,
                      float(cov[0, 0].sqrt()), float(cov[1, 1].sqrt()), s2 * math.sqrt(2 / n))  # fmt: skip
