r"""Guidance and thresholding: how every sampler evaluates the model at a time. The classifier-free
guided prediction (:func:`guided_eps`), the classifier's gradient (:func:`classifier_gradient`),
their combination (:class:`Guide`, built and checked once per sampling run by :func:`make_guide`)
and the thresholds of :math:`\hat x_0` (:func:`threshold_x0`)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._validate import check_choice, check_number, check_t
from ..diffusion import Diffusion

THRESHOLDS = ("none", "static", "dynamic")


def num_classes(model: Callable) -> int | None:
    """``model.config.num_classes`` (None for an unconditional model or a plain function)."""
    return getattr(getattr(model, "config", None), "num_classes", None)


def _label_tensor(labels, n: int, hi: int, device) -> torch.Tensor:
    labels = check_t(labels, 0, hi, "labels")
    if isinstance(labels, int) or labels.dim() == 0:
        labels = torch.full((n,), int(labels), dtype=torch.long)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape [{n}], got {list(labels.shape)}")
    return labels.to(device)


def guided_eps(
    model: Callable,
    x_t: torch.Tensor,
    t: torch.Tensor,
    labels: torch.Tensor | None,
    guidance_scale: float = 1.0,
    *,
    diffusion: Diffusion | None = None,
) -> torch.Tensor:
    r"""The classifier-free guided prediction (Ho & Salimans 2022, Eq. 6 with :math:`s = 1 + w`):

    .. math:: \tilde\epsilon = \epsilon_\theta(x_t, t, \varnothing) + s\,\big(\epsilon_\theta(x_t, t, y)
        - \epsilon_\theta(x_t, t, \varnothing)\big)

    ``s = 1`` is the plain conditional model, ``s = 0`` the unconditional one (null label); ``s > 1``
    pushes samples towards their class. Both predictions come from one batched forward pass.
    ``x_t`` ``[n, ...]``, ``t`` ``[n]``, ``labels`` ``[n]`` or None (unconditional). With
    ``diffusion`` every evaluation goes through :meth:`ddpm_lib.Diffusion.call_model` (which checks
    the output's shape), as the samplers' :class:`Guide` does; without it ``model`` is called as
    it is."""

    def call(x, tt, y=None):
        if diffusion is not None:
            return diffusion.call_model(model, x, tt, y)
        return model(x, tt) if y is None else model(x, tt, y)

    if labels is None:
        return call(x_t, t)
    if guidance_scale == 1.0:
        return call(x_t, t, labels)
    null = torch.full_like(labels, num_classes(model))
    if guidance_scale == 0.0:
        return call(x_t, t, null)
    eps_cond, eps_null = call(
        torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([labels, null])
    ).chunk(2)
    return eps_null + guidance_scale * (eps_cond - eps_null)


def _check_logits(logits, n: int) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != n:
        got = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"classifier(x_t, t) must return logits [{n}, K], got {got}")


def _log_prob_grad(classifier, x_t, t, labels, check_labels: bool) -> torch.Tensor:
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        logits = classifier(x, t)
        _check_logits(logits, x.shape[0])
        if check_labels:
            labels = _label_tensor(labels, x.shape[0], logits.shape[1] - 1, logits.device)
        logp = torch.log_softmax(logits, dim=1).gather(1, labels[:, None]).sum()
        (grad,) = torch.autograd.grad(logp, x)
    return grad.to(x_t.dtype)


def classifier_gradient(
    classifier: Callable, x_t: torch.Tensor, t: torch.Tensor | int | float, labels: torch.Tensor
) -> torch.Tensor:
    r"""The classifier's gradient :math:`\nabla_{x_t}\log p_\phi(y \mid x_t, t)` for each row of
    ``x_t`` ``[n, ...]`` and its label ``labels`` ``[n]`` (or one int), by autograd through the
    classifier only (it works inside ``torch.no_grad()``, as the samplers run). ``classifier(x_t,
    t)`` returns logits ``[n, K]`` (a :class:`ddpm_lib.models.NoisyClassifier`, or the exact
    :class:`ddpm_lib.toy.MixtureClassifier`). Returns ``[n, ...]`` in ``x_t``'s dtype."""
    return _log_prob_grad(classifier, x_t, t, labels, check_labels=True)


def _threshold(x0: torch.Tensor, threshold: str, q: float) -> torch.Tensor:
    if threshold == "none":
        return x0
    if threshold == "static":
        return x0.clamp(-1.0, 1.0)
    s = torch.quantile(x0.abs().flatten(1).float(), q, dim=1).clamp(min=1.0).to(x0.dtype)
    s = s.reshape(-1, *([1] * (x0.dim() - 1)))
    return torch.maximum(torch.minimum(x0, s), -s) / s


def _check_threshold(threshold: str, dynamic_percentile: float) -> float:
    check_choice("threshold", threshold, THRESHOLDS)
    return check_number("dynamic_percentile", dynamic_percentile, 0.0, 1.0, lo_open=True)


def threshold_x0(
    x0: torch.Tensor, threshold: str = "dynamic", dynamic_percentile: float = 0.995
) -> torch.Tensor:
    r"""Keep a prediction :math:`\hat x_0` ``[n, ...]`` in the data range [-1, 1].

    ``"none"`` returns it as it is; ``"static"`` clamps every pixel to [-1, 1]; ``"dynamic"``
    (Saharia et al. 2022, Sec. 2.3, Imagen) takes per sample the ``dynamic_percentile`` quantile
    :math:`p` of :math:`|\hat x_0|`, sets :math:`s = \max(1, p)`, clamps to :math:`[-s, s]` and
    divides by :math:`s`: a sample already inside [-1, 1] is untouched, a saturated one is
    squeezed back into range instead of being flattened at ±1. Returns ``[n, ...]``."""
    return _threshold(x0, threshold, _check_threshold(threshold, dynamic_percentile))


class Guide:
    r"""How a sampler evaluates the model at a time: :math:`\hat\epsilon(x_t, t)`, the model's
    (classifier-free guided, :func:`guided_eps`) prediction, minus, with a ``classifier``, its
    gradient scaled by :math:`\sqrt{1-\bar\alpha_t}` (Dhariwal & Nichol 2021, Algorithm 2):

    .. math:: \hat\epsilon = \epsilon_\theta(x_t, t) - \sqrt{1-\bar\alpha_t}\;\gamma\,
        \nabla_{x_t}\log p_\phi(y \mid x_t, t).

    Since :math:`\epsilon = -\sqrt{1-\bar\alpha_t}\,\nabla\log q_t`, this is the score of
    :math:`q_t(x_t)\,p_\phi(y \mid x_t)^\gamma`. It also carries the sampler's threshold of
    :math:`\hat x_0` (:meth:`threshold`). Built, with every argument checked once, by
    :func:`make_guide`; calling it checks nothing but the model's output shape (no host sync)."""

    def __init__(self, diffusion, model, labels, model_labels, guidance_scale, classifier,
                 classifier_scale, threshold, dynamic_percentile):  # fmt: skip
        self.diffusion, self.model, self.labels, self.model_labels = (
            diffusion,
            model,
            labels,
            model_labels,
        )
        self.guidance_scale, self.classifier = guidance_scale, classifier
        self.classifier_scale = classifier_scale
        self.threshold_name, self.dynamic_percentile = threshold, dynamic_percentile
        self.labels_checked = False

    def __call__(self, x: torch.Tensor, t: torch.Tensor, sigma: float) -> torch.Tensor:
        r"""``x`` ``[n, ...]``, ``t`` ``[n]`` (steps or continuous times), ``sigma`` =
        :math:`\sqrt{1-\bar\alpha_t}`: the prediction ``[n, ...]`` in ``x``'s dtype."""
        eps = guided_eps(self.model, x, t, self.model_labels, self.guidance_scale,
                         diffusion=self.diffusion).to(x.dtype)  # fmt: skip
        if self.classifier is not None and self.classifier_scale != 0.0:
            # The labels' range against the classifier's K is read once, at the first step.
            grad = _log_prob_grad(self.classifier, x, t, self.labels, not self.labels_checked)
            self.labels_checked = True
            eps = eps - (sigma * self.classifier_scale) * grad
        return eps

    def at_step(self, x: torch.Tensor, t: int, alpha_bar: float) -> torch.Tensor:
        r"""The prediction at the integer step ``t`` for the whole batch, given
        :math:`\bar\alpha_t` = ``alpha_bar``."""
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        return self(x, t_batch, float(1.0 - alpha_bar) ** 0.5)

    def threshold(self, x0: torch.Tensor) -> torch.Tensor:
        """:func:`threshold_x0` with this run's (already checked) threshold."""
        return _threshold(x0, self.threshold_name, self.dynamic_percentile)


def _check_labels(model, n, labels, guidance_scale, device) -> torch.Tensor | None:
    classes = num_classes(model)
    if labels is None:
        if guidance_scale != 1.0:
            raise ValueError(
                f"guidance_scale={guidance_scale} needs labels (classifier-free guidance mixes the "
                "conditional and the null-label predictions); pass labels or use guidance_scale=1.0"
            )
        return None
    if classes is None:
        raise ValueError(
            "labels were given but the model is unconditional (model.config.num_classes is None)"
        )
    return _label_tensor(labels, n, classes - 1, device)


def make_guide(
    model: Callable,
    n: int,
    *,
    diffusion: Diffusion,
    labels=None,
    guidance_scale: float = 1.0,
    classifier: Callable | None = None,
    classifier_scale: float = 1.0,
    threshold: str = "none",
    dynamic_percentile: float = 0.995,
    device=None,
) -> Guide:
    """Check the guidance and threshold arguments every sampler shares, once, and build the
    :class:`Guide` for ``n`` samples on ``device``; it evaluates ``model`` through
    ``diffusion.call_model``."""
    q = _check_threshold(threshold, dynamic_percentile)
    check_number("guidance_scale", guidance_scale)
    classifier_scale = check_number("classifier_scale", classifier_scale)
    if classifier is None:
        if classifier_scale != 1.0:
            raise ValueError(
                f"classifier_scale={classifier_scale} needs a classifier (classifier=...); "
                "guidance_scale is the classifier-free scale"
            )
        model_labels = _check_labels(model, n, labels, guidance_scale, device)
        return Guide(diffusion, model, model_labels, model_labels, guidance_scale, None, 0.0,
                     threshold, q)  # fmt: skip
    if not callable(classifier):
        raise ValueError(
            f"classifier must be callable as classifier(x_t, t), got {classifier!r:.60}"
        )
    if labels is None:
        raise ValueError("classifier guidance needs labels (the class y of p(y | x_t))")
    conditional = num_classes(model) is not None
    if not conditional and guidance_scale != 1.0:
        raise ValueError(
            f"guidance_scale={guidance_scale} is classifier-free guidance, which needs a "
            "class-conditional model; this model is unconditional (use classifier_scale)"
        )
    model_labels = _check_labels(model, n, labels, guidance_scale, device) if conditional else None
    hi = num_classes(classifier) - 1 if num_classes(classifier) else 2**62
    class_labels = _label_tensor(labels, n, hi, device)
    return Guide(diffusion, model, class_labels, model_labels, guidance_scale, classifier,
                 classifier_scale, threshold, q)  # fmt: skip
