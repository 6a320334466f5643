r"""The score and Tweedie's formula, measured against an exact mixture (chapter 5).

* :func:`tweedie_x0` -- Tweedie's denoiser from *any* score at a given :math:`\bar\alpha`
  (no :class:`~ddpm_lib.Diffusion` needed: the 1-D checks of the chapter pick :math:`\bar\alpha`
  freely); :meth:`ddpm_lib.Diffusion.predict_x0_from_score` is the same formula indexed by ``t``.
* :func:`score_error` -- how far a network's score :math:`-\epsilon_\theta/\sqrt{1-\bar\alpha_t}`
  is from the exact score of the noised mixture :math:`q_t`, on points drawn from :math:`q_t`.

Re-exported by :mod:`ddpm_lib.toy`. Computed in float64 on the CPU."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch

from .._validate import check_int, check_same_shape, check_steps
from .mixture import GaussianMixture, check_alpha_bar

if TYPE_CHECKING:
    from ..diffusion import Diffusion


def tweedie_x0(
    x_t: torch.Tensor, alpha_bar: float | torch.Tensor, score: torch.Tensor
) -> torch.Tensor:
    r"""Tweedie's formula (Robbins 1956; Efron 2011, Eq. 2.8) for the diffusion kernel
    :math:`q(\mathbf x_t \mid \mathbf x_0) = \mathcal N(\sqrt{\bar\alpha}\,\mathbf x_0,
    (1-\bar\alpha)\mathbf I)` (Ho et al. 2020, Eq. 4):

    .. math:: \hat{\mathbf x}_0(\mathbf x_t) = \mathbb E[\mathbf x_0 \mid \mathbf x_t]
        = \frac{\mathbf x_t + (1-\bar\alpha)\,\nabla\log q_t(\mathbf x_t)}{\sqrt{\bar\alpha}}

    Args:
        x_t: points ``[B, ...]``.
        alpha_bar: :math:`\bar\alpha`, one number in (0, 1] (at 0 the data is forgotten and
            :math:`\mathbf x_0` cannot be recovered).
        score: :math:`\nabla\log q_t(\mathbf x_t)`, the shape of ``x_t`` (exact, e.g.
            ``mixture.noised(alpha_bar).score(x_t)``, or a network's).

    Returns:
        :math:`\mathbb E[\mathbf x_0 \mid \mathbf x_t]`, ``[B, ...]`` in the promoted dtype of
        ``x_t`` and ``score``.
    """
    for name, v in (("x_t", x_t), ("score", score)):
        if not isinstance(v, torch.Tensor) or not v.dtype.is_floating_point:
            raise TypeError(f"{name} must be a floating-point torch.Tensor, got {type(v).__name__}")
    check_same_shape("x_t", x_t, "score", score)
    ab = check_alpha_bar(alpha_bar)
    if not float(ab) > 0.0:
        raise ValueError(f"alpha_bar must be in (0, 1] (Tweedie divides by its root), got {ab}")
    ab = ab.to(device=x_t.device)
    return (x_t + (1.0 - ab) * score) / ab.sqrt()


class ScoreError(NamedTuple):
    r"""Per step ``t``: ``ts`` int64 ``[K]``; ``rmse`` float64 ``[K]``,
    :math:`\sqrt{\mathbb E_{q_t}\|\mathbf s_\theta - \nabla\log q_t\|^2}`; ``rel_rmse`` float64
    ``[K]``, the same divided by :math:`\sqrt{\mathbb E_{q_t}\|\nabla\log q_t\|^2}`."""

    ts: torch.Tensor
    rmse: torch.Tensor
    rel_rmse: torch.Tensor


@torch.no_grad()
def score_error(
    model: Callable,
    diffusion: Diffusion,
    mixture: GaussianMixture,
    ts: Sequence[int],
    n: int = 2000,
    generator: torch.Generator | None = None,
) -> ScoreError:
    r"""The error of an ε-model's score against the exact one, at each step of ``ts``.

    The network's score estimate is :math:`\mathbf s_\theta(\mathbf x_t, t) =
    -\epsilon_\theta(\mathbf x_t, t)/\sqrt{1-\bar\alpha_t}`
    (:meth:`ddpm_lib.Diffusion.score_from_eps`;
    exact for the optimal ε by Tweedie's formula); the reference is the exact score of the noised
    mixture, ``mixture.noised(alpha_bar_t).score``. At each ``t``, ``n`` fresh points
    :math:`\mathbf x_t \sim q_t` (``mixture.sample`` then :meth:`~ddpm_lib.Diffusion.q_sample`),
    and the average is over those points, i.e. under :math:`q_t`, the weighting of denoising score
    matching (Vincent 2011):

    .. math:: \mathrm{rmse}_t = \Big(\frac1n\sum_{i=1}^n \big\|\mathbf s_\theta(\mathbf x_t^{(i)},
        t) - \nabla\log q_t(\mathbf x_t^{(i)})\big\|^2\Big)^{1/2},\qquad
        \mathrm{rel\_rmse}_t = \mathrm{rmse}_t \Big/ \Big(\frac1n\sum_{i=1}^n
        \big\|\nabla\log q_t(\mathbf x_t^{(i)})\big\|^2\Big)^{1/2}

    (Euclidean norm over the ``D`` coordinates). The exact score grows like
    :math:`1/\sqrt{\bar\alpha_t s_k^2 + 1 - \bar\alpha_t}`, so at small ``t`` the absolute error is
    large for any network; ``rel_rmse`` compares the steps fairly.

    Args:
        model: ``model(x_t [n, D], t [n]) -> eps [n, D]`` (e.g. :class:`ddpm_lib.models.MLPEps`,
            or ``mixture.eps_model(diffusion)``); called on float64 points, under ``no_grad``.
        ts: strictly increasing steps in ``[1, T]``.
        n: points per step, >= 2.
        generator: every draw comes from it.

    Returns:
        :class:`ScoreError` ``(ts [K], rmse [K], rel_rmse [K])``.
    """
    if not isinstance(mixture, GaussianMixture):
        raise ValueError(f"mixture must be a toy.GaussianMixture, got {type(mixture).__name__}")
    if not callable(model):
        raise ValueError(f"model must be callable (an ε-model), got {type(model).__name__}")
    steps = check_steps(ts, 1, diffusion.T)
    check_int("n", n, 2)
    rmse, rel = [], []
    for t in steps:
        x_t = diffusion.q_sample(mixture.sample(n, generator), t, generator=generator)
        eps = diffusion.call_model(model, x_t, t).detach().cpu().double()
        s_model = diffusion.score_from_eps(eps, t)
        s_true = mixture.noised(diffusion.alpha_bars[t]).score(x_t)
        err2 = (s_model - s_true).pow(2).sum(1).mean()
        rmse.append(float(err2.sqrt()))
        rel.append(float((err2 / s_true.pow(2).sum(1).mean()).sqrt()))
    return ScoreError(
        torch.tensor(steps),
        torch.tensor(rmse, dtype=torch.float64),
        torch.tensor(rel, dtype=torch.float64),
    )
