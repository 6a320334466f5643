r"""Algorithm 1 on toy data in seconds: fit a small ε-network (e.g.
:class:`ddpm_lib.models.MLPEps`) to a :class:`ddpm_lib.toy.GaussianMixture` or to a tensor of points, with the library's
:math:`L_\text{simple}` (:func:`ddpm_lib.bound.loss_simple`) and Adam.

The image trainer :func:`ddpm_lib.train.train` carries what a long run needs (checkpoints, EMA,
resumption, a config saved with the weights); a 2-D fit of a few thousand steps needs none of it,
so :func:`fit_eps` is one readable loop. Minimising :math:`L_\text{simple}` is denoising score
matching (Vincent 2011): the optimum is :math:`\epsilon^*(\mathbf x_t, t) =
-\sqrt{1-\bar\alpha_t}\,\nabla\log q_t(\mathbf x_t)`, which :func:`ddpm_lib.toy.score_error`
compares the fitted network with."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from .._validate import check_int, check_number
from ..bound import loss_simple
from ..diffusion import Diffusion
from ..toy import GaussianMixture
from .lr import lr_cosine


class FitResult(NamedTuple):
    r"""``losses``: float32 ``[steps]``, :math:`L_\text{simple}` of every step's minibatch;
    ``seconds``: wall time of the loop (callbacks excluded); ``steps``: optimiser steps taken."""

    losses: torch.Tensor
    seconds: float
    steps: int


class FitProgress(NamedTuple):
    """What ``callback`` receives: ``step`` (steps done), ``steps`` (the total), ``losses``
    (float32 ``[step]``, a copy), ``seconds`` (loop time so far), ``model`` (the model being
    trained: evaluate it under ``torch.no_grad()``), ``final`` (True at the last step)."""

    step: int
    steps: int
    losses: torch.Tensor
    seconds: float
    model: nn.Module
    final: bool


def _batcher(data: object, batch_size: int, dtype: torch.dtype, device: torch.device):
    """``draw(generator) -> x0 [batch_size, D]``: fresh mixture samples, or rows of a tensor drawn
    uniformly with replacement."""
    if isinstance(data, GaussianMixture):
        return lambda gen: data.sample(batch_size, gen).to(device=device, dtype=dtype)
    if not isinstance(data, torch.Tensor) or not data.dtype.is_floating_point:
        raise ValueError(
            "data must be a toy.GaussianMixture or a float tensor [N, D], got "
            f"{type(data).__name__}"
        )
    if data.dim() != 2 or data.shape[0] < 1 or data.shape[1] < 1:
        raise ValueError(f"data must have shape [N, D] with N, D >= 1, got {list(data.shape)}")
    if not bool(torch.isfinite(data).all()):
        raise ValueError("data must be finite (it holds NaN or inf)")
    points = data.detach().to(device=device, dtype=dtype)

    def draw(gen):
        idx = torch.randint(points.shape[0], (batch_size,), generator=gen)
        return points[idx.to(device)]

    return draw


def fit_eps(
    model: nn.Module,
    diffusion: Diffusion,
    data: GaussianMixture | torch.Tensor,
    steps: int,
    batch_size: int = 512,
    lr: float = 5e-3,
    generator: torch.Generator | None = None,
    callback: Callable[[FitProgress], object] | None = None,
    callback_every: int = 100,
) -> FitResult:
    r"""Train ``model`` in place with Algorithm 1 of Ho et al. (2020): at every step a minibatch
    :math:`\mathbf x_0` (``batch_size`` points), :math:`t \sim \mathcal U\{1,\dots,T\}` and
    :math:`\bar\epsilon_t \sim \mathcal N(\mathbf 0, \mathbf I)` per point, and one Adam step
    (Kingma & Ba 2015) on

    .. math:: L_\text{simple} = \big\|\bar\epsilon_t - \epsilon_\theta\big(\sqrt{\bar\alpha_t}\,
        \mathbf x_0 + \sqrt{1-\bar\alpha_t}\,\bar\epsilon_t,\ t\big)\big\|^2

    (Eq. 14; :func:`ddpm_lib.bound.loss_simple`, averaged over the batch and the ``D``
    coordinates). The learning rate decays from ``lr`` to 0 on a cosine (torch's ``LambdaLR`` with :func:`ddpm_lib.train.lr.lr_cosine`): the
    late small steps average out the minibatch noise, which matters for a score field (no EMA
    copy is kept).

    Args:
        model: an ε-network ``model(x_t [B, D], t [B]) -> [B, D]`` (an ``nn.Module``); trained
            in place, left in eval mode.
        diffusion: the :class:`~ddpm_lib.Diffusion` (its ``T`` and schedule).
        data: a :class:`~ddpm_lib.toy.GaussianMixture` (a fresh minibatch of its samples every
            step) or a float tensor ``[N, D]`` (rows drawn uniformly with replacement).
        steps: optimiser steps, >= 1.
        batch_size: points per step, >= 1.
        lr: peak learning rate, > 0.
        generator: every random draw (minibatch, ``t``, noise) comes from it: with a seeded
            generator and a seeded model initialisation the run is repeatable bit for bit (on one
            machine and thread count). A CPU generator.
        callback: ``callback(FitProgress)`` every ``callback_every`` steps and after the last.
        callback_every: >= 1.

    Returns:
        :class:`FitResult` ``(losses [steps], seconds, steps)``.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    if not isinstance(diffusion, Diffusion):
        raise ValueError(f"diffusion must be a ddpm_lib.Diffusion, got {type(diffusion).__name__}")
    check_int("steps", steps, 1)
    check_int("batch_size", batch_size, 1)
    check_int("callback_every", callback_every, 1)
    check_number("lr", lr, 0, lo_open=True)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable or None, got {type(callback).__name__}")
    draw = _batcher(data, batch_size, params[0].dtype, params[0].device)
    optimiser = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_cosine(steps))
    losses = torch.empty(steps, dtype=torch.float32)
    model.train()
    seconds, start = 0.0, time.perf_counter()
    for step in range(steps):
        x0 = draw(generator)
        loss = loss_simple(diffusion, model, x0, generator=generator)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        losses[step] = loss.detach()
        done = step + 1
        if callback is not None and (done % callback_every == 0 or done == steps):
            seconds += time.perf_counter() - start
            model.eval()
            callback(FitProgress(done, steps, losses[:done].clone(), seconds, model, done == steps))
            model.train()
            start = time.perf_counter()
    seconds += time.perf_counter() - start
    model.eval()
    return FitResult(losses, seconds, steps)
