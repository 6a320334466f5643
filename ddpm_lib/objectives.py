r"""Training objectives: the simplified loss of Algorithm 1 and the full variational bound.

The variational bound of Ho et al. (2020, Eq. 5) splits into a prior term, one KL per step and a
decoder term:

.. math::
    L = \underbrace{\mathrm{KL}\big(q(x_T\mid x_0)\,\|\,p(x_T)\big)}_{L_T}
      + \sum_{t=2}^{T}\underbrace{\mathrm{KL}\big(q(x_{t-1}\mid x_t, x_0)\,\|\,
        p_\theta(x_{t-1}\mid x_t)\big)}_{L_{t-1}}
      \underbrace{-\,\log p_\theta(x_0\mid x_1)}_{L_0}
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ._validate import check_choice, check_tensor
from .diffusion import Diffusion, EpsModel
from .losses import discretized_gaussian_log_likelihood, normal_kl

__all__ = ["VLBTerms", "loss_simple", "vlb_terms", "prior_bpd"]

_LN2 = math.log(2.0)


class VLBTerms(NamedTuple):
    """The variational bound of each example, in **bits per dimension**.

    ``prior``: :math:`L_T`, ``[B]``. ``terms``: ``[B, T]`` with column 0 = :math:`L_0` and column
    ``t - 1`` = :math:`L_{t-1}` for ``t = 2..T``. ``total``: ``prior + terms.sum(1)``, ``[B]``.
    """

    prior: torch.Tensor
    terms: torch.Tensor
    total: torch.Tensor


def _mean_flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).mean(dim=1)


def loss_simple(
    diffusion: Diffusion,
    model: EpsModel,
    x0: torch.Tensor,
    t: int | torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""The simplified objective of Algorithm 1 (Ho et al. 2020, Eq. 14):

    .. math:: L_\text{simple} = \mathbb E_{t, x_0, \epsilon}\Big[\big\|\epsilon - \epsilon_\theta
        \big(\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t\big)\big\|^2\Big],
        \qquad t \sim \mathcal U\{1, \dots, T\}

    The squared norm is averaged over dimensions (a constant factor, as in Ho et al.'s code).

    Args:
        x0: clean data ``[B, ...]`` in [-1, 1].
        t: ``[B]`` LongTensor or int in ``[1, T]``; drawn uniformly (from ``generator``) if omitted.
        noise: :math:`\epsilon` shaped like ``x0``; drawn if omitted.
        reduction: ``"mean"`` (a scalar) or ``"none"`` (one value per example, ``[B]``).
    """
    x0 = check_tensor("x0", x0)
    check_choice("reduction", reduction, ("mean", "none"))
    if t is None:
        gen_device = generator.device if generator is not None else x0.device
        t = torch.randint(
            1, diffusion.T + 1, (x0.shape[0],), generator=generator, device=gen_device
        )
        t = t.to(x0.device)
    t = diffusion._check(t, x0=x0, noise=noise)
    noise = diffusion._draw(x0, noise, generator)
    eps = diffusion._call_model(model, diffusion._q_sample(x0, t, noise), t)
    per_example = _mean_flat((noise - eps) ** 2)
    return per_example.mean() if reduction == "mean" else per_example


def vlb_terms(
    diffusion: Diffusion,
    model: EpsModel,
    x0: torch.Tensor,
    variance: str = "beta",
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    clip_x0: bool = False,
) -> VLBTerms:
    r"""Every term of the variational bound (Ho et al. 2020, Eq. 5), one Monte Carlo draw of
    :math:`x_t \sim q(x_t\mid x_0)` per step, in bits per dimension.

    - :math:`L_T = \mathrm{KL}(\mathcal N(\sqrt{\bar\alpha_T}x_0, (1-\bar\alpha_T)I)\,\|\,\mathcal N(0, I))`
    - :math:`L_{t-1} = \mathrm{KL}(\mathcal N(\tilde\mu_t, \tilde\beta_t I)\,\|\,
      \mathcal N(\mu_\theta, \sigma_t^2 I))` for ``t = 2..T`` (closed form, :func:`normal_kl`)
    - :math:`L_0 = -\log p_\theta(x_0 \mid x_1)` with the discretised Gaussian decoder (Eq. 13) of
      mean :math:`\mu_\theta(x_1, 1)` and variance :math:`\sigma_1^2` (:math:`\tilde\beta_2` when
      ``variance="beta_tilde"``, since :math:`\tilde\beta_1 = 0`).

    Args:
        x0: data on the 256-level grid of [-1, 1], ``[B, ...]``.
        variance: ``"beta"`` or ``"beta_tilde"``, the reverse variance :math:`\sigma_t^2`.
        noise: optional ``[T, *x0.shape]``; ``noise[t - 1]`` draws :math:`x_t`.
    Costs ``T`` model evaluations of the batch; runs without gradients.
    """
    x0 = check_tensor("x0", x0)
    check_choice("variance", variance, ("beta", "beta_tilde"))
    T, B = diffusion.T, x0.shape[0]
    if noise is not None:
        noise = check_tensor("noise", noise)
        if tuple(noise.shape) != (T, *x0.shape):
            raise ValueError(f"noise must have shape {[T, *x0.shape]}, got {list(noise.shape)}")
    terms = torch.zeros(B, T, dtype=x0.dtype, device=x0.device)
    with torch.no_grad():
        for t in range(1, T + 1):
            z = diffusion._draw(x0, None if noise is None else noise[t - 1], generator)
            x_t = diffusion._q_sample(x0, t, z)
            eps = diffusion._call_model(model, x_t, t)
            mean, var = diffusion._p_mean_variance_from_eps(x_t, t, eps, variance, clip_x0)
            if t == 1:
                var_1 = var if variance == "beta" else diffusion.beta_tildes_clipped[1]
                log_scale = 0.5 * torch.log(
                    torch.as_tensor(var_1, dtype=x0.dtype, device=x0.device)
                )
                nll = -discretized_gaussian_log_likelihood(x0, mean, log_scale)
                terms[:, 0] = _mean_flat(nll) / _LN2
            else:
                true_mean, true_var = diffusion._q_posterior(x0, x_t, t)
                kl = normal_kl(true_mean, torch.log(true_var), mean, torch.log(var))
                terms[:, t - 1] = _mean_flat(kl) / _LN2
        prior = _prior_bpd(diffusion, x0)
    return VLBTerms(prior=prior, terms=terms, total=prior + terms.sum(dim=1))


def prior_bpd(diffusion: Diffusion, x0: torch.Tensor) -> torch.Tensor:
    r""":math:`L_T = \mathrm{KL}(q(x_T\mid x_0)\,\|\,\mathcal N(0, I))` per example, bits/dim ``[B]``.

    Has no parameters to learn: it measures how far :math:`x_T` is from pure noise."""
    return _prior_bpd(diffusion, check_tensor("x0", x0))


def _prior_bpd(diffusion, x0):
    mean, var = diffusion._q_mean_variance(x0, diffusion.T)
    kl = normal_kl(mean, torch.log(var), 0.0, 0.0)
    return _mean_flat(kl.expand_as(x0)) / _LN2
