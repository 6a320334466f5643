r"""Toy data whose diffusion is solvable exactly: the references the book checks the library against.

* :class:`GaussianMixture` -- :math:`q(x_0) = \sum_k \pi_k\,\mathcal N(x_0;\ \mu_k, s_k^2 I)` in any
  dimension ``D``. The diffusion kernel :math:`q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0,
  (1-\bar\alpha_t) I)` (Ho et al. 2020, Eq. 4) is a Gaussian convolution, so the marginal
  :math:`q(x_t)` is again a mixture (:meth:`GaussianMixture.noised`) with a density, a score and
  samples in closed form; so are :math:`\mathbb E[x_0 \mid x_t]`, the class posterior and the
  optimal ε-model (chapter 5). Defined in :mod:`ddpm_lib.toy_mixture`, re-exported here, with
  :func:`two_d_mixture` (chapter 5's data in the plane) and, from :mod:`ddpm_lib.toy_score`,
  :func:`tweedie_x0` (Tweedie's denoiser from any score) and :func:`score_error` (a network's
  score against the exact one).
* 1-D Gaussian data :math:`\mathcal N(m, s^2)` (chapter 4): the true reverse kernels
  (:func:`gaussian_reverse_kernels`) and the optimal ε-model (:class:`GaussianOptimalEps`), with
  which the variational bound is tight.
* Data on a few points (chapter 3): :func:`data_posterior`, :math:`q(x_0 = v_k \mid x_t)`;
  :func:`bayes_on_grid`, the reverse step :math:`q(x_{t-1} \mid x_t)` by Bayes' rule on a 1-D grid
  with no posterior formula; :func:`regress_posterior`, a Monte Carlo estimate of
  :math:`q(x_{t-1} \mid x_t, x_0)`.

Everything is computed in float64 on the CPU. Shapes: points ``[n, D]``, densities ``[n]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from ._validate import check_t
from .toy_mixture import (
    GaussianMixture,
    MixtureClassifier,
    MixtureEps,
    three_bumps,
    two_d_mixture,
)
from .toy_score import ScoreError, score_error, tweedie_x0

if TYPE_CHECKING:
    from .diffusion import Diffusion

__all__ = [
    "GaussianMixture",
    "MixtureEps",
    "MixtureClassifier",
    "three_bumps",
    "two_d_mixture",
    "ScoreError",
    "score_error",
    "tweedie_x0",
    "GridPosterior",
    "Regression",
    "data_posterior",
    "bayes_on_grid",
    "regress_posterior",
    "ReverseKernels",
    "gaussian_reverse_kernels",
    "GaussianOptimalEps",
    "gaussian_nll",
]

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
    joint = q_t._joint_log_prob(torch.tensor([[float(x_t)]], dtype=torch.float64))[0]
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
    the single-point posterior is a point mass, which no grid resolves); ``n`` odd, ``>= 101``.
    """
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
    if isinstance(n, bool) or not isinstance(n, int) or n < 10:
        raise ValueError(f"n must be an integer >= 10, got {n}")
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


# ------------------------------------------------ 1-D Gaussian data: the bound made exact (ch. 4)
class ReverseKernels(NamedTuple):
    r"""The true reverse kernels :math:`q(x_{t-1}\mid x_t) = \mathcal N(a_t x_t + b_t, v_t)` of
    1-D Gaussian data, float64 ``[T + 1]`` each (index 0 NaN), and the marginals
    :math:`q(x_t) = \mathcal N(\mu_t, V_t)` (``means``, ``variances``, ``[T + 1]``, index 0 the
    data's :math:`m, s^2`)."""

    a: torch.Tensor
    b: torch.Tensor
    v: torch.Tensor
    means: torch.Tensor
    variances: torch.Tensor


def _gaussian_args(m: float, s: float) -> tuple[float, float]:
    for name, v in (("m", m), ("s", s)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    if not s > 0:
        raise ValueError(f"s must be > 0 (the data's standard deviation), got {s!r}")
    return float(m), float(s)


def gaussian_reverse_kernels(d: Diffusion, m: float, s: float) -> ReverseKernels:
    r"""For data :math:`x_0 \sim \mathcal N(m, s^2)` in 1-D the forward chain is jointly Gaussian:
    :math:`q(x_t) = \mathcal N(\mu_t, V_t)` with :math:`\mu_t = \sqrt{\bar\alpha_t}\,m`,
    :math:`V_t = \bar\alpha_t s^2 + 1 - \bar\alpha_t` (Ho et al. 2020, Eq. 4), and
    :math:`\mathrm{Cov}(x_{t-1}, x_t) = \sqrt{\alpha_t}\,V_{t-1}` (Eq. 2). Conditioning the pair
    :math:`(x_{t-1}, x_t)` on :math:`x_t` gives the reverse kernel with **no** :math:`x_0`:

    .. math:: q(x_{t-1}\mid x_t) = \mathcal N(a_t x_t + b_t,\ v_t),\quad
        a_t = \frac{\sqrt{\alpha_t}\,V_{t-1}}{V_t},\quad b_t = \mu_{t-1} - a_t\mu_t
        = \frac{\beta_t\,\mu_{t-1}}{V_t},\quad v_t = \frac{\beta_t\,V_{t-1}}{V_t}

    for ``t = 1..T`` (at ``t = 1``: :math:`q(x_0\mid x_1)`, the ideal decoder). Returns
    :class:`ReverseKernels`; ``v`` is a reverse variance that
    :func:`ddpm_lib.objectives.vlb_terms` takes as ``variance=``.
    """
    m, s = _gaussian_args(m, s)
    ab = d.alpha_bars.detach().cpu().double()
    betas, alphas = d.betas.detach().cpu().double(), d.alphas.detach().cpu().double()
    means, variances = ab.sqrt() * m, ab * s**2 + 1 - ab
    nan = torch.tensor([math.nan], dtype=torch.float64)
    a = torch.cat([nan, alphas[1:].sqrt() * variances[:-1] / variances[1:]])
    b = torch.cat([nan, betas[1:] * means[:-1] / variances[1:]])
    v = torch.cat([nan, betas[1:] * variances[:-1] / variances[1:]])
    return ReverseKernels(a, b, v, means, variances)


class GaussianOptimalEps:
    r"""The best possible ε-model for data :math:`\mathcal N(m, s^2)` in 1-D: the minimiser of
    :math:`L_\text{simple}` at every ``t``, the posterior mean of the merged noise

    .. math:: \epsilon^*(x_t, t) = \mathbb E[\bar\epsilon_t\mid x_t]
        = \frac{\sqrt{1-\bar\alpha_t}\,(x_t - \mu_t)}{V_t}

    (:math:`\bar\epsilon_t` and :math:`x_t` are jointly Gaussian with covariance
    :math:`\sqrt{1-\bar\alpha_t}`). Its :math:`\mu_\theta` (Ho et al. 2020, Eq. 11) is exactly the
    true kernel's mean :math:`a_t x_t + b_t` of :func:`gaussian_reverse_kernels`, so with
    :math:`\sigma_t^2 = v_t` the reverse model is the true reverse process.

    Call it like an :data:`~ddpm_lib.diffusion.EpsModel`: ``model(x_t [B, 1], t)`` with ``t`` an
    int or a LongTensor ``[]``/``[B]`` in ``[1, T]``; returns ``[B, 1]`` in ``x_t``'s dtype.
    Attribute ``kernels``: the :class:`ReverseKernels`.
    """

    def __init__(self, d: Diffusion, m: float, s: float):
        self.diffusion = d
        self.kernels = gaussian_reverse_kernels(d, m, s)

    def __call__(self, x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        if not isinstance(x_t, torch.Tensor) or not x_t.dtype.is_floating_point:
            raise TypeError(f"x_t must be a floating-point torch.Tensor, got {type(x_t).__name__}")
        if x_t.dim() != 2 or x_t.shape[1] != 1:
            raise ValueError(f"x_t must have shape [B, 1], got {list(x_t.shape)}")
        t = check_t(t, 1, self.diffusion.T)
        idx = t if isinstance(t, int) else t.cpu()
        one_minus_ab = 1 - self.diffusion.alpha_bars.detach().cpu().double()[idx]
        mean, var = self.kernels.means[idx], self.kernels.variances[idx]
        coef = one_minus_ab.sqrt() / var
        coef, mean = (c.reshape(-1, 1).to(x_t) for c in (coef, mean))
        return coef * (x_t - mean)


def gaussian_nll(x0: torch.Tensor, m: float, s: float) -> torch.Tensor:
    r""":math:`-\log\mathcal N(x_0;\ m, s^2)` elementwise, in **nats** (divide by :math:`\ln 2`
    for bits), float64 of ``x0``'s shape: what the bound of the exact reverse model equals."""
    m, s = _gaussian_args(m, s)
    if not isinstance(x0, torch.Tensor):
        raise TypeError(f"x0 must be a torch.Tensor, got {type(x0).__name__}")
    x = x0.detach().double()
    return 0.5 * (_LOG_2PI + 2 * math.log(s) + (x - m) ** 2 / s**2)
