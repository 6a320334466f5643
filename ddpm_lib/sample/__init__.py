r"""Samplers for a trained ε-model, one module per idea, one contract.

Modules: :mod:`~ddpm_lib.sample.discrete` (:func:`ancestral`, Algorithm 2; :func:`ddim`),
:mod:`~ddpm_lib.sample.continuous` (:func:`reverse_sde`, :func:`probability_flow`),
:mod:`~ddpm_lib.sample.inpaint` (:func:`inpaint`), :mod:`~ddpm_lib.sample.langevin`
(:func:`langevin`, for a score function), :mod:`~ddpm_lib.sample.guidance` (classifier-free and
classifier guidance, thresholds: how every sampler evaluates the model at a time),
:mod:`~ddpm_lib.sample.base` (where sampling starts, :class:`Step`, :class:`Recorder`) and
:mod:`~ddpm_lib.sample.registry` (:data:`SAMPLERS`, the one dispatch by name).

**The contract.** Every sampler is called as

``sampler(model, diffusion, *, n=None, shape=None, x_T=None, generator=None, noise=None,
labels=None, guidance_scale=1.0, classifier=None, classifier_scale=1.0, threshold="none",
dynamic_percentile=0.995, clip_samples=True, callback=None, device=None, progress=False,
<its own step options>) -> torch.Tensor``

and returns the samples ``[n, *shape]``; everything after ``diffusion`` is keyword-only.

- ``model(x_t, t[, labels]) -> eps``: a :class:`ddpm_lib.models.UNet` or any callable with that
  signature (``t`` an integer step ``[n]``, or the continuous time :math:`\tau T` for the
  continuous samplers); ``diffusion``: a :class:`ddpm_lib.Diffusion`.
- ``n``, ``shape``, ``x_T``: ``x_T`` ``[n, *shape]`` is where sampling starts; if omitted it is
  drawn (float32, from ``generator``) with ``shape`` defaulting to :data:`IMAGE_SHAPE`
  ``(1, 28, 28)``; ``(1,)`` and ``(2,)`` are the toy data of part II.
- ``generator``, ``noise``: every draw comes from ``generator``; or ``noise`` ``[K, n, *shape]``
  gives every draw after :math:`x_T` for a sampler of K steps, ``noise[k - 1]`` being the
  :math:`z` of the k-th step counted from the end (for :func:`ancestral`, the step from
  :math:`x_t` uses ``noise[t - 1]``). Given either, a sampler is deterministic.
  :func:`probability_flow` draws nothing after :math:`x_T` and :func:`inpaint` draws several
  noises per step: both refuse ``noise`` (use ``generator``).
- ``labels`` ``[n]`` (or one int), ``guidance_scale``: class-conditional sampling and
  classifier-free guidance (:func:`guided_eps`); ``classifier``, ``classifier_scale``:
  classifier guidance (:class:`~ddpm_lib.sample.guidance.Guide`).
- ``threshold``, ``dynamic_percentile``: what happens to :math:`\hat x_0` inside every step
  (:func:`threshold_x0`): ``"none"`` (the published algorithms, the default everywhere),
  ``"static"`` (clamp to [-1, 1]) or ``"dynamic"`` (Imagen's); :math:`\epsilon` is then
  recomputed from the thresholded :math:`\hat x_0`.
- ``clip_samples``: clamp the returned samples to the data range [-1, 1].
- ``callback(step)``: called once per step with a :class:`Step` ``(t, x_t, x0_hat)``: the network
  time, the state before the step and the model's :math:`\hat x_0` there, before the threshold
  (the step used ``threshold_x0(x0_hat, threshold, dynamic_percentile)``).
  :class:`Recorder` is such a callback that keeps them.
- ``device``: where to sample (default the model's, the CPU for a plain function);
  ``progress``: a tqdm bar.

Own step options: :func:`ancestral` runs all T steps (``variance``); :func:`ddim` ``steps``,
``eta``; :func:`reverse_sde` ``steps``; :func:`probability_flow` is adaptive (``rtol``,
``atol``, ``method``, ``tau_end``, ``denoise``, ``t_eval``); :func:`inpaint` also takes
``x_known`` and ``mask`` (``steps``, ``resample``, ``reconstruction_scale``). A bad argument
raises a ValueError (TypeError for a wrong type) naming it. Network calls are counted with
:class:`ddpm_lib.models.CallCounter`."""

from .base import IMAGE_SHAPE, Recorder, Step
from .continuous import probability_flow, reverse_sde
from .discrete import ancestral, ddim, ddim_timesteps
from .guidance import THRESHOLDS, classifier_gradient, guided_eps, threshold_x0
from .inpaint import inpaint
from .langevin import langevin
from .registry import SAMPLERS, SamplerEntry

__all__ = [
    "ancestral",
    "ddim",
    "reverse_sde",
    "probability_flow",
    "inpaint",
    "langevin",
    "SAMPLERS",
    "SamplerEntry",
    "Step",
    "Recorder",
    "guided_eps",
    "classifier_gradient",
    "threshold_x0",
    "THRESHOLDS",
    "ddim_timesteps",
    "IMAGE_SHAPE",
]
