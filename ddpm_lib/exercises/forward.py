r"""Self-checks for chapter 1, the forward Markov chain.

* :func:`check_q_step` -- one step :math:`x_t = \sqrt{1-\beta_t}\,x_{t-1} + \sqrt{\beta_t}\,\epsilon`
  (Ho et al. 2020, Eq. 2), against :meth:`ddpm_lib.Diffusion.q_step`;
* :func:`check_variance_trajectory` -- :math:`\mathrm{Var}\,x_t` for ``t = 0..T`` from
  :math:`\mathrm{Var}\,x_0`, against :meth:`ddpm_lib.Diffusion.variance_trajectory`;
* :func:`check_marginal_pdf` -- the density of :math:`x_t` for a 1-D Gaussian-mixture
  :math:`q(x_0)`, against :meth:`ddpm_lib.toy.GaussianMixture.noised`.

Each returns a :class:`~ddpm_lib.exercises.CheckResult` and never raises for a wrong answer.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import schedule
from ..diffusion import Diffusion
from ..toy import GaussianMixture
from ._check import Case, CheckResult, run_check

__all__ = ["check_q_step", "check_variance_trajectory", "check_marginal_pdf"]


def _random_betas(T: int, gen: torch.Generator) -> torch.Tensor:
    """A deliberately uneven schedule: neighbouring betas differ a lot, so an off-by-one shows."""
    betas = torch.zeros(T + 1, dtype=torch.float64)
    betas[1:] = 0.05 + 0.55 * torch.rand(T, generator=gen, dtype=torch.float64)
    return betas


def check_q_step(fn: Callable[..., torch.Tensor]) -> CheckResult:
    r"""Check ``fn(x_prev, t, noise, betas) -> x_t``, one step of the forward chain:
    :math:`x_t = \sqrt{1-\beta_t}\,x_{t-1} + \sqrt{\beta_t}\,\epsilon` with ``betas[t]`` =
    :math:`\beta_t` (``betas`` float64 ``[T + 1]``, ``betas[0] = 0``), ``t`` an int in ``[1, T]``,
    ``x_prev`` and ``noise`` of one shape ``[B, ...]``."""
    gen = torch.Generator().manual_seed(101)
    schedules = {
        "an uneven random schedule (T = 6)": _random_betas(6, gen),
        "the linear schedule (T = 1000)": schedule.linear_betas(1000),
        "the cosine schedule (T = 50)": schedule.cosine_betas(50),
    }
    cases = []
    for name, betas in schedules.items():
        T = betas.shape[0] - 1
        for t, shape in ((1, (4, 1, 5, 5)), (T // 2 + 1, (3, 7)), (T, (6,))):
            x_prev = torch.randn(shape, generator=gen)
            noise = torch.randn(shape, generator=gen)
            cases.append(
                Case((x_prev, t, noise, betas), f"t = {t} of {name}, x shape {list(shape)}")
            )

    def reference(x_prev, t, noise, betas):
        return Diffusion(betas).q_step(x_prev, t, noise=noise)

    hint = (
        "x_t = sqrt(1 - betas[t]) * x_prev + sqrt(betas[t]) * noise. Both coefficients are square "
        "roots, the data is scaled by sqrt(1 - beta_t) (not by alpha-bar), use the given noise, and "
        "index the schedule with t itself (betas[0] = 0 is the clean data)."
    )
    return run_check("q_step", fn, reference, cases, hint)


def check_variance_trajectory(fn: Callable[[float, torch.Tensor], torch.Tensor]) -> CheckResult:
    r"""Check ``fn(var0, betas) -> variances``: float64 ``[T + 1]`` with ``variances[0] = var0``
    and ``variances[t]`` :math:`= \mathrm{Var}\,x_t = (1-\beta_t)\,\mathrm{Var}\,x_{t-1} + \beta_t`
    (``var0`` a float >= 0, ``betas`` float64 ``[T + 1]``)."""
    gen = torch.Generator().manual_seed(202)
    schedules = {
        "an uneven random schedule (T = 8)": _random_betas(8, gen),
        "the linear schedule (T = 1000)": schedule.linear_betas(1000),
        "the cosine schedule (T = 100)": schedule.cosine_betas(100),
    }
    cases = [
        Case((var0, betas), f"var0 = {var0} with {name}")
        for name, betas in schedules.items()
        for var0 in (0.0, 0.3, 1.0, 4.0)
    ]

    def reference(var0, betas):
        return Diffusion(betas).variance_trajectory(var0)

    hint = (
        "return T + 1 values with index 0 = var0 (the clean data). One step multiplies the variance "
        "by (1 - beta_t) -- the square of the coefficient sqrt(1 - beta_t) -- and adds beta_t, the "
        "variance of the fresh noise."
    )
    return run_check("variance_trajectory", fn, reference, cases, hint)


def check_marginal_pdf(fn: Callable[..., torch.Tensor]) -> CheckResult:
    r"""Check ``fn(x, alpha_bar_t, weights, means, stds) -> density``: the density of :math:`x_t`
    at every entry of ``x`` (float64 ``[N]``) when :math:`x_0 \sim \sum_k \pi_k\,\mathcal N(\mu_k,
    s_k^2)` and :math:`x_t \mid x_0 \sim \mathcal N(\sqrt{\bar\alpha_t}\,x_0, (1-\bar\alpha_t))`;
    ``alpha_bar_t`` is a 0-dim float64 tensor in [0, 1], ``weights``/``means``/``stds`` float64
    ``[K]``."""
    gen = torch.Generator().manual_seed(303)
    cases = []
    for K, alpha_bar in ((3, 1.0), (2, 0.6), (4, 0.25), (3, 0.02), (2, 0.0)):
        weights = torch.rand(K, generator=gen, dtype=torch.float64) + 0.2
        weights = weights / weights.sum()
        means = 2.0 * torch.rand(K, generator=gen, dtype=torch.float64) - 1.0
        stds = 0.2 + 0.5 * torch.rand(K, generator=gen, dtype=torch.float64)
        x = torch.linspace(-3.0, 3.0, 61, dtype=torch.float64)
        ab = torch.tensor(alpha_bar, dtype=torch.float64)
        cases.append(
            Case((x, ab, weights, means, stds), f"K = {K} components, alpha_bar_t = {alpha_bar}")
        )

    def reference(x, alpha_bar_t, weights, means, stds):
        q_t = GaussianMixture(weights, means[:, None], stds).noised(alpha_bar_t)
        return q_t.log_prob(x[:, None]).exp()

    hint = (
        "component k of q(x_t) is a Gaussian with mean sqrt(alpha_bar_t) * means[k] and VARIANCE "
        "alpha_bar_t * stds[k]**2 + 1 - alpha_bar_t (the data's own spread, shrunk, plus the noise); "
        "weight it by weights[k] and sum over k. Mind variance vs standard deviation in the density."
    )
    return run_check("marginal_pdf", fn, reference, cases, hint)
