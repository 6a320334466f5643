r"""Variance schedules :math:`\beta_1, \dots, \beta_T`.

Every schedule is a float64 tensor of length ``T + 1`` indexed exactly as in the papers: ``betas[t]`` is
:math:`\beta_t` for :math:`t = 1, \dots, T`, and ``betas[0] = 0`` stands for the clean data
:math:`x_0` (no noise has been added yet), so that :math:`\bar\alpha_0 = 1`."""

from __future__ import annotations

import math

import torch


def _check_T(T: object) -> int:
    if isinstance(T, bool) or not isinstance(T, int):
        raise TypeError(f"T must be an int, got {type(T).__name__}")
    if T < 1:
        raise ValueError(f"T must be an integer >= 1, got {T}")
    return T


def linear_betas(T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> torch.Tensor:
    r"""The linear schedule of Ho et al. (2020, Sec. 4): :math:`\beta_t` evenly spaced from
    :math:`\beta_1` to :math:`\beta_T`.

    .. math:: \beta_t = \beta_1 + \frac{t - 1}{T - 1}(\beta_T - \beta_1), \qquad t = 1, \dots, T

    Args:
        T: number of diffusion steps, ``T >= 1``.
        beta_1, beta_T: first and last variance, each in the open interval (0, 1).

    Returns:
        float64 tensor ``[T + 1]`` with ``betas[0] = 0`` and ``betas[t]`` = :math:`\beta_t`.
        For the paper's values (T = 1000, 1e-4, 0.02), :math:`\bar\alpha_T \approx 4.0358\cdot10^{-5}`.
    """
    T = _check_T(T)
    for name, value in (("beta_1", beta_1), ("beta_T", beta_T)):
        if not 0.0 < float(value) < 1.0:
            raise ValueError(f"{name} must be in the open interval (0, 1), got {value}")
    betas = torch.zeros(T + 1, dtype=torch.float64)
    betas[1:] = torch.linspace(float(beta_1), float(beta_T), T, dtype=torch.float64)
    return betas


def cosine_betas(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    r"""The cosine schedule of Nichol & Dhariwal (2021, Eq. 17), defined through :math:`\bar\alpha_t`.

    .. math::
        \bar\alpha_t = \frac{f(t)}{f(0)}, \quad f(t) = \cos^2\!\Big(\frac{t/T + s}{1 + s}\cdot
        \frac{\pi}{2}\Big), \qquad \beta_t = \min\Big(1 - \frac{\bar\alpha_t}{\bar\alpha_{t-1}},\
        \beta_{\max}\Big)

    The clip at :math:`\beta_{\max}` avoids the singularity at :math:`t = T`, where
    :math:`\bar\alpha_T = 0` exactly.

    Args:
        T: number of diffusion steps, ``T >= 1``.
        s: small offset that keeps :math:`\beta_t` from being too small near ``t = 0``; ``s >= 0``.
        max_beta: the clip, in (0, 1).

    Returns:
        float64 tensor ``[T + 1]`` with ``betas[0] = 0``.
    """
    T = _check_T(T)
    if not float(s) >= 0.0:
        raise ValueError(f"s must be >= 0, got {s}")
    if not 0.0 < float(max_beta) < 1.0:
        raise ValueError(f"max_beta must be in the open interval (0, 1), got {max_beta}")
    t = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((t / T + s) / (1 + s) * (math.pi / 2)) ** 2
    alpha_bars = f / f[0]
    betas = torch.zeros(T + 1, dtype=torch.float64)
    betas[1:] = torch.clamp(1 - alpha_bars[1:] / alpha_bars[:-1], max=float(max_beta))
    return betas


def check_betas(betas: object) -> torch.Tensor:
    r"""Validate a schedule: a 1-D tensor ``[T + 1]`` with ``T >= 1``, ``betas[0] == 0`` and
    :math:`\beta_t \in (0, 1)` for ``t >= 1``. Returns it as float64 on the CPU."""
    if not isinstance(betas, torch.Tensor):
        raise TypeError(
            f"betas must be a torch.Tensor of shape [T + 1], got {type(betas).__name__}"
        )
    if betas.dim() != 1 or betas.shape[0] < 2:
        raise ValueError(
            f"betas must have shape [T + 1] with T >= 1 (index 0 = clean data), "
            f"got shape {list(betas.shape)}"
        )
    betas = betas.detach().to("cpu", torch.float64)
    if betas[0] != 0:
        raise ValueError(
            f"betas[0] must be 0 (index 0 is the clean data x_0; t runs 1..T), got {float(betas[0])}"
        )
    inner = betas[1:]
    bad = ~((inner > 0) & (inner < 1))
    if bool(bad.any()):
        t_bad = int(torch.nonzero(bad)[0]) + 1
        raise ValueError(
            f"betas[t] must be in the open interval (0, 1) for t = 1..{betas.shape[0] - 1}, "
            f"got betas[{t_bad}] = {float(betas[t_bad])}"
        )
    return betas
