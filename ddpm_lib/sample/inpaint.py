r"""Inpainting with an unconditional (or guided) diffusion model by the replacement method
(Song et al. 2021, Appendix I.2; Lugmayr et al. 2022, RePaint, with ``resample > 1``).

Known pixels are never generated: at every step they are replaced by a fresh draw of the forward
process :math:`q(x_s \mid x_0)` from the known image, so the network only ever fills in the rest
while seeing a correctly noised context. Re-exported as :func:`ddpm_lib.sample.inpaint`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from .._validate import check_int, check_number, check_tensor
from ..diffusion import randn_like
from .base import Step, progress_bar, start
from .discrete import ddim_timesteps
from .guidance import make_guide

if TYPE_CHECKING:
    from ..diffusion import Diffusion


def _check_mask(mask: object, x_known: torch.Tensor) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor of 0s and 1s, got {type(mask).__name__}")
    try:
        ok = torch.broadcast_shapes(mask.shape, x_known.shape) == x_known.shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"mask must broadcast to x_known's shape {list(x_known.shape)} (e.g. [1, 1, 28, 28] "
            f"for one mask for every image), got {list(mask.shape)}"
        )
    m = mask.to(torch.float64)
    if not bool(((m == 0) | (m == 1)).all()):
        raise ValueError("mask must hold only 0 (pixel to fill in) and 1 (known pixel)")
    return mask.to(device=x_known.device, dtype=x_known.dtype)


def _prediction(guide, diffusion, x, t, m, known, w):
    r"""The model's :math:`\hat x_0` at step ``t`` (from the guided ε) and the one the step uses:
    the same, or, if w > 0, corrected by reconstruction guidance."""
    ab_t = diffusion.alpha_bars[t]
    if w == 0.0:
        x0_hat = diffusion.predict_x0_from_eps(x, t, guide.at_step(x, t, ab_t))
        return x0_hat, x0_hat
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        x0_hat = diffusion.predict_x0_from_eps(xg, t, guide.at_step(xg, t, ab_t))
        (grad,) = torch.autograd.grad((m * (x0_hat - known)).pow(2).sum(), xg)
    step = w * float(ab_t) ** 0.5 / 2
    return x0_hat.detach(), x0_hat.detach() - step * (1 - m) * grad


@torch.no_grad()
def inpaint(
    model: Callable,
    diffusion: Diffusion,
    *,
    x_known: torch.Tensor,
    mask: torch.Tensor,
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
    steps: int | None = None,
    resample: int = 1,
    reconstruction_scale: float = 0.0,
) -> torch.Tensor:
    r"""Fill in the pixels of ``x_known`` where ``mask`` is 0, keeping those where it is 1.

    On the time steps :math:`\tau_S = T > \dots > \tau_1` (``steps`` of them, evenly spaced, as in
    :func:`ddpm_lib.sample.ddim`; ``None`` = all ``T``), from :math:`t` to the next step
    :math:`s` (:math:`s = 0` at the end):

    .. math::
        x_s^{\text{unknown}} &\sim p_\theta(x_s \mid x_t) = \mathcal N\big(\sqrt{\bar\alpha_s}
        \,\hat x_0 + \sqrt{1-\bar\alpha_s-\sigma^2}\,\hat\epsilon,\ \sigma^2 I\big),\quad
        \sigma^2 = \tfrac{1-\bar\alpha_s}{1-\bar\alpha_t}\big(1-\tfrac{\bar\alpha_t}
        {\bar\alpha_s}\big)\\
        x_s^{\text{known}} &\sim q(x_s \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_s}\,
        x_0^{\text{known}},\ (1-\bar\alpha_s) I\big)\\
        x_s &= m \odot x_s^{\text{known}} + (1-m) \odot x_s^{\text{unknown}}

    With ``steps = T`` the first line is Algorithm 2's step with :math:`\sigma_t^2 =
    \tilde\beta_t` (the posterior variance, Ho et al. 2020, Eq. 7); fewer steps are the same
    chain on the respaced schedule (the DDIM update with :math:`\eta = 1`). ``resample = r > 1``
    is RePaint's resampling: :math:`r - 1` times per step the new :math:`x_s` is noised back to
    :math:`t` by :math:`q(x_t \mid x_s)` and the step is redone, which lets the generated part
    agree with the known part (r network calls per step). :math:`\hat\epsilon` is the (guided)
    prediction (``labels``, ``guidance_scale``, ``classifier``, ``classifier_scale`` as in
    :func:`ddpm_lib.sample.ancestral`) and :math:`\hat x_0` goes through ``threshold`` (see
    :func:`ddpm_lib.sample.threshold_x0`; ``"static"``, clamping to [-1, 1], suits a trained
    network), then :math:`\hat\epsilon` is recomputed from it. The known part is
    :meth:`ddpm_lib.Diffusion.q_sample`, the unknown one :meth:`ddpm_lib.Diffusion.ddim_step`.

    ``reconstruction_scale`` :math:`w > 0` adds reconstruction guidance (Ho et al. 2022, *Video
    Diffusion Models*, Sec. 3.1): the replacement method never tells the network the known
    pixels' exact values, only noised versions, so its completion can disagree with them at the
    seam. With :math:`w > 0` the prediction of the unknown pixels is corrected, before the
    threshold, by the gradient of how badly :math:`\hat x_0` reproduces the known ones,

    .. math:: \hat x_0 \leftarrow \hat x_0 - \frac{w\sqrt{\bar\alpha_t}}{2}\,(1-m)\odot
        \nabla_{x_t}\big\|m \odot (\hat x_0(x_t) - x_0^{\text{known}})\big\|^2,

    at the cost of a backward pass through the network per step.

    Args:
        x_known: the images ``[n, *shape]`` whose known pixels are kept (values outside ``mask``
            are ignored); they set the dtype and, with ``device``, the device.
        mask: 1 = known pixel, 0 = fill in; any shape that broadcasts to ``x_known``'s.
        x_T: optional starting noise ``[n, *shape]`` (else drawn from ``generator``).
        n, shape: implied by ``x_known``; if given they must match it.
        noise: must be None: several draws per step come from ``generator``.
        callback: called once per network pass (``resample`` times per step, with the same
            ``t``); its ``x0_hat`` is the model's, before reconstruction guidance and threshold.
        steps: network steps (``None`` = T); resample: RePaint's passes per step.

    The other arguments follow the contract of :mod:`ddpm_lib.sample`.

    Returns:
        ``[n, *shape]``; the known pixels equal ``x_known``'s exactly, the others are clamped to
        [-1, 1] unless ``clip_samples=False``.
    """
    x_known = check_tensor("x_known", x_known)
    if x_known.dim() < 2:
        raise ValueError(f"x_known must be a batch [n, *shape], got shape {list(x_known.shape)}")
    if noise is not None:
        raise ValueError(
            "noise must be None for inpaint: it draws several noises per step (the step, the "
            "known part, RePaint's re-noising); pass generator for reproducible draws"
        )
    resample = check_int("resample", resample, lo=1)
    w = check_number("reconstruction_scale", reconstruction_scale, lo=0.0)
    tau = ddim_timesteps(diffusion.T, diffusion.T if steps is None else steps)
    n_known, shape_known = x_known.shape[0], tuple(x_known.shape[1:])
    for name, given, implied in (("n", n, n_known), ("shape", shape, shape_known)):
        if given is not None and (tuple(given) if name == "shape" else given) != implied:
            raise ValueError(f"{name} must match x_known's ({implied!r}) or be None, got {given!r}")
    if x_T is not None:
        x_T = x_T.to(x_known.dtype)
    else:
        x_T = randn_like(torch.empty_like(x_known), generator)
    x, dev = start(model, n_known, shape_known, x_T, generator, device)
    known = x_known.to(dev)
    m = _check_mask(mask, known)
    guide = make_guide(model, n_known, diffusion=diffusion, labels=labels,
                       guidance_scale=guidance_scale, classifier=classifier,
                       classifier_scale=classifier_scale, threshold=threshold,
                       dynamic_percentile=dynamic_percentile, device=dev)  # fmt: skip
    times = tau.flip(0).tolist()
    pairs = list(zip(times, [*times[1:], 0], strict=True))
    for t, s in progress_bar(pairs, progress, f"inpainting ({len(times)} steps)"):
        ab_t, ab_s = float(diffusion.alpha_bars[t]), float(diffusion.alpha_bars[s])
        for u in range(resample):
            x0_model, x0_hat = _prediction(guide, diffusion, x, t, m, known, w)
            if callback is not None:
                callback(Step(t, x, x0_model))
            x0_hat = guide.threshold(x0_hat)
            # eps from the (corrected, thresholded) x0_hat, so that the step is consistent with it
            eps = diffusion.eps_from_x0(x, t, x0_hat)
            unknown = diffusion.ddim_step(x0_hat, eps, t, s, 1.0, generator=generator)
            known_s = diffusion.q_sample(known, s, generator=generator) if s > 0 else known
            x = m * known_s + (1 - m) * unknown
            # RePaint: back to t by q(x_t | x_s), then redo. (At s = 0 the passes u >= 1 redo the
            # step from the clean x without re-noising: a known slip, kept for the shipped numbers.)
            if u < resample - 1 and s > 0:
                a = ab_t / ab_s
                x = a**0.5 * x + (1 - a) ** 0.5 * randn_like(x, generator)
    if clip_samples:
        x = x.clamp(-1.0, 1.0)
    return torch.where(m.bool().expand_as(x), known, x)
