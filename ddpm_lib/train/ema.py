r"""Exponential moving average (EMA) of the weights, the model DDPM evaluates and samples with.

After optimiser step :math:`n` (counting from 1) every parameter's shadow copy moves towards it:

.. math:: \bar\theta \leftarrow \mu_n\,\bar\theta + (1 - \mu_n)\,\theta,\qquad
    \mu_n = \min\Big(\mu,\ \frac{1 + n}{10 + n}\Big)

with :math:`\mu` = ``config.ema_decay`` (Ho et al. 2020, App. B: 0.9999). The warm-up
:math:`(1+n)/(10+n)` (the ``num_updates`` rule of TensorFlow's ``ExponentialMovingAverage``) keeps
the average from remembering the random initialisation in short runs: with a constant 0.9999,
after 20k steps :math:`e^{-2} \approx 14\%` of the average would still be the initial weights.
Buffers (none in the U-Net) are copied, not averaged."""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay_at(decay: float, num_updates: int) -> float:
    r""":math:`\mu_n = \min(\mu, (1 + n) / (10 + n))` for update number ``num_updates`` = n >= 1."""
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay}")
    if num_updates < 1:
        raise ValueError(f"num_updates must be >= 1, got {num_updates}")
    return min(decay, (1.0 + num_updates) / (10.0 + num_updates))


class EMA:
    """A frozen copy of ``model`` (``self.model``, eval mode) whose weights track ``model``'s.

    Args:
        model: the trained module (its current weights are the average's start).
        decay: :math:`\\mu` in [0, 1).
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        ema_decay_at(decay, 1)  # validates decay
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, num_updates: int) -> None:
        r"""One EMA step after optimiser step ``num_updates`` (>= 1):
        :math:`\bar\theta \leftarrow \bar\theta + (1-\mu_n)(\theta - \bar\theta)` (a lerp)."""
        weight = 1.0 - ema_decay_at(self.decay, num_updates)
        shadow = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        if len(shadow) != len(params):
            raise ValueError("model does not have the EMA copy's parameters")
        torch._foreach_lerp_(shadow, params, weight)  # one fused kernel for all parameters
        for s, b in zip(self.model.buffers(), model.buffers(), strict=True):
            s.copy_(b)
