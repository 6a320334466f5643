"""What every sampler shares (:mod:`ddpm_lib.sample`, :mod:`ddpm_lib.sample.continuous`): where sampling
starts, the labels check and the classifier-free guided prediction."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .._validate import check_choice, check_eps, check_t, check_tensor
from ..config import IMAGE_CHANNELS, IMAGE_SIZE
from ..diffusion import randn_like

#: The default shape of one sample: an MNIST image.
IMAGE_SHAPE = (IMAGE_CHANNELS, IMAGE_SIZE, IMAGE_SIZE)


def _num_classes(model: Callable) -> int | None:
    config = getattr(model, "config", None)
    return getattr(config, "num_classes", None)


def _start(model, n, shape, x_T, generator, device) -> tuple[torch.Tensor, torch.device]:
    """Where every sampler starts: the device (``device``, else the model's, else the CPU) and
    :math:`x_T` ``[n, *shape]`` on it (drawn as float32 unless ``x_T`` is given)."""
    if device is None:
        params = getattr(model, "parameters", None)
        first = next(iter(params()), None) if callable(params) else None
        device = first.device if first is not None else "cpu"
    dev = torch.device(device)
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a positive int (number of samples), got {n!r}")
    if shape is not None:
        sizes = shape if isinstance(shape, tuple | list | torch.Size) else [None]
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
            raise ValueError(
                f"shape must be the shape of one sample, a tuple of positive sizes such as (2,) or "
                f"(1, 28, 28), got {shape!r}"
            )
        shape = tuple(shape)
    if x_T is None:
        if n is None:
            raise ValueError("n must be a positive int (number of samples) unless x_T is given")
        return randn_like(torch.empty((n, *(shape or IMAGE_SHAPE)), device=dev), generator), dev
    x_T = check_tensor("x_T", x_T)
    expected = (x_T.shape[0] if n is None else n, *(x_T.shape[1:] if shape is None else shape))
    if tuple(x_T.shape) != expected:
        raise ValueError(f"x_T must have shape {list(expected)}, got {list(x_T.shape)}")
    return x_T.to(dev), dev


def _check_labels(model, n, labels, guidance_scale, device) -> torch.Tensor | None:
    num_classes = _num_classes(model)
    if labels is None:
        if guidance_scale != 1.0:
            raise ValueError(
                f"guidance_scale={guidance_scale} needs labels (classifier-free guidance mixes the "
                "conditional and the null-label predictions); pass labels or use guidance_scale=1.0"
            )
        return None
    if num_classes is None:
        raise ValueError(
            "labels were given but the model is unconditional (model.config.num_classes is None)"
        )
    return _label_tensor(labels, n, num_classes - 1, device)


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
) -> torch.Tensor:
    r"""The classifier-free guided prediction (Ho & Salimans 2022, Eq. 6 with :math:`s = 1 + w`):

    .. math:: \tilde\epsilon = \epsilon_\theta(x_t, t, \varnothing) + s\,\big(\epsilon_\theta(x_t, t, y)
        - \epsilon_\theta(x_t, t, \varnothing)\big)

    ``s = 1`` is the plain conditional model, ``s = 0`` the unconditional one (null label); ``s > 1``
    pushes samples towards their class. Both predictions come from one batched forward pass.
    ``x_t`` ``[n, ...]``, ``t`` LongTensor ``[n]``, ``labels`` ``[n]`` or None (unconditional).
    """
    if labels is None:
        return model(x_t, t)
    if guidance_scale == 1.0:
        return model(x_t, t, labels)
    null = torch.full_like(labels, _num_classes(model))
    if guidance_scale == 0.0:
        return model(x_t, t, null)
    eps_cond, eps_null = model(
        torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([labels, null])
    ).chunk(2)
    return eps_null + guidance_scale * (eps_cond - eps_null)


def classifier_gradient(
    classifier: Callable, x_t: torch.Tensor, t: torch.Tensor | int | float, labels: torch.Tensor
) -> torch.Tensor:
    r"""The classifier's gradient :math:`\nabla_{x_t}\log p_\phi(y \mid x_t, t)` for each row of
    ``x_t`` ``[n, ...]`` and its label ``labels`` ``[n]``, by autograd through the classifier
    only (it works inside ``torch.no_grad()``, as the samplers run). ``classifier(x_t, t)``
    returns logits ``[n, K]`` (a :class:`ddpm_lib.models.NoisyClassifier`, or the exact
    :class:`ddpm_lib.toy.MixtureClassifier`). Returns ``[n, ...]`` in ``x_t``'s dtype."""
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        logits = classifier(x, t)
        if (
            not isinstance(logits, torch.Tensor)
            or logits.dim() != 2
            or logits.shape[0] != x.shape[0]
        ):
            got = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(f"classifier(x_t, t) must return logits [{x.shape[0]}, K], got {got}")
        labels = _label_tensor(labels, x.shape[0], logits.shape[1] - 1, logits.device)
        logp = torch.log_softmax(logits, dim=1).gather(1, labels[:, None]).sum()
        (grad,) = torch.autograd.grad(logp, x)
    return grad.to(x_t.dtype)


class Guide:
    r"""The prediction every sampler steps with, :math:`\hat\epsilon(x_t, t)`: the model's
    (classifier-free guided, :func:`guided_eps`) prediction, minus, with a ``classifier``, its
    gradient scaled by :math:`\sqrt{1-\bar\alpha_t}` (Dhariwal & Nichol 2021, Algorithm 2):

    .. math:: \hat\epsilon = \epsilon_\theta(x_t, t) - \sqrt{1-\bar\alpha_t}\;\gamma\,
        \nabla_{x_t}\log p_\phi(y \mid x_t, t).

    Since :math:`\epsilon = -\sqrt{1-\bar\alpha_t}\,\nabla\log q_t`, this is the score of
    :math:`q_t(x_t)\,p_\phi(y \mid x_t)^\gamma`. Built by :func:`make_guide`."""

    def __init__(self, model, labels, model_labels, guidance_scale, classifier, classifier_scale):
        self.model, self.labels, self.model_labels = model, labels, model_labels
        self.guidance_scale, self.classifier = guidance_scale, classifier
        self.classifier_scale = classifier_scale

    def __call__(self, x: torch.Tensor, t: torch.Tensor, sigma: float) -> torch.Tensor:
        r"""``x`` ``[n, ...]``, ``t`` ``[n]`` (steps or continuous times), ``sigma`` =
        :math:`\sqrt{1-\bar\alpha_t}`: the prediction ``[n, ...]`` in ``x``'s dtype."""
        eps = check_eps(guided_eps(self.model, x, t, self.model_labels, self.guidance_scale), x)
        eps = eps.to(x.dtype)
        if self.classifier is not None and self.classifier_scale != 0.0:
            grad = classifier_gradient(self.classifier, x, t, self.labels)
            eps = eps - (sigma * self.classifier_scale) * grad
        return eps


def make_guide(model, n, labels, guidance_scale, classifier, classifier_scale, device) -> Guide:
    """Check the guidance arguments shared by every sampler and build the :class:`Guide`."""
    if isinstance(classifier_scale, bool) or not isinstance(classifier_scale, int | float):
        raise ValueError(f"classifier_scale must be a number, got {classifier_scale!r}")
    if not math.isfinite(classifier_scale):
        raise ValueError(f"classifier_scale must be finite, got {classifier_scale!r}")
    if classifier is None:
        if classifier_scale != 1.0:
            raise ValueError(
                f"classifier_scale={classifier_scale} needs a classifier (classifier=...); "
                "guidance_scale is the classifier-free scale"
            )
        model_labels = _check_labels(model, n, labels, guidance_scale, device)
        return Guide(model, model_labels, model_labels, guidance_scale, None, 0.0)
    if not callable(classifier):
        raise ValueError(
            f"classifier must be callable as classifier(x_t, t), got {classifier!r:.60}"
        )
    if labels is None:
        raise ValueError("classifier guidance needs labels (the class y of p(y | x_t))")
    conditional = _num_classes(model) is not None
    if not conditional and guidance_scale != 1.0:
        raise ValueError(
            f"guidance_scale={guidance_scale} is classifier-free guidance, which needs a "
            "class-conditional model; this model is unconditional (use classifier_scale)"
        )
    model_labels = _check_labels(model, n, labels, guidance_scale, device) if conditional else None
    hi = _num_classes(classifier) - 1 if _num_classes(classifier) else 2**62
    return Guide(
        model,
        _label_tensor(labels, n, hi, device),
        model_labels,
        guidance_scale,
        classifier,
        float(classifier_scale),
    )


THRESHOLDS = ("none", "static", "dynamic")


def threshold_x0(
    x0: torch.Tensor, threshold: str = "dynamic", dynamic_percentile: float = 0.995
) -> torch.Tensor:
    r"""Keep a prediction :math:`\hat x_0` ``[n, ...]`` in the data range [-1, 1].

    ``"none"`` returns it as it is; ``"static"`` clamps every pixel to [-1, 1]; ``"dynamic"``
    (Saharia et al. 2022, Sec. 2.3, Imagen) takes per sample the ``dynamic_percentile`` quantile
    :math:`p` of :math:`|\hat x_0|`, sets :math:`s = \max(1, p)`, clamps to :math:`[-s, s]` and
    divides by :math:`s`: a sample already inside [-1, 1] is untouched, a saturated one is
    squeezed back into range instead of being flattened at ±1. Returns ``[n, ...]``."""
    check_choice("threshold", threshold, THRESHOLDS)
    if threshold == "none":
        return x0
    if threshold == "static":
        return x0.clamp(-1.0, 1.0)
    q = dynamic_percentile
    if isinstance(q, bool) or not isinstance(q, int | float) or not 0.0 < q <= 1.0:
        raise ValueError(f"dynamic_percentile must be a number in (0, 1] (e.g. 0.995), got {q!r}")
    s = torch.quantile(x0.abs().flatten(1).float(), float(q), dim=1).clamp(min=1.0).to(x0.dtype)
    s = s.reshape(-1, *([1] * (x0.dim() - 1)))
    return torch.maximum(torch.minimum(x0, s), -s) / s


def resolve_threshold(threshold: str | None, clip_x0: bool) -> str:
    """``threshold`` if given, else what the legacy flag ``clip_x0`` means ("static" / "none")."""
    if threshold is None:
        return "static" if clip_x0 else "none"
    check_choice("threshold", threshold, THRESHOLDS)
    return threshold


def ddim_timesteps(T: int, steps: int) -> torch.Tensor:
    r"""The DDIM sub-sequence :math:`\tau_1 < \dots < \tau_S = T`, evenly spaced over ``1..T``:
    :math:`\tau_i = \mathrm{round}(iT/S)`. Returns LongTensor ``[S]``."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an integer in [1, {T}], got {steps!r}")
    return torch.tensor([round(i * T / steps) for i in range(1, steps + 1)], dtype=torch.long)
