r"""1-D Gaussian data (chapter 4): the true reverse kernels and the optimal ε-model, with which
the variational bound is tight. Float64 on the CPU."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import torch

from .._validate import check_number, check_t

if TYPE_CHECKING:
    from ..diffusion import Diffusion

_LOG_2PI = math.log(2.0 * math.pi)


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
        check_number(name, v)
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
    :func:`ddpm_lib.bound.vlb_terms` takes as ``variance=``."""
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
    Attribute ``kernels``: the :class:`ReverseKernels`."""

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
