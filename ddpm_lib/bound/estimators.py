r"""Measuring the variational bound: the ε-weights :math:`\lambda_t`, an unbiased bits/dim estimator
with a confidence interval, the bound by direct Monte Carlo, and the simple loss per t-bucket.

The bound (Ho et al. 2020, Eq. 5) is :math:`L = L_T + \sum_{t=2}^T L_{t-1} + L_0`; its terms are
:func:`ddpm_lib.bound.vlb_terms`. With the ε-parametrisation (Eqs. 11-12) every middle term
is a weighted ε-error plus a constant, exactly:

.. math::
    L_{t-1} = \lambda_t\,\frac{\|\bar\epsilon_t - \epsilon_\theta(x_t, t)\|^2}{\text{dims}} + C_t,
    \qquad \lambda_t = \frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)},\qquad
    C_t = \tfrac12\Big(\log\frac{\sigma_t^2}{\tilde\beta_t} + \frac{\tilde\beta_t}{\sigma_t^2} - 1\Big)

(nats per dimension, :math:`x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\,\bar\epsilon_t`).
:math:`L_\text{simple}` (Eq. 14) drops :math:`\lambda_t`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from .._validate import check_choice, check_int, check_tensor
from ..diffusion import Diffusion, EpsModel, randn_like
from ..losses import discretized_gaussian_log_likelihood, mean_flat
from .vlb import check_decoder, prior_bpd, reverse_variances, step_terms

_Z95 = 1.959963984540054  # the 97.5 % quantile of N(0, 1)
_LN2 = math.log(2.0)  # nats -> bits
#: How :func:`vlb_estimate` spreads its draws of ``t`` over ``2..T``.
STRATA = ("log", "even", "none")


class EpsWeights(NamedTuple):
    r"""``lambdas`` :math:`\lambda_t` and ``constants`` :math:`C_t`, float64 ``[T + 1]``, nats per
    dimension. Index 0 holds NaN. Index 1 belongs to :math:`L_0` with the **Gaussian** decoder:
    :math:`L_0 = \lambda_1\|\bar\epsilon_1 - \epsilon_\theta(x_1, 1)\|^2/\text{dims} + C_1` with
    :math:`C_1 = \tfrac12\log(2\pi\sigma_1^2)` (the discretised decoder has no such form)."""

    lambdas: torch.Tensor
    constants: torch.Tensor


def eps_weights(diffusion: Diffusion, variance: str | torch.Tensor = "beta") -> EpsWeights:
    r"""The weights that turn the bound's terms into ε-errors (Ho et al. 2020, Eq. 12; the
    issue's chapter 4): for ``t = 2..T``

    .. math:: L_{t-1} = \lambda_t\,\frac{\|\bar\epsilon_t - \epsilon_\theta(x_t, t)\|^2}{\text{dims}}
        + C_t,\quad \lambda_t = \frac{\beta_t^2}{2\sigma_t^2\alpha_t(1-\bar\alpha_t)},\quad
        C_t = \tfrac12\Big(\log\frac{\sigma_t^2}{\tilde\beta_t} + \frac{\tilde\beta_t}{\sigma_t^2}
        - 1\Big)

    because :math:`\tilde\mu_t - \mu_\theta = \frac{\beta_t}{\sqrt{\alpha_t}\sqrt{1-\bar\alpha_t}}
    (\epsilon_\theta - \bar\epsilon_t)` and the KL of two Gaussians splits into a mean part and a
    variance part (:func:`ddpm_lib.losses.normal_kl`). :math:`C_t = 0` when
    :math:`\sigma_t^2 = \tilde\beta_t`. Holds with ``clip_x0=False`` (Algorithm 2's model).

    ``variance``: :math:`\sigma_t^2` as in :func:`ddpm_lib.bound.reverse_variances`.
    Returns :class:`EpsWeights` (float64 ``[T + 1]`` each, nats per dimension; index 0 NaN,
    index 1 the Gaussian decoder's, see there)."""
    sigma2 = reverse_variances(diffusion, variance)
    betas, alphas = (v.detach().cpu().double() for v in (diffusion.betas, diffusion.alphas))
    alpha_bars = diffusion.alpha_bars.detach().cpu().double()
    beta_tildes = diffusion.beta_tildes.detach().cpu().double()
    lambdas = betas**2 / (2 * sigma2 * alphas * (1 - alpha_bars))
    constants = torch.full_like(lambdas, math.nan)
    ratio = beta_tildes[2:] / sigma2[2:]
    constants[2:] = 0.5 * (-torch.log(ratio) + ratio - 1)
    constants[1] = 0.5 * torch.log(2 * math.pi * sigma2[1])
    lambdas[0] = math.nan
    return EpsWeights(lambdas, constants)


class VLBEstimate(NamedTuple):
    r"""An unbiased estimate of the bound, **bits per dimension**: ``mean`` over the ``n``
    examples, its standard error ``stderr`` and the 95 % interval ``[ci_low, ci_high]``
    (``mean ± 1.96 stderr``), floats; ``values`` the estimate of each example ``[n]``; ``prior``
    (:math:`L_T`) and ``decoder`` (:math:`L_0`) of each example ``[n]`` (included in ``values``)."""

    mean: float
    stderr: float
    ci_low: float
    ci_high: float
    values: torch.Tensor
    n: int
    prior: torch.Tensor
    decoder: torch.Tensor


def _strata(T: int, n_t: int, strata: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(lo [n_t], hi [n_t], weight [n_t])``: draw ``t`` uniformly in ``[lo_k, hi_k]`` and weigh
    its term by ``weight_k``; the weights sum to ``T - 1``, the number of middle terms."""
    if strata == "none":
        lo, hi = torch.full((n_t,), 2), torch.full((n_t,), T)
        return lo, hi, torch.full((n_t,), (T - 1) / n_t, dtype=torch.float64)
    edges = [2]  # stratum k is edges[k] .. edges[k + 1] - 1
    for k in range(1, n_t):
        if strata == "log":
            target = round(2 * ((T + 1) / 2) ** (k / n_t))
        else:
            target = round(2 + (T - 1) * k / n_t)
        edges.append(min(max(target, edges[-1] + 1), T + 1 - (n_t - k)))
    edges.append(T + 1)
    e = torch.tensor(edges)
    lo, hi = e[:-1], e[1:] - 1
    return lo, hi, (hi - lo + 1).double()


def vlb_estimate(
    diffusion: Diffusion,
    model: EpsModel,
    x0: torch.Tensor,
    n_t: int = 10,
    variance: str | torch.Tensor = "beta",
    generator: torch.Generator | None = None,
    decoder: str = "discretized",
    strata: str = "log",
    batch_size: int = 250,
    noise: torch.Tensor | None = None,
) -> VLBEstimate:
    r"""The bound of every example of ``x0`` without ``T`` model calls: :math:`L_T` and
    :math:`L_0` exactly as in :func:`ddpm_lib.bound.vlb_terms`, and the ``T - 1`` middle terms
    by sampling ``t``:

    .. math:: \sum_{t=2}^{T} L_{t-1} = (T-1)\,\mathbb E_{t\sim\mathcal U\{2,\dots,T\}}[L_{t-1}]
        \approx \sum_{k=1}^{n_t} m_k\,L_{t_k - 1}

    ``strata="even"``: ``2..T`` is cut into ``n_t`` consecutive strata of nearly equal sizes
    :math:`m_k` (summing to ``T - 1``) and :math:`t_k` is drawn uniformly inside stratum ``k``;
    ``"log"`` (default): the same with strata of geometrically growing size (the first ones hold
    one step each), because the terms fall by orders of magnitude over the first hundred steps and
    an even stratum there would weigh one draw by its whole width; ``"none"``:
    :math:`t_k \sim \mathcal U\{2..T\}` and :math:`m_k = (T-1)/n_t`. Every choice is unbiased for
    each example; strata lower the variance. Every example gets its own ``t``s (drawn from
    ``generator``) and its own :math:`x_t`.

    Args:
        x0: ``[n, ...]``, ``n >= 2``; variance, decoder as in :func:`~ddpm_lib.bound.vlb_terms`.
        n_t: draws of ``t`` per example, in ``[1, T - 1]``; cost ``n_t + 1`` model calls per example.
        batch_size: examples per model call.
        noise: optional ``[n_t + 1, *x0.shape]``: ``noise[0]`` draws :math:`x_1` (for :math:`L_0`),
            ``noise[k]`` the :math:`x_t` of draw ``k``.
    Returns :class:`VLBEstimate`. Runs without gradients. Several variances at the cost of one:
    :func:`vlb_estimates`."""
    return vlb_estimates(diffusion, model, x0, (variance,), n_t, generator, decoder, strata,
                         batch_size, noise)[0]  # fmt: skip


def vlb_estimates(
    diffusion: Diffusion,
    model: EpsModel,
    x0: torch.Tensor,
    variances: Sequence[str | torch.Tensor] = ("beta", "beta_tilde"),
    n_t: int = 10,
    generator: torch.Generator | None = None,
    decoder: str = "discretized",
    strata: str = "log",
    batch_size: int = 250,
    noise: torch.Tensor | None = None,
) -> tuple[VLBEstimate, ...]:
    r""":func:`vlb_estimate` for several reverse variances :math:`\sigma_t^2` at once, one
    :class:`VLBEstimate` per entry of ``variances`` (in that order). The model does not depend on
    :math:`\sigma_t^2` (only :math:`\mu_\theta` does, through :math:`\epsilon_\theta`), so every
    variance reuses the same ``t``, :math:`x_t` and model calls: the cost of one, and a paired
    comparison: the standard error of the difference is ``(a.values - b.values).std() / sqrt(n)``
    (smaller than either's when the two move together, as on a trained model)."""
    x0 = check_tensor("x0", x0)
    T, n = diffusion.T, x0.shape[0]
    if T < 2:
        raise ValueError(f"vlb_estimate needs T >= 2 (the middle terms), got T = {T}")
    if n < 2:
        raise ValueError(f"x0 must hold at least 2 examples for a standard error, got {n}")
    check_int("n_t", n_t, 1, T - 1)
    check_int("batch_size", batch_size, 1)
    check_choice("strata", strata, STRATA)
    if isinstance(variances, str | torch.Tensor) or len(variances) == 0:
        raise ValueError(f"variances must be a non-empty list or tuple, got {variances!r}")
    sigma2s = [reverse_variances(diffusion, v).to(x0.device) for v in variances]
    check_decoder(decoder, x0)
    if noise is not None and tuple(check_tensor("noise", noise).shape) != (n_t + 1, *x0.shape):
        raise ValueError(f"noise must have shape {[n_t + 1, *x0.shape]}, got {list(noise.shape)}")
    lo, hi, weight = _strata(T, n_t, strata)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    # every t first, so that batch_size changes nothing but the memory used
    ts = [torch.randint(int(a), int(b) + 1, (n,), generator=generator, device=gen_device).cpu()
          for a, b in zip(lo, hi, strict=True)]  # fmt: skip
    values, priors, decoders = [], [], []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            x = x0[start : start + batch_size]
            zs = None if noise is None else noise[:, start : start + batch_size]
            prior = prior_bpd(diffusion, x.double())
            z = randn_like(x, generator, None if zs is None else zs[0])
            l0 = step_terms(diffusion, model, x, 1, z, sigma2s, decoder, False)[0] / _LN2
            middle = torch.zeros_like(l0)  # [V, b]
            for k in range(n_t):
                u = ts[k][start : start + batch_size].to(x.device)
                z = randn_like(x, generator, None if zs is None else zs[k + 1])
                terms = step_terms(diffusion, model, x, u, z, sigma2s, decoder, False)[0]
                middle += float(weight[k]) * terms / _LN2
            values.append((prior + l0 + middle).cpu())
            priors.append(prior.cpu())
            decoders.append(l0.cpu())
    all_values, all_decoders, prior_t = (
        torch.cat(values, 1),
        torch.cat(decoders, 1),
        torch.cat(priors),
    )
    out = []
    for v, dec in zip(all_values, all_decoders, strict=True):
        mean, stderr = float(v.mean()), float(v.std(unbiased=True)) / math.sqrt(n)
        out.append(VLBEstimate(mean, stderr, mean - _Z95 * stderr, mean + _Z95 * stderr, v, n,
                               prior_t, dec))  # fmt: skip
    return tuple(out)


def vlb_direct(
    diffusion: Diffusion,
    model: EpsModel,
    x0: torch.Tensor,
    variance: str | torch.Tensor = "beta",
    decoder: str = "gaussian",
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""The bound straight from its definition (Ho et al. 2020, Eq. 3), one forward chain per
    example, **bits per dimension** ``[B]``:

    .. math:: L = \mathbb E_q\big[\log q(x_{1:T}\mid x_0) - \log p_\theta(x_{0:T})\big],\quad
        q(x_{1:T}\mid x_0) = \prod_{t=1}^T q(x_t\mid x_{t-1}),\quad
        p_\theta(x_{0:T}) = p(x_T)\prod_{t=1}^T p_\theta(x_{t-1}\mid x_t)

    with :math:`x_t = \sqrt{\alpha_t}x_{t-1} + \sqrt{\beta_t}\,\epsilon_t` (Eq. 2),
    :math:`p(x_T) = \mathcal N(0, I)`, :math:`p_\theta(x_{t-1}\mid x_t) = \mathcal N(\mu_\theta,
    \sigma_t^2 I)` and the decoder at ``t = 1`` as in :func:`~ddpm_lib.bound.vlb_terms`.
    Every log-density of the chain is summed: no KL, no telescoping. Its mean equals the
    decomposed bound's; its variance is far larger (a check, not an estimator to use).

    Args: ``noise`` optional ``[T, *x0.shape]``, ``noise[t - 1]`` = :math:`\epsilon_t`.
    ``T`` model calls; no gradients."""
    x0 = check_tensor("x0", x0)
    T = diffusion.T
    sigma2s = reverse_variances(diffusion, variance).to(x0.device)
    check_decoder(decoder, x0)
    if noise is not None and tuple(check_tensor("noise", noise).shape) != (T, *x0.shape):
        raise ValueError(f"noise must have shape {[T, *x0.shape]}, got {list(noise.shape)}")

    def log_normal(x, mean, var):
        return -0.5 * (math.log(2 * math.pi) + torch.log(var) + (x - mean) ** 2 / var)

    # The chain runs in float64 (a sum of 2T log-densities); the model sees x_t in x0's dtype.
    x0d = x0.double()
    log_ratio = torch.zeros(x0.shape[0], dtype=torch.float64, device=x0.device)
    x_prev = x0d
    with torch.no_grad():
        for t in range(1, T + 1):
            eps_t = randn_like(x0d, generator, None if noise is None else noise[t - 1])
            beta = diffusion.coef(diffusion.betas, t, x0d)
            step_mean = diffusion.coef(diffusion.alphas, t, x0d).sqrt() * x_prev
            x_t = step_mean + beta.sqrt() * eps_t
            log_q = log_normal(x_t, step_mean, beta)
            eps = diffusion.call_model(model, x_t.to(x0.dtype), t).double()
            mean = diffusion.mu_tilde_from_eps(x_t, t, eps)
            var = diffusion.coef(sigma2s, t, x0d)
            if t > 1:
                log_p = log_normal(x_prev, mean, var)
            elif decoder == "gaussian":
                log_p = log_normal(x0d, mean, var)
            else:
                log_p = discretized_gaussian_log_likelihood(x0d, mean, 0.5 * torch.log(var))
            log_ratio += mean_flat(log_q) - mean_flat(log_p.expand_as(x0d))
            x_prev = x_t
        one = torch.ones((), dtype=torch.float64, device=x0.device)
        log_ratio -= mean_flat(log_normal(x_prev, torch.zeros_like(one), one))
    return log_ratio / _LN2


class TBucketLoss(NamedTuple):
    r"""The simple loss per bucket of ``t``: bucket ``k`` holds the steps ``t_lo[k]..t_hi[k]``
    (LongTensor ``[K]``); ``mse[k]`` the mean ε-error :math:`\|\bar\epsilon_t - \epsilon_\theta\|^2
    /\text{dims}` over the examples, ``stderr[k]`` its standard error (float64 ``[K]``); ``t``
    ``[K, B]`` the step drawn for each example, ``per_example`` ``[K, B]`` its ε-error."""

    t_lo: torch.Tensor
    t_hi: torch.Tensor
    mse: torch.Tensor
    stderr: torch.Tensor
    t: torch.Tensor
    per_example: torch.Tensor


def loss_by_t_bucket(
    diffusion: Diffusion,
    model: EpsModel,
    x0: torch.Tensor,
    n_buckets: int = 10,
    generator: torch.Generator | None = None,
) -> TBucketLoss:
    r""":math:`L_\text{simple}` (Ho et al. 2020, Eq. 14) measured separately on ``n_buckets``
    consecutive, nearly equal buckets of ``t`` in ``1..T``: in bucket ``k`` every example draws its
    own ``t`` uniformly inside the bucket and its own :math:`\bar\epsilon_t` (both from
    ``generator``, so the result is deterministic given a seeded one), and the ε-error
    :math:`\|\bar\epsilon_t - \epsilon_\theta(\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}
    \bar\epsilon_t, t)\|^2/\text{dims}` is averaged over the examples.

    ``x0`` ``[B, ...]`` (``B >= 2``); ``n_buckets`` in ``[1, T]``. ``n_buckets`` model calls of the
    batch; no gradients. Returns :class:`TBucketLoss`."""
    x0 = check_tensor("x0", x0)
    T, B = diffusion.T, x0.shape[0]
    if B < 2:
        raise ValueError(f"x0 must hold at least 2 examples for a standard error, got {B}")
    check_int("n_buckets", n_buckets, 1, T)
    edges = torch.linspace(0, T, n_buckets + 1, dtype=torch.float64).round().long()
    t_lo, t_hi = 1 + edges[:-1], edges[1:]
    gen_device = generator.device if generator is not None else torch.device("cpu")
    ts, per_example = [], []
    with torch.no_grad():
        for lo, hi in zip(t_lo.tolist(), t_hi.tolist(), strict=True):
            t = torch.randint(lo, hi + 1, (B,), generator=generator, device=gen_device)
            z = randn_like(x0, generator)
            x_t = diffusion.q_sample(x0, t.to(x0.device), z)
            eps = diffusion.call_model(model, x_t, t.to(x0.device))
            ts.append(t.cpu())
            per_example.append(mean_flat((z - eps.to(z.dtype)) ** 2).double().cpu())
    errors = torch.stack(per_example)
    stderr = errors.std(dim=1, unbiased=True) / math.sqrt(B)
    return TBucketLoss(t_lo, t_hi, errors.mean(dim=1), stderr, torch.stack(ts), errors)
