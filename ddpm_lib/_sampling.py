"""What every sampler shares (:mod:`ddpm_lib.sample`, :mod:`ddpm_lib.sample_sde`): where sampling
starts, the labels check and the classifier-free guided prediction."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._validate import check_t, check_tensor
from .config import IMAGE_CHANNELS, IMAGE_SIZE
from .diffusion import randn_like

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
    labels = check_t(labels, 0, num_classes - 1, "labels")
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
