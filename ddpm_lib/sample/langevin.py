r"""Langevin dynamics for a score function (Song & Ermon 2019): the sampler of chapter 5 that
needs only :math:`\nabla_x\log p`, no diffusion. Its options have the names of the other
samplers' (``steps``, ``generator``, ``noise``, ``callback``)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._validate import check_int, check_number, check_tensor
from ..diffusion import randn_like
from .base import Step, check_noise


@torch.no_grad()
def langevin(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    step_size: float,
    steps: int,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    add_noise: bool = True,
    callback: Callable[[Step], None] | None = None,
) -> torch.Tensor:
    r"""Unadjusted Langevin dynamics (as used by Song & Ermon 2019, Eq. 4) from ``x``:

    .. math:: x_{i+1} = x_i + c\,\nabla_x\log p(x_i) + \sqrt{2c}\,\epsilon_i,\qquad
        \epsilon_i \sim \mathcal N(0, I),\quad i = 0, \dots, n-1

    with :math:`c` = ``step_size`` and :math:`n` = ``steps``. As :math:`c \to 0` and
    :math:`n c \to \infty` the law of :math:`x_n` tends to :math:`p`; a finite :math:`c` leaves a
    bias of order :math:`c`. ``add_noise=False`` drops the :math:`\sqrt{2c}\,\epsilon_i` term,
    which leaves gradient ascent on :math:`\log p`: every chain climbs to a mode instead of
    sampling :math:`p`.

    Args:
        score_fn: ``score_fn(x) -> score`` of ``x``'s shape (e.g.
            :meth:`ddpm_lib.toy.GaussianMixture.score`); its output is cast to ``x``'s dtype.
        x: the starting points ``[n, ...]`` (float); the state keeps their dtype and device.
        step_size: :math:`c > 0`.
        steps: :math:`n \ge 0` updates.
        generator: every draw of :math:`\epsilon_i` comes from it.
        noise: optional ``[steps, n, ...]``; as in every sampler, ``noise[k - 1]`` is the draw of
            the k-th step counted from the end (:math:`\epsilon_i` = ``noise[steps - 1 - i]``).
        callback: called before every update with :class:`~ddpm_lib.sample.Step` ``(t = k, the
            number of steps left, x_t = x_i, x0_hat = None)``; a
            :class:`~ddpm_lib.sample.Recorder` keeps the path.

    Returns:
        :math:`x_n` ``[n, ...]``.
    """
    x = check_tensor("x", x)
    c = check_number("step_size", step_size, lo=0.0, lo_open=True)
    steps = check_int("steps", steps, lo=0)
    noise = check_noise(noise, steps, x)
    for k in range(steps, 0, -1):
        if callback is not None:
            callback(Step(k, x, None))
        score = score_fn(x)
        if not isinstance(score, torch.Tensor) or score.shape != x.shape:
            got = list(score.shape) if isinstance(score, torch.Tensor) else type(score).__name__
            raise ValueError(
                f"score_fn(x) must return a tensor of shape {list(x.shape)}, got {got}"
            )
        x = x + c * score.to(device=x.device, dtype=x.dtype)
        if add_noise:
            z = randn_like(x, generator) if noise is None else noise[k - 1]
            x = x + (2.0 * c) ** 0.5 * z
    return x
