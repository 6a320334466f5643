r"""Closed-form pieces of the variational bound: Gaussian KL and the discretised Gaussian decoder.

All results are elementwise and in **nats**; :meth:`ddpm_lib.Diffusion.vlb_terms` averages them over
dimensions and converts to bits per dimension."""

from __future__ import annotations

import torch

#: The decoder models 8-bit images: 256 levels spread evenly over [-1, 1], ``x = 2 u / 255 - 1``.
NUM_LEVELS = 256
_HALF_BIN = 1.0 / (NUM_LEVELS - 1)  # half the spacing 2/255 between neighbouring levels


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """The mean over every dimension but the batch: ``[B, ...] -> [B]`` (a per-dimension loss or
    bound, as in Ho et al.'s code)."""
    return x.reshape(x.shape[0], -1).mean(dim=1)


def _as_tensor(x: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    return (
        x if isinstance(x, torch.Tensor) else torch.tensor(x, dtype=like.dtype, device=like.device)
    )


def normal_kl(
    mean1: torch.Tensor | float,
    logvar1: torch.Tensor | float,
    mean2: torch.Tensor | float,
    logvar2: torch.Tensor | float,
) -> torch.Tensor:
    r"""Elementwise :math:`\mathrm{KL}\big(\mathcal N(\mu_1, \sigma_1^2)\,\|\,\mathcal N(\mu_2,
    \sigma_2^2)\big)` in nats.

    .. math::
        \mathrm{KL} = \tfrac12\Big(\log\frac{\sigma_2^2}{\sigma_1^2} + \frac{\sigma_1^2 + (\mu_1 -
        \mu_2)^2}{\sigma_2^2} - 1\Big)

    Used for :math:`L_T` and :math:`L_{t-1}` (Ho et al. 2020, Eq. 5), where both distributions are
    Gaussians with diagonal covariance. Arguments broadcast against each other; at least one must be a
    tensor. Variances enter as log-variances so that tiny variances stay exact."""
    ref = next((v for v in (mean1, logvar1, mean2, logvar2) if isinstance(v, torch.Tensor)), None)
    if ref is None:
        raise TypeError("normal_kl needs at least one torch.Tensor argument")
    mean1, logvar1, mean2, logvar2 = (_as_tensor(v, ref) for v in (mean1, logvar1, mean2, logvar2))
    try:
        torch.broadcast_shapes(mean1.shape, logvar1.shape, mean2.shape, logvar2.shape)
    except RuntimeError as err:
        shapes = [list(v.shape) for v in (mean1, logvar1, mean2, logvar2)]
        raise ValueError(f"normal_kl arguments must broadcast, got shapes {shapes}") from err
    return 0.5 * (
        -1.0
        + logvar2
        - logvar1
        + torch.exp(logvar1 - logvar2)
        + (mean1 - mean2) ** 2 * torch.exp(-logvar2)
    )


def discretized_gaussian_log_likelihood(
    x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor
) -> torch.Tensor:
    r"""Log-probability (nats) of 8-bit data under a Gaussian discretised to 256 bins — the decoder
    :math:`p_\theta(x_0 \mid x_1)` of the :math:`L_0` term (Ho et al. 2020, Eq. 13).

    Each level :math:`x \in \{-1, -1 + \tfrac{2}{255}, \dots, 1\}` owns the bin
    :math:`[x - \tfrac{1}{255}, x + \tfrac{1}{255}]`; the two edge bins extend to
    :math:`\mp\infty`, so the 256 probabilities sum to one exactly:

    .. math::
        p(x) = \int_{\delta_-(x)}^{\delta_+(x)} \mathcal N(v;\ \mu, \sigma^2)\, dv, \quad
        \delta_+(x) = \begin{cases}\infty & x = 1\\ x + \tfrac1{255} & x < 1\end{cases},\quad
        \delta_-(x) = \begin{cases}-\infty & x = -1\\ x - \tfrac1{255} & x > -1\end{cases}

    Args:
        x: data on the 256-level grid of [-1, 1], any shape.
        mean: :math:`\mu`, broadcastable to ``x``.
        log_scale: :math:`\log\sigma` (log standard deviation), broadcastable to ``x``.

    Returns:
        elementwise :math:`\log p(x)`, shape of the broadcast.
    """
    if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point:
        raise TypeError("x must be a floating-point tensor on the 256-level grid of [-1, 1]")
    if x.numel() and (float(x.min()) < -1 - 1e-6 or float(x.max()) > 1 + 1e-6):
        raise ValueError(
            f"x must lie in [-1, 1] (8-bit data scaled as 2u/255 - 1), "
            f"got values in [{float(x.min()):.4g}, {float(x.max()):.4g}]"
        )
    mean = _as_tensor(mean, x)
    log_scale = _as_tensor(log_scale, x)
    try:
        torch.broadcast_shapes(x.shape, mean.shape, log_scale.shape)
    except RuntimeError as err:
        raise ValueError(
            f"x {list(x.shape)}, mean {list(mean.shape)} and log_scale {list(log_scale.shape)} "
            "must broadcast"
        ) from err
    inv_scale = torch.exp(-log_scale)
    upper = (x - mean + _HALF_BIN) * inv_scale  # standardised upper bin edge
    lower = (x - mean - _HALF_BIN) * inv_scale
    # log Φ(upper) for the bottom edge bin and log(1 - Φ(lower)) = log Φ(-lower) for the top one;
    # log_ndtr stays accurate far in the tails where 1 - Φ would round to 0.
    log_cdf_upper = torch.special.log_ndtr(upper)
    log_sf_lower = torch.special.log_ndtr(-lower)
    # Interior bins: log(Φ(a) - Φ(b)) = log Φ(a) + log(1 - exp(log Φ(b) - log Φ(a))), evaluated on the
    # side of the mean where the two CDFs are small, so nothing cancels (no 1 - 0.99999... rounding).
    flip = lower > 0
    a = torch.where(flip, -lower, upper)
    b = torch.where(flip, -upper, lower)
    log_a, log_b = torch.special.log_ndtr(a), torch.special.log_ndtr(b)
    tiny = torch.finfo(log_a.dtype).tiny
    log_delta = log_a + torch.log(torch.clamp(-torch.expm1(log_b - log_a), min=tiny))
    bottom = x < -1 + _HALF_BIN / 2
    top = x > 1 - _HALF_BIN / 2
    return torch.where(bottom, log_cdf_upper, torch.where(top, log_sf_lower, log_delta))
