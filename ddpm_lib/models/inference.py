r"""Fast inference for a trained :math:`\epsilon_\theta`: autocast, ``channels_last`` and
``torch.compile`` behind the model's own call signature.

The samplers in :mod:`ddpm_lib.sample` call ``model(x_t, t[, labels])`` and read ``model.config``;
:class:`InferenceModel` keeps both, so it drops in wherever the plain model goes::

    fast = InferenceModel(model, precision="bf16", compile=True)   # on a GPU
    x = sample.ddim(fast, diffusion, n=10_000, steps=50)

The network runs in ``precision`` (bf16 or fp16 autocast) while the sampler's state
:math:`x_t` and every update of it stay float32: the output is cast back to float32."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import nn

INFERENCE_PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class InferenceModel(nn.Module):
    """``model`` in eval mode under autocast, optionally compiled; returns float32.

    Args:
        model: an :math:`\\epsilon`-network with a ``config`` attribute (a
            :class:`~ddpm_lib.models.UNet`, or diffusers' U-Net wrapped the same way).
        precision: ``"fp32"`` (no autocast), ``"bf16"`` (compute capability >= 8, or the CPU)
            or ``"fp16"`` (CUDA only).
        compile: wrap the network in ``torch.compile`` (the first call compiles it).
        compile_backend: the ``torch.compile`` backend (``"inductor"``; ``"eager"`` only traces,
            which tests the compiled path cheaply on a CPU).

    Raises:
        ValueError: an unknown precision, or fp16 off a CUDA device.
    """

    def __init__(
        self,
        model: nn.Module,
        precision: str = "fp32",
        compile: bool = False,
        compile_backend: str = "inductor",
    ) -> None:
        super().__init__()
        if precision not in INFERENCE_PRECISIONS:
            raise ValueError(f"precision must be one of {INFERENCE_PRECISIONS}, got {precision!r}")
        if not isinstance(compile, bool):
            raise ValueError(f"compile must be True or False, got {compile!r}")
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
        if precision == "fp16" and device.type != "cuda":
            raise ValueError(f"precision='fp16' needs a CUDA model, this one is on {device}")
        self.model = model.eval()
        if device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
        self.config = getattr(model, "config", None)
        self.precision = precision
        self._device_type = device.type
        # Not a registered submodule: the state dict stays the wrapped model's alone.
        call = torch.compile(self.model, backend=compile_backend) if compile else self.model
        object.__setattr__(self, "_call", call)

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor | int, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """:math:`\\epsilon_\\theta(x_t, t[, y])` as float32, same shape as ``x_t``."""
        dtype = _DTYPES.get(self.precision)
        ctx = (
            torch.autocast(self._device_type, dtype=dtype)
            if dtype is not None
            else contextlib.nullcontext()
        )
        if self._device_type == "cuda":
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        with ctx:
            out = self._call(x_t, t) if labels is None else self._call(x_t, t, labels)
        return out.float()


class CallCounter(nn.Module):
    """``model`` behind its own call signature, counting what it is asked: ``calls``, the batched
    forward passes (one call = one network function evaluation, NFE, whatever the batch), and
    ``images``, the rows evaluated (a classifier-free guided step evaluates ``2n`` in one call).
    ``config`` and ``parameters()`` are the model's, so it drops in wherever the model goes::

        counted = CallCounter(model)
        x = sample.probability_flow(counted, diffusion, n=64)
        print(counted.calls)   # the solver's NFE

    ``reset()`` sets both counts to 0 and returns the counter."""

    def __init__(self, model: nn.Module | Callable[..., torch.Tensor]) -> None:
        super().__init__()
        if not callable(model):
            raise ValueError(
                f"model must be callable as model(x_t, t[, labels]), got {model!r:.60}"
            )
        if isinstance(model, nn.Module):
            self.model = model
        else:  # a plain function: kept out of the module tree
            object.__setattr__(self, "model", model)
        self.config = getattr(model, "config", None)
        self.calls = 0
        self.images = 0

    def reset(self) -> CallCounter:
        self.calls = self.images = 0
        return self

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        self.calls += 1
        self.images += x.shape[0]
        return self.model(x, *args, **kwargs)
