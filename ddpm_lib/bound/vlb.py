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
from collections.abc import Sequence
from typing import NamedTuple

import torch

from .._validate import check_choice, check_steps, check_tensor
from ..diffusion import VARIANCES, Diffusion, EpsModel, randn_like
from ..losses import discretized_gaussian_log_likelihood, mean_flat, normal_kl

#: The decoder :math:`p_\theta(x_0 \mid x_1)` of :math:`L_0`: Ho et al.'s discretised Gaussian
#: (Eq. 13, 8-bit data) or the Gaussian density (continuous data).
DECODERS = ("discretized", "gaussian")

_LN2 = math.log(2.0)


class VLBTerms(NamedTuple):
    r"""The variational bound of each example, in **bits per dimension**.

    ``prior``: :math:`L_T`, ``[B]``. ``terms``: ``[B, K]``, column ``k`` the term of step
    ``t = steps[k]``: :math:`L_0` for ``t = 1``, :math:`L_{t-1}` for ``t >= 2`` (with every step,
    column ``t - 1`` is step ``t``). ``total``: ``prior + terms.sum(1)`` ``[B]`` when ``steps`` is
    ``1..T``, NaN otherwise (a partial sum bounds nothing). ``steps``: LongTensor ``[K]``.
    ``eps_mse``: ``[B, K]``, the ε-error :math:`\|\bar\epsilon_t - \epsilon_\theta(x_t, t)\|^2
    / \text{dims}` of the same draw of :math:`x_t` (see :func:`ddpm_lib.bound.eps_weights`)."""

    prior: torch.Tensor
    terms: torch.Tensor
    total: torch.Tensor
    steps: torch.Tensor
    eps_mse: torch.Tensor


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
    if noise is None:  # drawn here, not in q_sample: the loss needs it
        noise = randn_like(x0, generator)
    eps = diffusion.call_model(model, diffusion.q_sample(x0, t, noise), t)
    per_example = mean_flat((noise.to(x0) - eps) ** 2)
    return per_example.mean() if reduction == "mean" else per_example


def reverse_variances(diffusion: Diffusion, variance: str | torch.Tensor = "beta") -> torch.Tensor:
    r"""The reverse variances :math:`\sigma_t^2` of :math:`p_\theta(x_{t-1}\mid x_t) =
    \mathcal N(\mu_\theta(x_t, t), \sigma_t^2 I)` (Ho et al. 2020, Sec. 3.2) as one float64 tensor
    ``[T + 1]`` on the CPU, index ``t`` = :math:`\sigma_t^2`:

    - ``"beta"``: :math:`\sigma_t^2 = \beta_t`;
    - ``"beta_tilde"``: :math:`\sigma_t^2 = \tilde\beta_t` for ``t >= 2``; index 1 holds
      :math:`\tilde\beta_2` (:math:`\tilde\beta_1 = 0` would make the decoder of :math:`L_0` a point
      mass; Ho et al.'s code makes the same choice);
    - a tensor of ``T + 1`` numbers, finite and > 0 at ``t = 1..T`` (e.g. the true reverse variances
      :math:`v_t` of :func:`ddpm_lib.toy.gaussian_reverse_kernels`).

    Index 0 holds NaN (there is no step into :math:`x_0`'s predecessor); index 1 is the variance of
    the decoder :math:`p_\theta(x_0\mid x_1)`."""
    T = diffusion.T
    if isinstance(variance, torch.Tensor):
        if variance.dtype.is_complex or not variance.dtype.is_floating_point:
            raise TypeError(f"variance must be a floating-point tensor, got dtype {variance.dtype}")
        if tuple(variance.shape) != (T + 1,):
            raise ValueError(
                f"variance must be 'beta', 'beta_tilde' or a tensor of T + 1 = {T + 1} variances "
                f"(index t = sigma_t^2), got shape {list(variance.shape)}"
            )
        out = variance.detach().to(device="cpu", dtype=torch.float64).clone()
        bad = ~(torch.isfinite(out[1:]) & (out[1:] > 0))
        if bool(bad.any()):
            t = int(torch.nonzero(bad)[0]) + 1
            raise ValueError(f"variance[t] must be finite and > 0 for t = 1..{T}, got "
                             f"variance[{t}] = {float(out[t])}")  # fmt: skip
    else:
        if not isinstance(variance, str) or variance not in VARIANCES:
            raise ValueError(
                f"variance must be one of {VARIANCES} or a tensor of T + 1 = {T + 1} variances, "
                f"got {variance!r}"
            )
        source = diffusion.betas if variance == "beta" else diffusion.beta_tildes_clipped
        out = source.detach().to(device="cpu", dtype=torch.float64).clone()
    out[0] = float("nan")
    return out


def step_terms(
    diffusion: Diffusion,
    model: EpsModel,
    x0: torch.Tensor,
    t: int | torch.Tensor,
    z: torch.Tensor,
    sigma2s_list: Sequence[torch.Tensor],
    decoder: str = "discretized",
    clip_x0: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The bound's term of step ``t`` (:math:`L_0` at ``t = 1``, :math:`L_{t-1}` above; see
    :func:`vlb_terms`) for each reverse variance of ``sigma2s_list`` (tensors ``[T + 1]`` of
    :func:`reverse_variances`, on ``x0``'s device) from **one** model call at
    :math:`x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\,z`, nats per dimension,
    float64 ``[V, B]``, and the ε-error :math:`\|z - \epsilon_\theta(x_t, t)\|^2/\text{dims}`
    ``[B]``. ``t`` is an int in ``[1, T]`` or a LongTensor ``[B]`` with every entry in
    ``[2, T]``; ``z`` (:math:`\bar\epsilon_t`) is shaped like ``x0`` ``[B, ...]``. The model sees
    :math:`x_t` in ``x0``'s dtype; everything after it runs in float64, where the small KLs of
    large ``t`` do not drown in rounding (the two means agree to 1e-6 there). The building block
    of :func:`vlb_terms` and :func:`ddpm_lib.bound.vlb_estimates`; checks only what the diffusion's
    methods check."""
    eps = diffusion.call_model(model, diffusion.q_sample(x0, t, z), t).double()
    x0, z = x0.double(), z.double()
    x_t = diffusion.q_sample(x0, t, z)
    eps_mse = mean_flat((z - eps) ** 2)
    mean = diffusion.p_mean_variance_from_eps(x_t, t, eps, "beta", clip_x0).mean
    if not (isinstance(t, int) and t == 1):
        true_mean, true_var = diffusion.q_posterior(x0, x_t, t)
    terms = []
    for sigma2s in sigma2s_list:
        var = diffusion.coef(sigma2s, t, x0)
        if isinstance(t, int) and t == 1 and decoder == "discretized":
            log_scale = 0.5 * torch.log(var).expand_as(x0)
            per_dim = -discretized_gaussian_log_likelihood(x0, mean, log_scale)
        elif isinstance(t, int) and t == 1:
            per_dim = 0.5 * torch.log(2 * math.pi * var) + (x0 - mean) ** 2 / (2 * var)
        else:
            per_dim = normal_kl(true_mean, torch.log(true_var), mean, torch.log(var))
        terms.append(mean_flat(per_dim.expand_as(x0)))
    return torch.stack(terms), eps_mse


def check_decoder(decoder: str, x0: torch.Tensor) -> None:
    """A ValueError unless ``decoder`` is one of :data:`DECODERS` and, for ``"discretized"``, every
    value of ``x0`` lies in [-1, 1] (the 8-bit grid the decoder integrates over)."""
    check_choice("decoder", decoder, DECODERS)
    if decoder == "discretized" and x0.numel():
        lo, hi = float(x0.min()), float(x0.max())
        if lo < -1 - 1e-6 or hi > 1 + 1e-6:
            raise ValueError(
                "decoder='discretized' needs x0 on the 256-level grid of [-1, 1], got values in "
                f"[{lo:.4g}, {hi:.4g}]; use decoder='gaussian' for continuous data"
            )


def vlb_terms(
    diffusion: Diffusion,
    model: EpsModel,
    x0: torch.Tensor,
    variance: str | torch.Tensor = "beta",
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    clip_x0: bool = False,
    ts: Sequence[int] | None = None,
    decoder: str = "discretized",
) -> VLBTerms:
    r"""The terms of the variational bound (Ho et al. 2020, Eq. 5) at the steps ``ts`` (default all,
    ``1..T``), one Monte Carlo draw of :math:`x_t \sim q(x_t\mid x_0)` per step, in **bits per
    dimension** (nats / ln 2, averaged over the dimensions of one example):

    - :math:`L_T = \mathrm{KL}(\mathcal N(\sqrt{\bar\alpha_T}x_0, (1-\bar\alpha_T)I)\,\|\,\mathcal N(0, I))`
    - step ``t >= 2``: :math:`L_{t-1} = \mathrm{KL}(\mathcal N(\tilde\mu_t, \tilde\beta_t I)\,\|\,
      \mathcal N(\mu_\theta(x_t, t), \sigma_t^2 I))` (closed form, :func:`normal_kl`)
    - step ``t = 1``: :math:`L_0 = -\log p_\theta(x_0 \mid x_1)`, with mean
      :math:`\mu_\theta(x_1, 1)` and variance :math:`\sigma_1^2`; ``decoder="discretized"``: the
      Gaussian integrated over the bin of each 8-bit level (Eq. 13; :math:`L_0 \ge 0`),
      ``decoder="gaussian"``: the density :math:`-\log\mathcal N(x_0; \mu_\theta(x_1, 1),
      \sigma_1^2 I)`, for continuous data (it can be negative).

    Args:
        x0: ``[B, ...]``; on the 256-level grid of [-1, 1] for the discretised decoder.
        variance: :math:`\sigma_t^2`: ``"beta"``, ``"beta_tilde"`` or a tensor ``[T + 1]``
            (see :func:`reverse_variances`, which also gives :math:`\sigma_1^2` of the decoder).
        noise: optional ``[K, *x0.shape]`` for ``K = len(ts)``; ``noise[k]`` is the
            :math:`\bar\epsilon_t` that draws :math:`x_t` for ``t = ts[k]``.
        ts: strictly increasing steps in ``[1, T]``: a grid of ``t`` costs ``len(ts)`` model calls
            instead of ``T``.
        clip_x0: compute :math:`\mu_\theta` from :math:`\hat x_0` clamped to [-1, 1] (not the
            model of Algorithm 2; off by default).

    Returns :class:`VLBTerms`; ``total`` (the bound) only when ``ts`` covers ``1..T``, else NaN.
    Runs without gradients."""
    x0 = check_tensor("x0", x0)
    T, B = diffusion.T, x0.shape[0]
    steps = tuple(range(1, T + 1)) if ts is None else check_steps(ts, 1, T)
    sigma2s = reverse_variances(diffusion, variance).to(x0.device)
    check_decoder(decoder, x0)
    if noise is not None:
        noise = check_tensor("noise", noise)
        if tuple(noise.shape) != (len(steps), *x0.shape):
            raise ValueError(
                f"noise must have shape {[len(steps), *x0.shape]} (one x0-shaped draw per step "
                f"of ts), got {list(noise.shape)}"
            )
    terms = torch.zeros(B, len(steps), dtype=torch.float64, device=x0.device)
    eps_mse = torch.zeros_like(terms)
    with torch.no_grad():
        for k, t in enumerate(steps):
            z = randn_like(x0, generator, None if noise is None else noise[k])
            term, mse = step_terms(diffusion, model, x0, t, z, [sigma2s], decoder, clip_x0)
            terms[:, k], eps_mse[:, k] = term[0] / _LN2, mse
        prior = prior_bpd(diffusion, x0.double())
    total = prior + terms.sum(dim=1) if len(steps) == T else torch.full_like(prior, math.nan)
    return VLBTerms(prior, terms, total, torch.tensor(steps, dtype=torch.long), eps_mse)


def prior_bpd(diffusion: Diffusion, x0: torch.Tensor) -> torch.Tensor:
    r""":math:`L_T = \mathrm{KL}(q(x_T\mid x_0)\,\|\,\mathcal N(0, I))` per example, bits/dim ``[B]``.

    Has no parameters to learn: it measures how far :math:`x_T` is from pure noise."""
    mean, var = diffusion.q_mean_variance(x0, diffusion.T)
    kl = normal_kl(mean, torch.log(var), 0.0, 0.0)
    return mean_flat(kl.expand_as(x0)) / _LN2
