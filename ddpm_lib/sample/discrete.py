r"""The discrete samplers: ancestral sampling (Algorithm 2) and DDIM on the T steps of the
schedule, and Langevin dynamics for a score function."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import torch

from .._validate import check_choice, check_tensor
from ..diffusion import VARIANCES, Diffusion, randn_like
from .base import (
    Guide,
    _start,
    ddim_timesteps,
    make_guide,
    resolve_threshold,
    threshold_x0,
)

__all__ = ["Trajectory", "ancestral", "ddim", "langevin"]


class Trajectory(NamedTuple):
    r"""What :func:`ancestral` kept on the way down (for the denoising widgets).

    ``samples``: the final samples ``[n, *shape]``; ``steps``: the kept ``t`` values ``[K]``
    (descending); ``x_t``: the state *before* each kept step ``[K, n, *shape]``; ``x0_pred``:
    :math:`\hat x_0(x_t, t)` at each kept step, clamped to [-1, 1] for display, ``[K, n, *shape]``.
    """

    samples: torch.Tensor
    steps: torch.Tensor
    x_t: torch.Tensor
    x0_pred: torch.Tensor


def _eps(guide: Guide, diffusion: Diffusion, x, t: int) -> torch.Tensor:
    """The (guided) prediction at step ``t`` for the whole batch, in the state's dtype."""
    t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
    return guide(x, t_batch, float(1.0 - diffusion.alpha_bars[t]) ** 0.5)


def _progress(steps: Iterable, progress: bool, desc: str) -> Iterable:
    if not progress:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, desc=desc)


def _default_keep(T: int) -> list[int]:
    return sorted({T, *(max(1, round(T * k / 10)) for k in range(1, 10)), 1}, reverse=True)


@torch.no_grad()
def ancestral(
    model: Callable,
    diffusion: Diffusion,
    n: int | None = None,
    variance: str = "beta",
    labels: torch.Tensor | int | None = None,
    guidance_scale: float = 1.0,
    generator: torch.Generator | None = None,
    return_trajectory: bool = False,
    keep: Sequence[int] | None = None,
    x_T: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    clip_samples: bool = True,
    clip_x0: bool = False,
    progress: bool = False,
    shape: Sequence[int] | None = None,
    noise: torch.Tensor | None = None,
    classifier: Callable | None = None,
    classifier_scale: float = 1.0,
    threshold: str | None = None,
    dynamic_percentile: float = 0.995,
) -> torch.Tensor | Trajectory:
    r"""Algorithm 2 of Ho et al. (2020), batched: :math:`x_T \sim \mathcal N(0, I)`, then for
    :math:`t = T, \dots, 1`: :math:`x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}
    {\sqrt{1-\bar\alpha_t}}\epsilon_\theta(x_t, t)\big) + \sigma_t z`, with :math:`z = 0` at
    :math:`t = 1`. This is the library's one reverse loop; one step of it is
    :meth:`ddpm_lib.Diffusion.p_sample`.

    Args:
        n: number of samples; may be omitted when ``x_T`` is given.
        variance: :math:`\sigma_t^2` = ``"beta"`` (:math:`\beta_t`) or ``"beta_tilde"``.
        labels: class labels ``[n]`` (or one int) for a conditional model; None = unconditional.
        guidance_scale: classifier-free guidance scale ``s`` (see :func:`guided_eps`).
        return_trajectory: also return the states and :math:`\hat x_0` at the ``keep`` steps
            (default: T, 0.9T, ..., 0.1T, 1).
        x_T: the starting noise ``[n, *shape]``; drawn (float32) if omitted. It sets the shape and
            dtype of the state; it is moved to ``device``.
        device: where to sample; default the model's device (the CPU for a plain function).
        clip_samples: clamp the returned samples to the data range [-1, 1] (``False`` returns the
            raw :math:`x_0`).
        clip_x0: clamp :math:`\hat x_0` to [-1, 1] inside every step and use
            :math:`\tilde\mu_t(x_t, \hat x_0)` as the mean. Ho et al.'s released code does this,
            Algorithm 2 as published does not: off by default, so that the default is the paper's
            algorithm.
        shape: the shape of one sample when ``x_T`` is not given; default ``(1, 28, 28)``.
        noise: optional ``[T, n, *shape]``; ``noise[t - 1]`` is the :math:`z` of the step from
            :math:`x_t` (``noise[0]`` is unused: no noise is added at ``t = 1``).
        classifier: a noise-conditional classifier ``classifier(x_t, t) -> logits`` for
            classifier guidance (Dhariwal & Nichol 2021): every step uses
            :math:`\hat\epsilon = \epsilon_\theta - \sqrt{1-\bar\alpha_t}\,\gamma\,\nabla_{x_t}
            \log p_\phi(y \mid x_t, t)` with :math:`y` = ``labels`` (required) and
            :math:`\gamma` = ``classifier_scale``. The model may be unconditional; with a
            conditional one both guidances apply.
        threshold: what happens to :math:`\hat x_0` inside every step: ``"none"``, ``"static"``
            (clamp to [-1, 1]) or ``"dynamic"`` (Imagen's, at ``dynamic_percentile``; see
            :func:`threshold_x0`); the step then uses :math:`\tilde\mu_t(x_t, \hat x_0)`. When
            given it overrides ``clip_x0`` (``clip_x0=True`` is ``threshold="static"``).

    Returns:
        samples ``[n, *shape]``, or a :class:`Trajectory` if ``return_trajectory``.
    """
    check_choice("variance", variance, VARIANCES)
    threshold = resolve_threshold(threshold, clip_x0)
    x, dev = _start(model, n, shape, x_T, generator, device)
    guide = make_guide(model, x.shape[0], labels, guidance_scale, classifier, classifier_scale, dev)
    if noise is not None and tuple(check_tensor("noise", noise).shape) != (diffusion.T, *x.shape):
        raise ValueError(
            f"noise must have shape {[diffusion.T, *x.shape]}, got {list(noise.shape)}"
        )
    keep_set = set(_default_keep(diffusion.T) if keep is None else keep)
    if any(not 1 <= k <= diffusion.T for k in keep_set):
        raise ValueError(f"keep must hold steps in [1, {diffusion.T}], got {sorted(keep_set)}")
    kept_t, kept_x, kept_x0 = [], [], []
    for t in _progress(range(diffusion.T, 0, -1), progress, "ancestral sampling"):
        eps = _eps(guide, diffusion, x, t)
        if threshold != "none":
            x0_hat = threshold_x0(
                diffusion.predict_x0_from_eps(x, t, eps), threshold, dynamic_percentile
            )
            eps = diffusion.eps_from_x0(x, t, x0_hat)
        if return_trajectory and t in keep_set:
            kept_t.append(t)
            kept_x.append(x.cpu())
            kept_x0.append(diffusion.predict_x0_from_eps(x, t, eps).clamp(-1, 1).cpu())
        z = None if noise is None else noise[t - 1]
        x = diffusion.p_sample_from_eps(x, t, eps, variance, z, generator, False)
    samples = x.clamp(-1.0, 1.0) if clip_samples else x
    if not return_trajectory:
        return samples
    return Trajectory(samples, torch.tensor(kept_t), torch.stack(kept_x), torch.stack(kept_x0))


@torch.no_grad()
def ddim(
    model: Callable,
    diffusion: Diffusion,
    n: int | None = None,
    steps: int = 50,
    eta: float = 0.0,
    labels: torch.Tensor | int | None = None,
    guidance_scale: float = 1.0,
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    clip_samples: bool = True,
    clip_x0: bool = True,
    progress: bool = False,
    shape: Sequence[int] | None = None,
    classifier: Callable | None = None,
    classifier_scale: float = 1.0,
    threshold: str | None = None,
    dynamic_percentile: float = 0.995,
) -> torch.Tensor:
    r"""DDIM sampling (Song, Meng & Ermon 2021, Eq. 12) on the sub-sequence of
    :func:`ddim_timesteps`; from :math:`\tau_i = t` to :math:`\tau_{i-1} = s` (with
    :math:`\tau_0 = 0`, :math:`\bar\alpha_0 = 1`):

    .. math::
        x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1 - \bar\alpha_s - \sigma^2}\;\epsilon_\theta
        + \sigma z,\qquad \sigma = \eta\sqrt{\frac{1-\bar\alpha_s}{1-\bar\alpha_t}}
        \sqrt{1 - \frac{\bar\alpha_t}{\bar\alpha_s}}

    with :math:`\hat x_0` from :meth:`ddpm_lib.Diffusion.predict_x0_from_eps`. ``eta = 0`` is
    deterministic (the probability-flow-like DDIM); ``eta = 1`` with ``steps = T`` is ancestral
    sampling with :math:`\sigma_t^2 = \tilde\beta_t`.

    Arguments shared with :func:`ancestral` (``n``, ``labels``, ``guidance_scale``,
    ``classifier``, ``classifier_scale``, ``threshold``, ``dynamic_percentile``, ``x_T``,
    ``shape``, ``device``, ``clip_samples``) mean the same. ``clip_x0`` is on by default here,
    as in common DDIM implementations: it clamps :math:`\hat x_0` to [-1, 1] at every step and
    recomputes :math:`\epsilon` from it (:meth:`ddpm_lib.Diffusion.eps_from_x0`). Without it an
    imperfect model drifts out of the data range: :math:`\hat x_0` divides the model's error by
    :math:`\sqrt{\bar\alpha_t}`, which is tiny at large ``t``, and the update carries
    :math:`\hat x_0` forward (at ``eta = 0`` with no fresh noise to wash the error out).
    Returns ``[n, *shape]``.
    """
    if not 0.0 <= float(eta) <= 1.0:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    tau = ddim_timesteps(diffusion.T, steps)
    threshold = resolve_threshold(threshold, clip_x0)
    x, dev = _start(model, n, shape, x_T, generator, device)
    guide = make_guide(model, x.shape[0], labels, guidance_scale, classifier, classifier_scale, dev)
    ab = diffusion.alpha_bars
    pairs = list(zip(tau.flip(0).tolist(), [*tau.flip(0).tolist()[1:], 0], strict=True))
    for t, s in _progress(pairs, progress, f"DDIM ({steps} steps)"):
        eps = _eps(guide, diffusion, x, t)
        x0_hat = diffusion.predict_x0_from_eps(x, t, eps)
        if threshold != "none":
            x0_hat = threshold_x0(x0_hat, threshold, dynamic_percentile)
            eps = diffusion.eps_from_x0(x, t, x0_hat)
        ab_t, ab_s = float(ab[t]), float(ab[s])
        sigma = float(eta) * ((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)) ** 0.5
        # The root's argument is >= 0 in exact arithmetic; max() keeps rounding from flipping it.
        x = ab_s**0.5 * x0_hat + max(1 - ab_s - sigma**2, 0.0) ** 0.5 * eps
        if sigma > 0:
            x = x + sigma * randn_like(x, generator)
    return x.clamp(-1.0, 1.0) if clip_samples else x


@torch.no_grad()
def langevin(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    step_size: float,
    n_steps: int,
    generator: torch.Generator | None = None,
    add_noise: bool = True,
    return_trajectory: bool = False,
) -> torch.Tensor:
    r"""Unadjusted Langevin dynamics (as used by Song & Ermon 2019, Eq. 4) from ``x``:

    .. math:: x_{i+1} = x_i + c\,\nabla_x\log p(x_i) + \sqrt{2c}\,\epsilon_i,\qquad
        \epsilon_i \sim \mathcal N(0, I),\quad i = 0, \dots, n-1

    with :math:`c` = ``step_size`` and :math:`n` = ``n_steps``. As :math:`c \to 0` and
    :math:`n c \to \infty` the law of :math:`x_n` tends to :math:`p`; a finite :math:`c` leaves a
    bias of order :math:`c`. ``add_noise=False`` drops the :math:`\sqrt{2c}\,\epsilon_i` term,
    which leaves gradient ascent on :math:`\log p`: every chain climbs to a mode instead of
    sampling :math:`p`.

    Args:
        score_fn: ``score_fn(x) -> score`` of ``x``'s shape (e.g.
            :meth:`ddpm_lib.toy.GaussianMixture.score`); its output is cast to ``x``'s dtype.
        x: the starting points ``[n, ...]`` (float); the state keeps their dtype and device.
        step_size: :math:`c > 0`.
        n_steps: :math:`n \ge 0` updates.
        generator: every draw of :math:`\epsilon_i` comes from it.
        return_trajectory: return every state, ``[n_steps + 1, n, ...]`` (index 0 = ``x``),
            instead of the final one.

    Returns:
        :math:`x_n` ``[n, ...]``, or the trajectory ``[n_steps + 1, n, ...]``.
    """
    x = check_tensor("x", x)
    if isinstance(step_size, bool) or not isinstance(step_size, int | float) or not step_size > 0:
        raise ValueError(f"step_size must be a number > 0, got {step_size!r}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"n_steps must be an int >= 0, got {n_steps!r}")
    c = float(step_size)
    states = [x]
    for _ in range(n_steps):
        score = score_fn(x)
        if not isinstance(score, torch.Tensor) or score.shape != x.shape:
            got = list(score.shape) if isinstance(score, torch.Tensor) else type(score).__name__
            raise ValueError(
                f"score_fn(x) must return a tensor of shape {list(x.shape)}, got {got}"
            )
        x = x + c * score.to(device=x.device, dtype=x.dtype)
        if add_noise:
            x = x + (2.0 * c) ** 0.5 * randn_like(x, generator)
        if return_trajectory:
            states.append(x)
    return torch.stack(states) if return_trajectory else x
