r"""Chapter 4, the trained model at work: what it sees and what it predicts.

* The denoising explorer: for a batch of digits, :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 +
  \sqrt{1-\bar\alpha_t}\,\bar\epsilon_t` (Ho et al. 2020, Eq. 4) with one fixed
  :math:`\bar\epsilon_t` per digit, and the model's guess of the clean digit
  :math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t, t))/\sqrt{\bar\alpha_t}`
  (:meth:`ddpm_lib.Diffusion.predict_x0_from_eps`), one slider position per ``t``.
* One digit's way down through Algorithm 2: the states and predictions that a
  :class:`ddpm_lib.sample.Recorder` keeps as the ``callback`` of :func:`ddpm_lib.sample.ancestral`.

Both are a ``draw_*(fig, ...)`` shown live or as an animation by :func:`ddpm_lib.viz.explore`."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import torch

from .._validate import check_int, check_steps, check_tensor
from ..diffusion import Diffusion, EpsModel
from ..sample import Recorder
from ._live import explore
from .common import frame_index
from .images import draw_image


class Denoised(NamedTuple):
    r"""``steps`` (LongTensor ``[K]``, increasing), ``x_t`` ``[K, B, C, H, W]`` (the noised digits
    at each step) and ``x0_pred`` ``[K, B, C, H, W]`` (:math:`\hat x_0`, clamped to [-1, 1] for
    display), on the CPU."""

    steps: torch.Tensor
    x_t: torch.Tensor
    x0_pred: torch.Tensor


def denoise_steps(
    diffusion: Diffusion, model: EpsModel, x0: torch.Tensor, noise: torch.Tensor, ts: Sequence[int]
) -> Denoised:
    r"""Noise the digits ``x0`` ``[B, C, H, W]`` to every step of ``ts`` (strictly increasing, in
    ``[1, T]``) with the **same** :math:`\bar\epsilon` ``noise`` (``x0``'s shape) and ask the model
    for :math:`\hat x_0` at each: ``len(ts)`` model calls of the batch, no gradients. The model's
    numbers are the library's (:meth:`ddpm_lib.Diffusion.q_sample`,
    :meth:`~ddpm_lib.Diffusion.predict_x0_from_eps`); this only collects them for display."""
    x0, noise = check_tensor("x0", x0), check_tensor("noise", noise)
    if x0.dim() != 4:
        raise ValueError(f"x0 must be a batch of images [B, C, H, W], got {list(x0.shape)}")
    if noise.shape != x0.shape:
        raise ValueError(f"noise must have x0's shape {list(x0.shape)}, got {list(noise.shape)}")
    steps = check_steps(ts, 1, diffusion.T)
    kept_x, kept_x0 = [], []
    with torch.no_grad():
        for t in steps:
            x_t = diffusion.q_sample(x0, t, noise=noise)
            eps = diffusion.call_model(model, x_t, t)
            kept_x.append(x_t.cpu())
            kept_x0.append(diffusion.predict_x0_from_eps(x_t, t, eps).clamp(-1, 1).cpu())
    return Denoised(torch.tensor(steps), torch.stack(kept_x), torch.stack(kept_x0))


def draw_denoising(fig, t: int, *, frames: Denoised, n_show: int = 8) -> None:
    r"""Two rows for the first ``n_show`` digits of ``frames`` at step ``t`` (one of
    ``frames.steps``): top :math:`x_t`, bottom the model's :math:`\hat x_0`."""
    check_int("n_show", n_show, 1)
    k = frame_index(frames.steps, t, "t", "the kept steps")
    n = min(n_show, frames.x_t.shape[1])
    axes = fig.subplots(2, n, squeeze=False)
    for i in range(n):
        for row, images in enumerate((frames.x_t, frames.x0_pred)):
            draw_image(axes[row, i], images[k, i])
            axes[row, i].set_axis_off()
    axes[0, 0].set_title("$x_t$", fontsize=9, loc="left")
    axes[1, 0].set_title(r"$\hat x_0(x_t, t)$", fontsize=9, loc="left")
    fig.suptitle(f"$t = {t}$", fontsize=11)


def explore_denoising(frames: Denoised, n_show: int = 8, static: bool | None = None):
    """The denoising explorer (:func:`draw_denoising`) with a ``t`` slider over ``frames.steps``;
    in the static book an animation over them (see :func:`ddpm_lib.viz.explore`)."""
    check_int("n_show", n_show, 1)
    draw = partial(draw_denoising, frames=frames, n_show=n_show)
    width = 1.1 * min(n_show, frames.x_t.shape[1]) + 0.4
    return explore(draw, {"t": frames.steps.tolist()}, "t", figsize=(width, 2.6), static=static)


def _check_index(index: int, n: int) -> None:
    check_int("index", index, 0, n - 1)


def draw_trajectory(
    fig, t: int, *, trajectory: Recorder, samples: torch.Tensor, index: int = 0
) -> None:
    r"""Sample ``index`` of an Algorithm 2 run at its recorded step ``t``: the state :math:`x_t`,
    the prediction :math:`\hat x_0(x_t, t)` (clamped to [-1, 1] for display) and, for
    comparison, the final sample. ``trajectory``: the :class:`~ddpm_lib.sample.Recorder` that was
    the run's callback; ``samples`` ``[n, 1, 28, 28]``: what the run returned."""
    _check_index(index, samples.shape[0])
    k = frame_index(trajectory.t, t, "t", "the kept steps")
    step = trajectory.steps[k]
    panels = [(step.x_t[index], f"$x_{{{t}}}$"),
              (step.x0_hat[index].clamp(-1.0, 1.0), r"$\hat x_0$ at this step"),
              (samples[index], "final sample")]  # fmt: skip
    for i, (image, title) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        draw_image(ax, image)
        ax.set_axis_off()
        ax.set_title(title, fontsize=9)


def explore_trajectory(
    trajectory: Recorder, samples: torch.Tensor, index: int = 0, static: bool | None = None
):
    """One digit's way down (:func:`draw_trajectory`), a ``t`` slider over the recorded steps
    from ``T`` down to 1; in the static book an animation in that order."""
    _check_index(index, samples.shape[0])
    draw = partial(draw_trajectory, trajectory=trajectory, samples=samples, index=index)
    return explore(draw, {"t": trajectory.t.tolist()}, "t", figsize=(6.0, 2.3), static=static)
