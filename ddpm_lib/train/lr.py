r"""Learning-rate schedules as factors for torch's :class:`~torch.optim.lr_scheduler.LambdaLR`, the
one learning-rate mechanism of every trainer: ``LambdaLR(optimizer, factor)`` sets the rate of
optimiser step :math:`s` (0-based) to :math:`\eta \cdot` ``factor(s)``, and ``scheduler.step()``
after each ``optimizer.step()`` moves it on."""

from __future__ import annotations

import math
from collections.abc import Callable


def lr_warmup(steps: int) -> Callable[[int], float]:
    r"""Linear warm-up over ``steps`` optimiser steps, then constant:
    :math:`\min(1, (s + 1)/s_\text{warm})` (1 throughout when ``steps`` is 0)."""
    return lambda s: min(1.0, (s + 1) / steps) if steps else 1.0


def lr_cosine(steps: int) -> Callable[[int], float]:
    r"""Cosine decay to 0 over ``steps`` optimiser steps (Loshchilov & Hutter 2017, one cycle, no
    restart): :math:`\tfrac12\big(1 + \cos(\pi s / S)\big)`."""
    return lambda s: 0.5 * (1.0 + math.cos(math.pi * s / steps))
