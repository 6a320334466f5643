r"""Continuous-time samplers on the same ε-network as Algorithm 2 (re-exported by
:mod:`ddpm_lib.sample`): the reverse-time SDE by Euler–Maruyama and the probability-flow ODE by
``scipy.integrate.solve_ivp`` (Song et al. 2021, Secs. 3–4). Time and schedule follow
:class:`ddpm_lib.sde.VPSDE`: :math:`\tau \in [0, 1]`, network time :math:`t = \tau T`.

Arguments shared with :func:`ddpm_lib.sample.ancestral` (``n``, ``x_T``, ``shape``, ``labels``,
``guidance_scale``, ``generator``, ``device``, ``clip_samples``) mean the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch

from ..diffusion import randn_like
from ..sde import VPSDE, solve_flow
from .base import Guide, _start, make_guide

if TYPE_CHECKING:
    from ..diffusion import Diffusion

__all__ = ["ODESample", "probability_flow", "reverse_sde"]


def _eps_fn(guide: Guide, sde: VPSDE) -> Callable:
    """``eps(x, tau)``: the (guided) prediction at the continuous time ``tau T`` for the batch."""

    def eps(x: torch.Tensor, tau: float) -> torch.Tensor:
        t = sde.t_of(tau).to(device=x.device, dtype=x.dtype).expand(x.shape[0])
        return guide(x, t, float(1.0 - sde.alpha_bar(tau)) ** 0.5)

    return eps


@torch.no_grad()
def reverse_sde(
    model: Callable,
    diffusion: Diffusion,
    n: int | None = None,
    steps: int = 1000,
    x_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    shape: Sequence[int] | None = None,
    labels: torch.Tensor | int | None = None,
    guidance_scale: float = 1.0,
    device: torch.device | str | None = None,
    clip_samples: bool = True,
    classifier: Callable | None = None,
    classifier_scale: float = 1.0,
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
    order in :math:`\beta_t`. ``labels``, ``guidance_scale``, ``classifier`` and
    ``classifier_scale`` guide as in :func:`ddpm_lib.sample.ancestral`. Returns samples
    ``[n, *shape]``.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    sde = VPSDE(diffusion)
    x, dev = _start(model, n, shape, x_T, generator, device)
    guide = make_guide(model, x.shape[0], labels, guidance_scale, classifier, classifier_scale, dev)
    eps_at = _eps_fn(guide, sde)
    h = 1.0 / steps
    for k in range(steps, 0, -1):
        tau = k * h
        eps = eps_at(x, tau)
        x = x - h * sde.reverse_drift_from_eps(x, tau, eps)
        if k > 1:
            x = x + float(sde.g(tau)) * h**0.5 * randn_like(x, generator)
    return x.clamp(-1.0, 1.0) if clip_samples else x


class ODESample(NamedTuple):
    r"""``samples`` ``[n, *shape]`` and ``nfe``, the number of (batched) network evaluations the
    adaptive solver used (plus one for the final denoising step, if any)."""

    samples: torch.Tensor
    nfe: int


@torch.no_grad()
def probability_flow(
    model: Callable,
    diffusion: Diffusion,
    n: int | None = None,
    x_T: torch.Tensor | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    method: str = "RK45",
    shape: Sequence[int] | None = None,
    labels: torch.Tensor | int | None = None,
    guidance_scale: float = 1.0,
    generator: torch.Generator | None = None,
    tau_end: float = 1e-3,
    denoise: bool = True,
    device: torch.device | str | None = None,
    clip_samples: bool = True,
    classifier: Callable | None = None,
    classifier_scale: float = 1.0,
) -> ODESample:
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

    ``x_T`` (or a draw from ``generator``) sets the state's dtype: float32 by default, float64
    for the exact toy. The solver works in float64 either way. ``labels``, ``guidance_scale``,
    ``classifier`` and ``classifier_scale`` guide as in :func:`ddpm_lib.sample.ancestral` (the
    guided score replaces the score). Returns :class:`ODESample`.
    """
    if not 0.0 < float(tau_end) < 1.0:
        raise ValueError(f"tau_end must be in (0, 1), got {tau_end!r}")
    sde = VPSDE(diffusion)
    x, dev = _start(model, n, shape, x_T, generator, device)
    guide = make_guide(model, x.shape[0], labels, guidance_scale, classifier, classifier_scale, dev)
    eps_at = _eps_fn(guide, sde)
    flow = solve_flow(eps_at, sde, x, 1.0, float(tau_end), rtol, atol, method)
    x, nfe = flow.x, flow.nfe
    if denoise:
        ab = float(sde.alpha_bar(float(tau_end)))
        x = (x - (1.0 - ab) ** 0.5 * eps_at(x, float(tau_end))) / ab**0.5
        nfe += 1
    return ODESample(x.clamp(-1.0, 1.0) if clip_samples else x, nfe)
