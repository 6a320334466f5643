"""The training set of a run: model-space images (and labels) on the CPU, with a fingerprint that
a resumed run must match."""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import torch

from ddpm_lib._validate import check_int
from ddpm_lib.config import Config
from ddpm_lib.train.arguments import ParameterError


class Dataset(NamedTuple):
    """Training data on the CPU: ``x0`` float32 ``[N, 1, 28, 28]`` in [-1, 1], ``labels`` int64
    ``[N]`` (None for an unconditional config), ``n`` = N, ``fingerprint`` = SHA-256 of both."""

    x0: torch.Tensor
    labels: torch.Tensor | None
    n: int
    fingerprint: str


def prepare_data(data: object, config: Config, limit_data: int | None) -> Dataset:
    """The training set as a :class:`Dataset` (see :func:`ddpm_lib.train.train` for ``data``)."""
    from ddpm_lib.data import images_to_model, load_mnist

    if data is None:
        data = load_mnist("train")
    if isinstance(data, torch.Tensor):
        images, labels = data, None
    elif isinstance(data, tuple | list) and len(data) == 2:
        images, labels = data
    else:
        raise TypeError("data must be None, an images tensor, an MNISTSplit or (images, labels)")
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"data images must be a torch.Tensor, got {type(images).__name__}")
    if limit_data is not None:
        try:
            check_int("limit_data", limit_data, 1)
        except ValueError as err:
            raise ParameterError("limit_data", str(err)) from None
        if limit_data > images.shape[0]:
            raise ParameterError(
                "limit_data", f"limit_data must be in [1, {images.shape[0]}], got {limit_data}"
            )
        images = images[:limit_data]
        labels = None if labels is None else labels[:limit_data]
    if images.dtype == torch.uint8:
        x0 = images_to_model(images.cpu())
    elif images.is_floating_point():
        if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
            raise ParameterError(
                "data", f"float data images must be [N, 1, 28, 28], got {list(images.shape)}"
            )
        x0 = images.detach().cpu().float().contiguous()
        if not bool(torch.isfinite(x0).all()) or float(x0.abs().max()) > 1.0:
            raise ParameterError("data", "float data images must be finite and in [-1, 1]")
    else:
        raise TypeError(f"data images must be uint8 or floating point, got {images.dtype}")
    n = x0.shape[0]
    if n < config.batch_size:
        # the CLI's only way to shrink the data set is --limit-data
        raise ParameterError(
            "limit_data" if limit_data is not None else "data",
            f"the data set has {n} images, fewer than batch_size={config.batch_size}",
        )
    h = hashlib.sha256(memoryview(x0.numpy()).cast("B"))
    if config.num_classes is None:
        labels = None
    else:
        if labels is None:
            raise ParameterError(
                "data", f"num_classes={config.num_classes} (conditional) needs labels in data"
            )
        labels = torch.as_tensor(labels).detach().cpu().long().contiguous()
        if labels.shape != (n,):
            raise ParameterError("data", f"labels must have shape [{n}], got {list(labels.shape)}")
        if int(labels.min()) < 0 or int(labels.max()) >= config.num_classes:
            raise ParameterError("data", f"labels must be in [0, {config.num_classes - 1}]")
        h.update(memoryview(labels.numpy()).cast("B"))
    return Dataset(x0, labels, n, h.hexdigest())
