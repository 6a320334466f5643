r"""Chapter 4, Algorithm 1 for real: a live loss curve and sample grid while
:func:`ddpm_lib.train.train` runs, and their static twin (the final curve and grid).

    live = LiveTraining(n=16, steps=10)                      # a callback for train()
    result = train(get_config("tiny"), "runs/tiny", max_seconds=60, callback=live,
                   callback_every=50)
    live.figure()                                            # the static twin, after the run

In a live kernel :class:`LiveTraining` redraws one output (an IPython display handle) at every
report; in the static book (:func:`ddpm_lib.book.static_output`) it only keeps the last report,
and :meth:`LiveTraining.figure` draws it once. The samples are DDIM (Song et al. 2021,
:func:`ddpm_lib.sample.ddim`) from the same noise :math:`x_T` at every report, so the grid shows
one set of digits taking shape."""

from __future__ import annotations

import numpy as np
import torch

from .._validate import check_int
from ..book import static_output
from ..sample import IMAGE_SHAPE, ddim
from ..train.progress import TrainProgress
from .images import image_grid


def draw_training(fig, losses: torch.Tensor, samples: torch.Tensor | None, step: int) -> None:
    r"""Left: :math:`L_\text{simple}` of every step (light) and its running mean over 25 steps;
    right: ``samples`` ``[N, 1, H, W]`` in [-1, 1] as a grid (omitted when None)."""
    losses = torch.as_tensor(losses, dtype=torch.float64).flatten()
    ax = fig.add_subplot(1, 2, 1) if samples is not None else fig.add_subplot(1, 1, 1)
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses.numpy(), color="tab:blue", alpha=0.3, lw=0.8, label="each step")
    if len(losses) >= 25:
        smooth = np.convolve(losses.numpy(), np.ones(25) / 25, mode="valid")
        ax.plot(steps[24:], smooth, color="tab:blue", lw=1.8, label="mean of 25")
    ax.set(xlabel="optimiser step", ylabel=r"$L_\mathrm{simple}$", yscale="log",
           title=f"Algorithm 1, step {step}")  # fmt: skip
    ax.grid(alpha=0.3)
    if len(losses):
        ax.legend(fontsize=8)
    if samples is not None:
        ax_s = fig.add_subplot(1, 2, 2)
        nrow = int(np.ceil(np.sqrt(samples.shape[0])))
        ax_s.imshow(image_grid(samples.cpu(), nrow=nrow).numpy(), cmap="gray", vmin=0, vmax=1)
        ax_s.set_axis_off()
        ax_s.set_title(f"samples of the EMA model at step {step}", fontsize=9)
    fig.tight_layout()


class LiveTraining:
    """A ``callback`` for :func:`ddpm_lib.train.train`: at every report it samples ``n`` digits
    with ``steps`` DDIM steps from a fixed :math:`x_T` (seeded by ``seed``) and, in a live kernel,
    redraws the loss curve and the grid in place.

    Args:
        n: digits in the grid (0: the loss curve only, no sampling cost).
        steps: DDIM steps per sample grid (each is one model call on ``n`` images).
        seed: seed of the fixed starting noise.
        static: force the static mode (keep the reports, draw nothing); None picks it with
            :func:`ddpm_lib.book.static_output`.
        figsize: of the live figure and of :meth:`figure`.

    Attributes: ``last`` (the last :class:`~ddpm_lib.train.TrainProgress`, or None),
    ``samples`` (the last grid, ``[n, 1, 28, 28]`` on the CPU, or None), ``reports`` (the steps
    reported so far)."""

    def __init__(self, n: int = 16, steps: int = 10, seed: int = 0,
                 static: bool | None = None, figsize: tuple[float, float] = (9.0, 3.4)):  # fmt: skip
        for name, value, lo in (("n", n, 0), ("steps", steps, 1), ("seed", seed, 0)):
            check_int(name, value, lo)
        self.n, self.steps, self.figsize = n, steps, figsize
        self.static = static_output() if static is None else bool(static)
        self._x_T = torch.randn((n, *IMAGE_SHAPE), generator=torch.Generator().manual_seed(seed))
        self.last: TrainProgress | None = None
        self.samples: torch.Tensor | None = None
        self.reports: list[int] = []
        self._handle = None

    def __call__(self, progress: TrainProgress) -> None:
        if not isinstance(progress, TrainProgress):
            raise TypeError(f"progress must be a TrainProgress, got {type(progress).__name__}")
        self.last = progress
        self.reports.append(progress.step)
        if self.n and (progress.final or not self.static):
            device = next(progress.ema_model.parameters()).device
            with torch.no_grad():
                self.samples = ddim(progress.ema_model, progress.diffusion, steps=self.steps,
                                    x_T=self._x_T.to(device), threshold="static").cpu()  # fmt: skip
        if not self.static:
            self._redraw()

    def _redraw(self) -> None:
        from IPython.display import display

        fig = self.figure()
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)

    def figure(self):
        """The loss curve and the grid of the last report as a matplotlib figure (the static
        twin); ValueError before the first report. A plain ``Figure`` (not pyplot's), so that it
        shows once, as the value of a notebook cell, and needs no closing."""
        from matplotlib.figure import Figure

        if self.last is None:
            raise ValueError("nothing to draw yet: pass this object as train(..., callback=...)")
        fig = Figure(figsize=self.figsize)
        draw_training(fig, self.last.losses, self.samples, self.last.step)
        return fig
