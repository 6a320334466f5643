r"""Chapter 7's pictures: guidance, on the same digits and on the exact 2-D toy; inpainting.

* Classifier guidance vs classifier-free guidance on MNIST: samples for a list of scales, the
  same starting noise :math:`\mathbf x_T` for every scale and both methods, so that one digit
  changes as the scale grows (:func:`guidance_grid`, :func:`draw_guidance`,
  :func:`explore_guidance`). "classifier": the unconditional model and a noise-conditional
  classifier with ``classifier_scale`` :math:`\gamma`; "cfg": the class-conditional model with
  ``guidance_scale`` :math:`s`. Scale 0 is the unconditional model and scale 1 the plain
  conditional one for both.
* The tilted density on the 2-D toy: for each :math:`\gamma` the exact
  :math:`p(\mathbf x)\,q(y\mid\mathbf x)^\gamma / Z` next to the samples that classifier guidance
  with the exact classifier produces (:func:`tilted_frames`, :func:`draw_tilted`,
  :func:`explore_tilted`; they live in :mod:`ddpm_lib.viz.tilted` and are re-exported here).
* Inpainting: a mask (:func:`make_mask`), a digit, its completion by
  :func:`ddpm_lib.sample.inpaint` (:func:`inpaint_frames`, :func:`draw_inpainting`,
  :func:`explore_inpainting`).

No sampler math lives here: every sample comes from :func:`ddpm_lib.sample.ddim` or
:func:`ddpm_lib.sample.inpaint`, every label from the evaluator
(:func:`ddpm_lib.metrics.predict`), every density from :class:`~ddpm_lib.toy.GaussianMixture`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import numpy as np
import torch

from .. import sample
from .._validate import check_int, check_number
from ..config import IMAGE_CHANNELS, IMAGE_SIZE
from ..diffusion import Diffusion
from ._live import explore
from .common import check_scales, frame_index
from .images import draw_image, to_display
from .tilted import TiltedFrames as TiltedFrames
from .tilted import draw_tilted as draw_tilted
from .tilted import explore_tilted as explore_tilted
from .tilted import tilted_frames as tilted_frames

_NAMES = {"classifier": "classifier γ", "cfg": "CFG s"}


_EVALUATOR: list = []  # the shipped evaluator, loaded at most once


def _evaluator(evaluator):
    if evaluator is not None:
        return evaluator
    if not _EVALUATOR:
        from ..metrics import load_classifier

        _EVALUATOR.append(load_classifier())
    return _EVALUATOR[0]


def _predict(evaluator, x: torch.Tensor) -> torch.Tensor:
    from ..metrics import predict

    return predict(evaluator, x.float())


# ------------------------------------------------------------------------ MNIST: the sweep
class GuidanceGrid(NamedTuple):
    r"""What :func:`draw_guidance` shows, on the CPU.

    * ``methods``: ``("classifier", "cfg")`` or one of them; ``scales`` float64 ``[S]``
      (increasing): :math:`\gamma` for "classifier", :math:`s` for "cfg".
    * ``labels`` int64 ``[n]``: the class asked for; ``x_T`` ``[n, 1, 28, 28]``: the starting
      noise shared by every method and scale.
    * ``images`` float32 ``[M, S, n, 1, 28, 28]`` (method, scale, digit); ``predicted`` int64
      ``[M, S, n]``: the evaluator's label of each image; ``seconds`` float64 ``[M, S]``: the
      sampler's wall-clock time (noisy); ``steps``: DDIM steps.
    """

    methods: tuple[str, ...]
    scales: torch.Tensor
    labels: torch.Tensor
    x_T: torch.Tensor
    images: torch.Tensor
    predicted: torch.Tensor
    seconds: torch.Tensor
    steps: int

    def accuracy(self) -> torch.Tensor:
        """float64 ``[M, S]``: the fraction of digits the evaluator gives the label asked for."""
        return (self.predicted == self.labels).double().mean(-1)


def guidance_grid(
    diffusion: Diffusion,
    labels: Sequence[int] | torch.Tensor,
    scales: Sequence[float],
    *,
    model: Callable | None = None,
    classifier: Callable | None = None,
    cfg_model: Callable | None = None,
    steps: int = 20,
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    evaluator=None,
    threshold: str = "static",
    dynamic_percentile: float = 0.995,
) -> GuidanceGrid:
    r"""Guided DDIM samples (:func:`ddpm_lib.sample.ddim`, ``steps`` steps, :math:`\eta = 0`) of
    the digits ``labels`` for every scale of ``scales`` and each method whose networks are given:

    * "classifier" (``model`` unconditional, e.g. ``pretrained("mnist-unet")``, and
      ``classifier``, e.g. ``pretrained("mnist-noisy-classifier")``): ``classifier_scale`` =
      :math:`\gamma`, :math:`\hat\epsilon = \epsilon_\theta - \sqrt{1-\bar\alpha_t}\,\gamma\,
      \nabla\log p_\phi(y\mid\mathbf x_t, t)` (Dhariwal & Nichol 2021);
    * "cfg" (``cfg_model``, e.g. ``pretrained("mnist-unet-cfg")``): ``guidance_scale`` = :math:`s`,
      :math:`\epsilon_\theta(\varnothing) + s\,(\epsilon_\theta(y) - \epsilon_\theta(\varnothing))`
      (Ho & Salimans 2022).

    Every run starts from the same ``x_T`` (``[n, 1, 28, 28]``; default drawn from
    ``generator``); DDIM with :math:`\eta = 0` draws nothing else, so a column of the grid is one
    digit as the scale changes. ``threshold``/``dynamic_percentile`` go to the sampler (default
    ``"static"``: :math:`\hat{\mathbf x}_0` clamped to [-1, 1]). The evaluator (default
    :func:`ddpm_lib.metrics.load_classifier`) labels every image. Cost: ``steps`` network calls
    per method and scale (CFG's two predictions in one batch of ``2n``; the classifier's gradient
    adds one forward and backward pass through the classifier)."""
    if (model is None) != (classifier is None):
        raise ValueError("classifier guidance needs both model (unconditional) and classifier")
    methods = tuple(m for m, on in (("classifier", model is not None),
                                    ("cfg", cfg_model is not None)) if on)  # fmt: skip
    if not methods:
        raise ValueError("pass model and classifier (classifier guidance) and/or cfg_model")
    y = torch.as_tensor(labels).long().cpu().reshape(-1) if not isinstance(labels, int) else None
    if y is None or y.numel() == 0:
        raise ValueError(f"labels must be a non-empty sequence of class labels, got {labels!r}")
    scales = check_scales(scales, "scales")
    check_int("steps", steps, 1)
    n = y.numel()
    if x_T is None:
        x_T = torch.randn(n, IMAGE_CHANNELS, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    if not isinstance(x_T, torch.Tensor) or x_T.shape[0] != n:
        raise ValueError(f"x_T must be a tensor of {n} images, one per label")
    images = torch.empty(len(methods), len(scales), *x_T.shape)
    seconds = torch.zeros(len(methods), len(scales), dtype=torch.float64)
    common = dict(x_T=x_T, steps=steps, labels=y, threshold=threshold,
                  dynamic_percentile=dynamic_percentile)  # fmt: skip
    for i, method in enumerate(methods):
        for j, scale in enumerate(scales):
            start = time.perf_counter()
            if method == "classifier":
                out = sample.ddim(model, diffusion, classifier=classifier, classifier_scale=scale,
                                  **common)  # fmt: skip
            else:
                out = sample.ddim(cfg_model, diffusion, guidance_scale=scale, **common)
            seconds[i, j] = time.perf_counter() - start
            images[i, j] = out.detach().float().cpu()
    ev = _evaluator(evaluator)
    flat = images.reshape(-1, *x_T.shape[1:])
    predicted = _predict(ev, flat).reshape(len(methods), len(scales), n)
    return GuidanceGrid(methods, torch.tensor(scales, dtype=torch.float64), y,
                        x_T.detach().cpu(), images, predicted, seconds, steps)  # fmt: skip


def _bare(ax) -> None:
    for spine in ax.spines.values():
        spine.set_visible(False)


def draw_guidance(
    fig, scale: float, method: str = "both", *, grid: GuidanceGrid, n_show: int | None = None
) -> None:
    r"""One row of samples per method (``method`` = ``"both"`` or one of ``grid.methods``) at
    ``scale`` (one of ``grid.scales``), the first ``n_show`` digits; above each image the label
    asked for and the evaluator's label (green when they agree, red otherwise); the row's title
    gives the evaluator's accuracy on the row."""
    if method != "both" and method not in grid.methods:
        raise ValueError(f"method must be 'both' or one of {grid.methods}, got {method!r}")
    j = frame_index(grid.scales, scale, "scale")
    rows = list(grid.methods) if method == "both" else [method]
    n = grid.labels.numel() if n_show is None else min(check_int("n_show", n_show, 1),
                                                         grid.labels.numel())  # fmt: skip
    axes = fig.subplots(len(rows), n, squeeze=False)
    acc = grid.accuracy()
    for r, name in enumerate(rows):
        i = grid.methods.index(name)
        for k in range(n):
            ax = axes[r, k]
            draw_image(ax, grid.images[i, j, k])
            _bare(ax)
            want, got = int(grid.labels[k]), int(grid.predicted[i, j, k])
            colour = "tab:green" if want == got else "tab:red"
            ax.set_title(f"{want}→{got}", fontsize=8, color=colour)
        axes[r, 0].set_ylabel(f"{_NAMES[name]} = {scale:g}\nacc. {float(acc[i, j]):.0%}",
                              fontsize=8)  # fmt: skip
    fig.suptitle(f"scale {scale:g}, DDIM {grid.steps} steps (asked → evaluator's label)",
                 fontsize=10)  # fmt: skip


def explore_guidance(grid: GuidanceGrid, static: bool | None = None, n_show: int | None = None):
    """:func:`draw_guidance` with a slider over ``grid.scales`` and a method menu ("both" and each
    method); in the static book an animation over the scales with both methods side by side."""
    draw = partial(draw_guidance, grid=grid, n_show=n_show)
    n = grid.labels.numel() if n_show is None else min(n_show, grid.labels.numel())
    methods = ["both", *grid.methods] if len(grid.methods) > 1 else list(grid.methods)
    scales = [float(s) for s in grid.scales]
    figsize = (1.0 * n + 1.2, 1.45 * len(grid.methods) + 0.7)
    return explore(draw, {"scale": scales, "method": methods}, "scale", figsize=figsize,
                   static=static, initial={"method": methods[0]})  # fmt: skip


# ---------------------------------------------------------------------------- inpainting
#: The masks :func:`make_mask` draws: the pixels hidden (to be filled in) are those named.
MASK_KINDS = ("bottom half", "top half", "box", "random pixels")


def make_mask(
    kind: str, generator: torch.Generator | None = None, hidden_fraction: float = 0.75
) -> torch.Tensor:
    r"""A mask ``[1, 1, 28, 28]`` (float32; 1 = known pixel, 0 = to fill in) of ``kind``:
    ``"bottom half"`` hides rows 14-27, ``"top half"`` rows 0-13, ``"box"`` the central
    14 x 14 square (rows and columns 7-20, a quarter of the image), ``"random pixels"`` exactly
    ``round(hidden_fraction * 784)`` pixels chosen at random (``generator``)."""
    if kind not in MASK_KINDS:
        raise ValueError(f"kind must be one of {MASK_KINDS}, got {kind!r}")
    s = IMAGE_SIZE
    mask = torch.ones(1, 1, s, s)
    if kind == "bottom half":
        mask[..., s // 2 :, :] = 0
    elif kind == "top half":
        mask[..., : s // 2, :] = 0
    elif kind == "box":
        lo, hi = s // 4, s - s // 4
        mask[..., lo:hi, lo:hi] = 0
    else:
        frac = hidden_fraction
        check_number("hidden_fraction", frac, 0, 1)
        hidden = torch.randperm(s * s, generator=generator)[: round(frac * s * s)]
        mask.view(-1)[hidden] = 0
    return mask


class InpaintFrames(NamedTuple):
    r"""What :func:`draw_inpainting` shows, on the CPU: ``kinds`` (mask names), ``label`` (the
    class asked for, ``None`` = unconditional), ``guidance_scale`` (CFG :math:`s`, used with a
    label), ``x0`` ``[n, 1, 28, 28]`` (the digits), ``true_labels`` int64 ``[n]`` or ``None``,
    ``masks`` ``[K, 1, 1, 28, 28]``, ``x_T`` ``[n, 1, 28, 28]`` (shared by every mask),
    ``completed`` ``[K, n, 1, 28, 28]``, ``predicted`` int64 ``[K, n]`` (the evaluator's labels of
    the completions), ``steps`` and ``resample`` (of :func:`ddpm_lib.sample.inpaint`)."""

    kinds: tuple[str, ...]
    label: int | None
    guidance_scale: float
    x0: torch.Tensor
    true_labels: torch.Tensor | None
    masks: torch.Tensor
    x_T: torch.Tensor
    completed: torch.Tensor
    predicted: torch.Tensor
    steps: int
    resample: int


def _inpaint(model, diffusion, x0, mask, label, guidance_scale, steps, resample, x_T, seed):
    extra = {} if label is None else {"labels": label, "guidance_scale": guidance_scale}
    gen = torch.Generator().manual_seed(seed)
    out = sample.inpaint(model, diffusion, x_known=x0, mask=mask, resample=resample, steps=steps,
                         x_T=x_T, generator=gen, threshold="static", **extra)  # fmt: skip
    return out.detach().float().cpu()


def inpaint_frames(
    model: Callable,
    diffusion: Diffusion,
    x0: torch.Tensor,
    kinds: Sequence[str] = MASK_KINDS,
    *,
    label: int | None = None,
    guidance_scale: float = 3.0,
    true_labels: torch.Tensor | None = None,
    steps: int = 50,
    resample: int = 1,
    generator: torch.Generator | None = None,
    evaluator=None,
    seed: int = 0,
) -> InpaintFrames:
    r"""The digits ``x0`` ``[n, 1, 28, 28]`` (in [-1, 1]) completed by
    :func:`ddpm_lib.sample.inpaint` (``steps``, ``resample``) under each mask of ``kinds``
    (:func:`make_mask`; the random one drawn from ``generator``). ``label = None``: ``model`` is
    unconditional (``pretrained("mnist-unet")``); a label: ``model`` is the class-conditional one
    (``pretrained("mnist-unet-cfg")``) with classifier-free scale ``guidance_scale`` ("make this
    half-digit a 3"). One starting noise ``x_T`` (from ``generator``) for every mask, and the
    sampler's noise from ``torch.Generator().manual_seed(seed)``, so the masks are compared on
    equal terms. The evaluator (default :func:`ddpm_lib.metrics.load_classifier`) labels the
    completions. Cost: ``steps * resample`` network calls per mask."""
    kinds = tuple(kinds)
    if not kinds or any(k not in MASK_KINDS for k in kinds):
        raise ValueError(f"kinds must be a non-empty selection of {MASK_KINDS}, got {kinds}")
    if x0.dim() != 4 or tuple(x0.shape[1:]) != (IMAGE_CHANNELS, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"x0 must be digits [n, 1, 28, 28], got {list(x0.shape)}")
    if label is not None and (isinstance(label, bool) or not isinstance(label, int)):
        raise ValueError(f"label must be None (unconditional) or an int class, got {label!r}")
    check_int("steps", steps, 1)
    check_int("resample", resample, 1)
    x0 = x0.detach().float().cpu()
    masks = torch.stack([make_mask(k, generator) for k in kinds])
    x_T = torch.randn(x0.shape, generator=generator)
    completed = torch.stack([_inpaint(model, diffusion, x0, m, label, guidance_scale, steps,
                                      resample, x_T, seed) for m in masks])  # fmt: skip
    predicted = _predict(_evaluator(evaluator), completed.reshape(-1, *x0.shape[1:]))
    if true_labels is not None:
        true_labels = torch.as_tensor(true_labels).long().cpu().reshape(-1)
        if true_labels.numel() != x0.shape[0]:
            raise ValueError(f"true_labels must hold {x0.shape[0]} labels, got {true_labels}")
    return InpaintFrames(kinds, label, float(guidance_scale), x0, true_labels, masks, x_T,
                         completed, predicted.reshape(len(kinds), -1), steps, resample)  # fmt: skip


def _masked(ax, x: torch.Tensor, mask: torch.Tensor) -> None:
    """The known pixels in grey, the hidden ones in a flat blue."""
    grey = to_display(x).reshape(IMAGE_SIZE, IMAGE_SIZE).numpy()
    known = mask.reshape(IMAGE_SIZE, IMAGE_SIZE).numpy() > 0.5
    rgb = np.where(known[..., None], grey[..., None], np.array([0.30, 0.45, 0.80]))  # [H, W, 3]
    ax.imshow(rgb, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def _target(frames: InpaintFrames, i: int) -> int | None:
    if frames.label is not None:
        return frames.label
    return None if frames.true_labels is None else int(frames.true_labels[i])


def _completion_title(ax, frames: InpaintFrames, k: int, i: int) -> None:
    got, want = int(frames.predicted[k, i]), _target(frames, i)
    colour = "black" if want is None else ("tab:green" if got == want else "tab:red")
    ax.set_title(f"→ {got}", fontsize=8, color=colour)


def draw_inpainting(fig, kind: str, *, frames: InpaintFrames, n_show: int | None = None) -> None:
    """For ``kind`` (one of ``frames.kinds``): three rows, the originals, the masked inputs
    (hidden pixels in blue) and the completions with the evaluator's label (green when it is the
    label asked for, or without a label the original's, red otherwise). ``kind = "all"``: one row
    per digit, the original and then, per mask, the masked input and its completion."""
    n = (
        frames.x0.shape[0]
        if n_show is None
        else min(check_int("n_show", n_show, 1), frames.x0.shape[0])
    )
    asked = "unconditional" if frames.label is None else (
        f"label {frames.label}, CFG s = {frames.guidance_scale:g}")  # fmt: skip
    title = f"inpainting ({asked}; {frames.steps} steps, resample {frames.resample})"
    if kind == "all":
        axes = fig.subplots(n, 1 + 2 * len(frames.kinds), squeeze=False)
        for i in range(n):
            draw_image(axes[i, 0], frames.x0[i])
            for k, name in enumerate(frames.kinds):
                _masked(axes[i, 1 + 2 * k], frames.x0[i], frames.masks[k])
                draw_image(axes[i, 2 + 2 * k], frames.completed[k, i])
                _completion_title(axes[i, 2 + 2 * k], frames, k, i)
                if i == 0:
                    axes[0, 1 + 2 * k].set_title(name, fontsize=8)
        axes[0, 0].set_title("original", fontsize=8)
        for ax in axes.flat:
            _bare(ax)
        fig.suptitle(title, fontsize=10)
        return
    if kind not in frames.kinds:
        raise ValueError(f"kind must be 'all' or one of {frames.kinds}, got {kind!r}")
    k = frames.kinds.index(kind)
    axes = fig.subplots(3, n, squeeze=False)
    for i in range(n):
        draw_image(axes[0, i], frames.x0[i])
        if frames.true_labels is not None:
            axes[0, i].set_title(f"{int(frames.true_labels[i])}", fontsize=8)
        _masked(axes[1, i], frames.x0[i], frames.masks[k])
        draw_image(axes[2, i], frames.completed[k, i])
        _completion_title(axes[2, i], frames, k, i)
    for r, name in enumerate(("original", "masked", "completed")):
        axes[r, 0].set_ylabel(name, fontsize=8)
    for ax in axes.flat:
        _bare(ax)
    fig.suptitle(f"{kind}: {title}", fontsize=10)


UNCONDITIONAL = "unconditional"


def explore_inpainting(
    frames: InpaintFrames,
    static: bool | None = None,
    *,
    model: Callable | None = None,
    cfg_model: Callable | None = None,
    diffusion: Diffusion | None = None,
    evaluator=None,
    n_show: int | None = None,
    seed: int = 0,
):
    """:func:`draw_inpainting` with a menu of the mask kinds and, live, of the label
    (``"unconditional"`` = ``model``, a digit = ``cfg_model`` with ``frames.guidance_scale``): a
    choice not in ``frames`` is computed when picked (same digits, masks and ``x_T``; a few
    seconds) and kept. Without ``model``, ``cfg_model`` and ``diffusion`` only ``frames``'s label
    is offered. In the static book an animation over ``frames.kinds`` (precomputed)."""
    n = frames.x0.shape[0] if n_show is None else min(n_show, frames.x0.shape[0])
    figsize = (1.05 * n + 0.9, 4.0)
    shown = UNCONDITIONAL if frames.label is None else frames.label
    cache: dict[tuple[str, object], InpaintFrames] = {(k, shown): frames for k in frames.kinds}
    live = model is not None and cfg_model is not None and diffusion is not None
    labels: list = [UNCONDITIONAL, *range(10)] if live else [shown]

    def draw(fig, kind: str, label) -> None:
        if (kind, label) not in cache:
            k = frames.kinds.index(kind)
            lab = None if label == UNCONDITIONAL else int(label)
            net = model if lab is None else cfg_model
            done = _inpaint(net, diffusion, frames.x0, frames.masks[k], lab,
                            frames.guidance_scale, frames.steps, frames.resample, frames.x_T,
                            seed)[None]  # fmt: skip
            pred = _predict(_evaluator(evaluator), done[0])[None]
            cache[(kind, label)] = frames._replace(
                kinds=(kind,), label=lab, masks=frames.masks[k : k + 1], completed=done,
                predicted=pred,
            )  # fmt: skip
        draw_inpainting(fig, kind, frames=cache[(kind, label)], n_show=n_show)

    controls = {"kind": list(frames.kinds), "label": labels}
    return explore(draw, controls, "kind", figsize=figsize, static=static,
                   initial={"label": shown}, labels={"kind": "mask"})  # fmt: skip
