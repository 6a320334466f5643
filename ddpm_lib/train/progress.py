"""What a training run reports while it runs: :class:`TrainProgress`, handed to the ``callback`` of
:func:`ddpm_lib.train.train` every ``callback_every`` steps, so that a notebook can redraw a live
loss curve and a grid of samples (:class:`ddpm_lib.viz.training.LiveTraining` does both)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from ..diffusion import Diffusion


class TrainProgress(NamedTuple):
    r"""The state of a run at one report.

    ``step``: optimiser steps of the whole run so far; ``step_limit``: the step it stops at (unless
    ``max_seconds`` stops it first); ``losses``: float32 ``[step]``, :math:`L_\text{simple}` of
    every step (a copy); ``seconds``: wall time of this call's training loop so far (the
    callback's own time excluded); ``images_per_sec``: throughput of this call so far;
    ``ema_model``: the EMA U-Net that :func:`~ddpm_lib.train.train` returns, in eval mode on the
    training device: sample with it under ``torch.no_grad()``, never train it; ``diffusion``: its
    schedule; ``final``: True for the last report of the call."""

    step: int
    step_limit: int
    losses: torch.Tensor
    seconds: float
    images_per_sec: float
    ema_model: torch.nn.Module
    diffusion: Diffusion
    final: bool


#: ``callback(progress)``; its return value is ignored.
Callback = Callable[[TrainProgress], object]
