r"""The discrete samplers on the T steps of the schedule: ancestral sampling (Algorithm 2 of Ho et
al. 2020) and DDIM (Song, Meng & Ermon 2021) on a sub-sequence of them. Both follow the contract
of :mod:`ddpm_lib.sample`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .._validate import check_choice, check_int, check_number
from ..diffusion import VARIANCES, Diffusion
from .base import Step, check_noise, progress_bar, start
from .guidance import make_guide


def ddim_timesteps(T: int, steps: int) -> torch.Tensor:
    r"""The DDIM sub-sequence :math:`\tau_1 < \dots < \tau_S = T`, evenly spaced over ``1..T``:
    :math:`\tau_i = \mathrm{round}(iT/S)`. Returns LongTensor ``[S]``."""
    steps = check_int("steps", steps, 1, T)
    return torch.tensor([round(i * T / steps) for i in range(1, steps + 1)], dtype=torch.long)


@torch.no_grad()
def ancestral(
    model: Callable,
    diffusion: Diffusion,
    *,
    n: int | None = None,
    shape: Sequence[int] | None = None,
    x_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    labels: torch.Tensor | int | None = None,
    guidance_scale: float = 1.0,
    classifier: Callable | None = None,
    classifier_scale: float = 1.0,
    threshold: str = "none",
    dynamic_percentile: float = 0.995,
    clip_samples: bool = True,
    callback: Callable[[Step], None] | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    variance: str = "beta",
) -> torch.Tensor:
    r"""Algorithm 2 of Ho et al. (2020), batched: :math:`x_T \sim \mathcal N(0, I)`, then for
    :math:`t = T, \dots, 1`: :math:`x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}
    {\sqrt{1-\bar\alpha_t}}\epsilon_\theta(x_t, t)\big) + \sigma_t z`, with :math:`z = 0` at
    :math:`t = 1`. It runs all T steps (T network calls); one step of it is
    :meth:`ddpm_lib.Diffusion.p_sample_from_eps`.

    The arguments of the contract are in :mod:`ddpm_lib.sample`; ``noise`` is ``[T, n, *shape]``
    (``noise[t - 1]`` is the :math:`z` of the step from :math:`x_t`; ``noise[0]`` is unused). With
    ``threshold`` other than ``"none"`` (Ho et al.'s released code clamps, Algorithm 2 as published
    does not) the step's mean is :math:`\tilde\mu_t(x_t, \hat x_0)` of the thresholded
    :math:`\hat x_0`. Own option: ``variance``, :math:`\sigma_t^2` = ``"beta"``
    (:math:`\beta_t`) or ``"beta_tilde"`` (:math:`\tilde\beta_t`). Returns ``[n, *shape]``."""
    check_choice("variance", variance, VARIANCES)
    x, dev = start(model, n, shape, x_T, generator, device)
    guide = make_guide(model, x.shape[0], diffusion=diffusion, labels=labels,
                       guidance_scale=guidance_scale, classifier=classifier,
                       classifier_scale=classifier_scale, threshold=threshold,
                       dynamic_percentile=dynamic_percentile, device=dev)  # fmt: skip
    noise = check_noise(noise, diffusion.T, x)
    for t in progress_bar(range(diffusion.T, 0, -1), progress, "ancestral sampling"):
        eps = guide.at_step(x, t, diffusion.alpha_bars[t])
        if threshold != "none" or callback is not None:
            x0_hat = diffusion.predict_x0_from_eps(x, t, eps)
            if callback is not None:
                callback(Step(t, x, x0_hat))
            if threshold != "none":
                eps = diffusion.eps_from_x0(x, t, guide.threshold(x0_hat))
        z = None if noise is None or t == 1 else noise[t - 1]
        x = diffusion.p_sample_from_eps(x, t, eps, variance, z, generator)
    return x.clamp(-1.0, 1.0) if clip_samples else x


@torch.no_grad()
def ddim(
    model: Callable,
    diffusion: Diffusion,
    *,
    n: int | None = None,
    shape: Sequence[int] | None = None,
    x_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    labels: torch.Tensor | int | None = None,
    guidance_scale: float = 1.0,
    classifier: Callable | None = None,
    classifier_scale: float = 1.0,
    threshold: str = "none",
    dynamic_percentile: float = 0.995,
    clip_samples: bool = True,
    callback: Callable[[Step], None] | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    steps: int = 50,
    eta: float = 0.0,
) -> torch.Tensor:
    r"""DDIM sampling (Song, Meng & Ermon 2021, Eq. 12) on the sub-sequence of
    :func:`ddim_timesteps`; from :math:`\tau_i = t` to :math:`\tau_{i-1} = s` (with
    :math:`\tau_0 = 0`, :math:`\bar\alpha_0 = 1`), by :meth:`ddpm_lib.Diffusion.ddim_step`:

    .. math::
        x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1 - \bar\alpha_s - \sigma^2}\;\epsilon_\theta
        + \sigma z,\qquad \sigma = \eta\sqrt{\frac{1-\bar\alpha_s}{1-\bar\alpha_t}}
        \sqrt{1 - \frac{\bar\alpha_t}{\bar\alpha_s}}

    with :math:`\hat x_0` from :meth:`ddpm_lib.Diffusion.predict_x0_from_eps`. ``eta = 0`` is
    deterministic (the probability-flow-like DDIM); ``eta = 1`` with ``steps = T`` is ancestral
    sampling with :math:`\sigma_t^2 = \tilde\beta_t`.

    The arguments of the contract are in :mod:`ddpm_lib.sample`; ``noise`` is ``[steps, n,
    *shape]`` (``noise[k - 1]`` is the :math:`z` of the step from :math:`\tau_k`). Own options:
    ``steps`` (network calls, in ``[1, T]``) and ``eta`` in ``[0, 1]``. ``threshold="static"``
    is what common DDIM implementations do: an imperfect model drifts out of the data range
    without it, since :math:`\hat x_0` divides the model's error by :math:`\sqrt{\bar\alpha_t}`,
    tiny at large ``t``, and the update carries :math:`\hat x_0` forward (at ``eta = 0`` with no
    fresh noise to wash the error out); :math:`\epsilon` is then recomputed from it
    (:meth:`ddpm_lib.Diffusion.eps_from_x0`). Returns ``[n, *shape]``."""
    eta = check_number("eta", eta, 0.0, 1.0)
    tau = ddim_timesteps(diffusion.T, steps)
    x, dev = start(model, n, shape, x_T, generator, device)
    guide = make_guide(model, x.shape[0], diffusion=diffusion, labels=labels,
                       guidance_scale=guidance_scale, classifier=classifier,
                       classifier_scale=classifier_scale, threshold=threshold,
                       dynamic_percentile=dynamic_percentile, device=dev)  # fmt: skip
    noise = check_noise(noise, steps, x)
    times = tau.flip(0).tolist()
    pairs = list(zip(range(steps, 0, -1), times, [*times[1:], 0], strict=True))
    for k, t, s in progress_bar(pairs, progress, f"DDIM ({steps} steps)"):
        eps = guide.at_step(x, t, diffusion.alpha_bars[t])
        x0_hat = diffusion.predict_x0_from_eps(x, t, eps)
        if callback is not None:
            callback(Step(t, x, x0_hat))
        if threshold != "none":
            x0_hat = guide.threshold(x0_hat)
            eps = diffusion.eps_from_x0(x, t, x0_hat)
        z = None if noise is None or s == 0 else noise[k - 1]
        x = diffusion.ddim_step(x0_hat, eps, t, s, eta, z, generator)
    return x.clamp(-1.0, 1.0) if clip_samples else x
