"""What every sampler of :mod:`ddpm_lib.sample` shares: where sampling starts (:func:`start`), the
record of one step a ``callback`` receives (:class:`Step`) and a callback that keeps them
(:class:`Recorder`), the check of explicit ``noise`` (:func:`check_noise`) and the progress bar.
These are the documented internals of the sampler modules; a user needs only :class:`Step` and
:class:`Recorder`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

import torch

from .._validate import check_int, check_tensor
from ..config import IMAGE_CHANNELS, IMAGE_SIZE
from ..diffusion import randn_like

#: The default shape of one sample: an MNIST image.
IMAGE_SHAPE = (IMAGE_CHANNELS, IMAGE_SIZE, IMAGE_SIZE)


class Step(NamedTuple):
    r"""One step of a sampler, as its ``callback`` sees it: ``t`` the network time of the step (an
    int for :func:`~ddpm_lib.sample.ancestral`, :func:`~ddpm_lib.sample.ddim` and
    :func:`~ddpm_lib.sample.inpaint`; the float :math:`\tau T` for the continuous samplers; the
    number of steps left for :func:`~ddpm_lib.sample.langevin`), ``x_t`` the state *before* the
    step ``[n, *shape]`` and ``x0_hat`` the (guided) model's prediction :math:`\hat x_0(x_t)`
    ``[n, *shape]`` *before* the sampler's threshold (the step used ``threshold_x0`` of it, which
    this determines, while the raw one cannot be recovered from the thresholded one: a benchmark
    measures how often :math:`\hat x_0` leaves [-1, 1]); None for Langevin, which has no
    :math:`\hat x_0`. The tensors are the sampler's own: copy them to keep them
    (:class:`Recorder` does)."""

    t: int | float
    x_t: torch.Tensor
    x0_hat: torch.Tensor | None


class Recorder:
    r"""A ``callback`` that keeps the steps a sampler reports, on the CPU.

    ``keep``: the step times ``t`` to keep (None = every step). After sampling, ``steps`` is the
    list of kept :class:`Step`; ``t`` (``[K]``), ``x_t`` and ``x0_hat`` (``[K, n, *shape]``) stack
    them in the order they came (descending ``t``)."""

    def __init__(self, keep: Iterable[int | float] | None = None):
        if keep is not None:
            keep = set(keep)
            if any(isinstance(k, bool) or not isinstance(k, int | float) for k in keep):
                raise ValueError(f"keep must hold step times (numbers) or be None, got {keep!r}")
        self.keep = keep
        self.steps: list[Step] = []

    def __call__(self, step: Step) -> None:
        if self.keep is None or step.t in self.keep:
            x0 = None if step.x0_hat is None else step.x0_hat.detach().cpu()
            self.steps.append(Step(step.t, step.x_t.detach().cpu(), x0))

    @property
    def t(self) -> torch.Tensor:
        return torch.tensor([s.t for s in self.steps])

    @property
    def x_t(self) -> torch.Tensor:
        return torch.stack([s.x_t for s in self.steps])

    @property
    def x0_hat(self) -> torch.Tensor:
        return torch.stack([s.x0_hat for s in self.steps])


def start(
    model: Callable,
    n: int | None,
    shape: Sequence[int] | None,
    x_T: torch.Tensor | None,
    generator: torch.Generator | None,
    device: torch.device | str | None,
) -> tuple[torch.Tensor, torch.device]:
    """Where every sampler starts: the device (``device``, else the model's, else the CPU) and
    :math:`x_T` ``[n, *shape]`` on it (drawn as float32 from ``generator`` unless ``x_T`` is
    given; ``shape`` defaults to :data:`IMAGE_SHAPE`). Checks ``n``, ``shape`` and ``x_T``."""
    if device is None:
        params = getattr(model, "parameters", None)
        first = next(iter(params()), None) if callable(params) else None
        device = first.device if first is not None else "cpu"
    dev = torch.device(device)
    if n is not None:
        check_int("n", n, lo=1)
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


def check_noise(noise: torch.Tensor | None, steps: int, x: torch.Tensor) -> torch.Tensor | None:
    """Explicit noise for a sampler of ``steps`` steps from the state ``x`` ``[n, *shape]``: None,
    or a float tensor ``[steps, n, *shape]`` whose ``noise[k - 1]`` is the :math:`z` of the k-th
    step counted from the end (the step from :math:`x_t` for ancestral sampling uses
    ``noise[t - 1]``). Returned on ``x``'s device and dtype."""
    if noise is None:
        return None
    expected = [steps, *x.shape]
    if not isinstance(noise, torch.Tensor) or list(noise.shape) != expected:
        got = list(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
        raise ValueError(
            f"noise must have shape {expected} ([steps, n, *shape]; noise[k - 1] is the z of "
            f"the k-th step counted from the end), got {got}"
        )
    return check_tensor("noise", noise).to(device=x.device, dtype=x.dtype)


def progress_bar(steps: Iterable, progress: bool, desc: str) -> Iterable:
    """``steps`` wrapped in a tqdm bar if ``progress`` (tqdm is imported only then)."""
    if not progress:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, desc=desc)
