r"""Continuous-time samplers on the same ε-network as Algorithm 2: the reverse-time SDE by
Euler–Maruyama and the probability-flow ODE by ``scipy.integrate.solve_ivp`` (Song et al. 2021,
Secs. 3–4). Time and schedule follow :class:`ddpm_lib.sde.VPSDE`: :math:`\tau \in [0, 1]`, network
time :math:`t = \tau T` (the ``t`` of the :class:`~ddpm_lib.sample.Step` a callback sees). Both
follow the contract of :mod:`ddpm_lib.sample`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from .._validate import check_int, check_number
from ..diffusion import eps_from_x0, randn_like, x0_from_eps
from ..sde import VPSDE, solve_flow
from .base import Step, check_noise, progress_bar, start
from .guidance import Guide, make_guide

if TYPE_CHECKING:
    from ..diffusion import Diffusion


def _predict(guide: Guide, sde: VPSDE, x: torch.Tensor, tau: float, want_x0: bool):
    r"""The ε the step uses at time ``tau``: the (guided) :math:`\hat\epsilon`, or, if the run
    thresholds, the one recomputed from the thresholded :math:`\hat x_0`; and, if ``want_x0`` or
    the run thresholds, the model's :math:`\hat x_0 = (x - \sqrt{1-\bar\alpha}\,\hat\epsilon)
    /\sqrt{\bar\alpha}` before the threshold (else None)."""
    ab = float(sde.alpha_bar(tau))
    t = sde.t_of(tau).to(device=x.device, dtype=x.dtype).expand(x.shape[0])
    eps = guide(x, t, (1.0 - ab) ** 0.5)
    if guide.threshold_name == "none" and not want_x0:
        return eps, None
    x0_hat = x0_from_eps(x, eps, ab**0.5, (1.0 - ab) ** 0.5)
    if guide.threshold_name != "none":
        eps = eps_from_x0(x, guide.threshold(x0_hat), ab**0.5, (1.0 - ab) ** 0.5)
    return eps, x0_hat


@torch.no_grad()
def reverse_sde(
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
    steps: int = 1000,
) -> torch.Tensor:
    r"""Sample by the reverse-time SDE (Anderson 1982; Song et al. 2021, Eq. 6)

    .. math:: d\mathbf x = \big[-\tfrac12\beta(\tau)\mathbf x - \beta(\tau)\,\mathbf s_\theta
        (\mathbf x, \tau)\big]d\tau + \sqrt{\beta(\tau)}\,d\bar{\mathbf w},\qquad
        \mathbf s_\theta = -\epsilon_\theta(\mathbf x, \tau T)/\sqrt{1-\bar\alpha(\tau)}

    from :math:`\tau = 1` to :math:`0` by Euler–Maruyama with ``steps`` equal steps
    :math:`h = 1/\text{steps}`, drift and :math:`\beta` taken at the step's start
    :math:`\tau_k = k h` (so the network is never asked about :math:`\tau = 0`):

    .. math:: \mathbf x \leftarrow \mathbf x + h\big[\tfrac12\beta(\tau_k)\mathbf x +
        \beta(\tau_k)\,\mathbf s_\theta(\mathbf x, \tau_k)\big] + \sqrt{\beta(\tau_k)h}\;\mathbf z,

    with :math:`\mathbf z = 0` in the last step (as Algorithm 2 adds no noise at :math:`t = 1`).
    With ``steps = T`` the network is called at the integer steps :math:`t = T, \dots, 1` and
    :math:`\beta(\tau_k)h = -\log\alpha_t \approx \beta_t`: the update is Algorithm 2's to first
    order in :math:`\beta_t`. The arguments of the contract are in :mod:`ddpm_lib.sample`
    (``noise[k - 1]`` is the :math:`\mathbf z` of the step from :math:`\tau_k`; a ``threshold``
    replaces :math:`\epsilon_\theta` by the one recomputed from the thresholded :math:`\hat x_0`).
    Own option: ``steps`` >= 1. Returns ``[n, *shape]``."""
    steps = check_int("steps", steps, lo=1)
    sde = VPSDE(diffusion)
    x, dev = start(model, n, shape, x_T, generator, device)
    guide = make_guide(model, x.shape[0], diffusion=diffusion, labels=labels,
                       guidance_scale=guidance_scale, classifier=classifier,
                       classifier_scale=classifier_scale, threshold=threshold,
                       dynamic_percentile=dynamic_percentile, device=dev)  # fmt: skip
    noise = check_noise(noise, steps, x)
    h = 1.0 / steps
    for k in progress_bar(range(steps, 0, -1), progress, f"reverse SDE ({steps} steps)"):
        tau = k * h
        eps, x0_hat = _predict(guide, sde, x, tau, callback is not None)
        if callback is not None:
            callback(Step(tau * sde.T, x, x0_hat))
        x = x - h * sde.reverse_drift_from_eps(x, tau, eps)
        if k > 1:
            z = randn_like(x, generator) if noise is None else noise[k - 1]
            x = x + float(sde.g(tau)) * h**0.5 * z
    return x.clamp(-1.0, 1.0) if clip_samples else x


@torch.no_grad()
def probability_flow(
    model: Callable,
    diffusion: Diffusion,
    *,
    n: int | None = None,
    shape: Sequence[int] | None = None,
    x_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    noise: None = None,
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
    rtol: float = 1e-5,
    atol: float = 1e-5,
    method: str = "RK45",
    tau_end: float = 1e-3,
    denoise: bool = True,
    t_eval: Sequence[float] | None = None,
) -> torch.Tensor:
    r"""Sample by the probability-flow ODE (Song et al. 2021, Eq. 13), deterministic given
    :math:`\mathbf x(1)`:

    .. math:: \frac{d\mathbf x}{d\tau} = -\tfrac12\beta(\tau)\big(\mathbf x +
        \mathbf s_\theta(\mathbf x, \tau)\big),

    solved by ``scipy.integrate.solve_ivp`` (``method``, ``rtol``, ``atol``; an adaptive
    step) from :math:`\tau = 1` to ``tau_end`` (the network is not defined at
    :math:`\tau = 0`). Its marginals are those of the SDE, so :math:`\mathbf x(\tau)` has the law
    :math:`q_\tau` for every :math:`\tau` when the score is exact. ``denoise`` replaces the end
    state by Tweedie's :math:`\hat{\mathbf x}_0 = (\mathbf x - \sqrt{1-\bar\alpha}\,\epsilon_\theta)
    /\sqrt{\bar\alpha}` at ``tau_end`` (one more network call); ``denoise=False`` returns
    :math:`\mathbf x(\tau_\text{end})`, which :func:`ddpm_lib.sde.encode` inverts.

    The arguments of the contract are in :mod:`ddpm_lib.sample`; nothing is drawn after
    :math:`x_T`, so ``noise`` must be None. ``x_T`` (or a draw from ``generator``) sets the
    state's dtype; the solver works in float64 either way. The ``callback`` is called after the
    solve, at the start of every step the solver accepted, or, with ``t_eval`` (times in
    ``[tau_end, 1]``, decreasing), at those times (the solver's interpolant there); its
    :math:`\hat x_0` costs one more network call per call (``progress`` shows a bar over these calls
    only: the adaptive solve has no known length). Count the network calls with
    :class:`ddpm_lib.models.CallCounter`. Returns ``[n, *shape]``."""
    if noise is not None:
        raise ValueError(
            "noise must be None for probability_flow: the ODE draws nothing after x_T "
            "(pass x_T or generator)"
        )
    tau_end = check_number("tau_end", tau_end, 0.0, 1.0, lo_open=True, hi_open=True)
    if t_eval is not None:
        t_eval = [check_number("t_eval", float(v), tau_end, 1.0) for v in t_eval]
        if not t_eval or any(b >= a for a, b in zip(t_eval, t_eval[1:], strict=False)):
            raise ValueError(f"t_eval must be non-empty and decreasing, got {t_eval}")
    sde = VPSDE(diffusion)
    x, dev = start(model, n, shape, x_T, generator, device)
    guide = make_guide(model, x.shape[0], diffusion=diffusion, labels=labels,
                       guidance_scale=guidance_scale, classifier=classifier,
                       classifier_scale=classifier_scale, threshold=threshold,
                       dynamic_percentile=dynamic_percentile, device=dev)  # fmt: skip
    record = None if callback is None else ("steps" if t_eval is None else t_eval)
    flow = solve_flow(lambda s, tau: _predict(guide, sde, s, tau, False)[0], sde, x, 1.0,
                      tau_end, rtol, atol, method, t_eval=record)  # fmt: skip
    if callback is not None:
        desc = "probability flow (callback)"
        for tau, x_tau in progress_bar(zip(flow.taus.tolist(), flow.path, strict=True), progress,
                                       desc):  # fmt: skip
            callback(Step(tau * sde.T, x_tau, _predict(guide, sde, x_tau, tau, True)[1]))
    x = flow.x
    if denoise:
        x = guide.threshold(_predict(guide, sde, x, tau_end, True)[1])
    return x.clamp(-1.0, 1.0) if clip_samples else x
