r"""The DDPM forward process, its Gaussian posterior and the reverse step (Ho et al. 2020).

Notation and indexing follow the book exactly: ``t = 1, ..., T``, and every schedule tensor has
length ``T + 1`` with index 0 for the clean data, so ``d.alpha_bars[t]`` *is* :math:`\bar\alpha_t`.
Images are ``[B, C, H, W]`` (any ``[B, ...]`` works); a time argument ``t`` is a Python ``int`` (the
whole batch at one step, as in Algorithm 2) or a ``LongTensor`` of shape ``[B]`` (one step per
example, as in Algorithm 1). Coefficients are gathered in float64 and cast to the data's dtype.

Every method is one equation: it checks its arguments cheaply (dtypes, shapes and int compares; a
tensor ``t`` is range-checked only where reading it back costs no GPU sync, see
:func:`ddpm_lib._validate.check_t`) and applies the formula. The samplers (:mod:`ddpm_lib.sample`)
and the objectives (:mod:`ddpm_lib.bound`) call these same methods, so every formula of the process
is written once; :meth:`Diffusion.coef` and :func:`randn_like` are the plumbing they share."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from ._validate import (
    check_batch,
    check_choice,
    check_eps,
    check_number,
    check_same_shape,
    check_t,
    check_tensor,
    check_time,
)
from .schedule import check_betas

#: A noise-prediction network: ``model(x_t [B, ...], t LongTensor [B]) -> eps [B, ...]``.
EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: Choices for the reverse-process variance :math:`\sigma_t^2` (Ho et al. 2020, Sec. 3.2).
VARIANCES = ("beta", "beta_tilde")


class Gaussian(NamedTuple):
    """A diagonal Gaussian: ``mean`` has the data's shape; ``variance`` broadcasts against it."""

    mean: torch.Tensor
    variance: torch.Tensor


def x0_from_eps(x_t: torch.Tensor, eps: torch.Tensor, sqrt_ab, sqrt_1m_ab) -> torch.Tensor:
    r""":math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha}\,\epsilon)/\sqrt{\bar\alpha}`: Ho et al. 2020,
    Eq. 4 solved for :math:`x_0`, at any noise level, given :math:`\sqrt{\bar\alpha}` and
    :math:`\sqrt{1-\bar\alpha}` (numbers, or tensors that broadcast against ``x_t`` ``[B, ...]``).
    The one home of the formula: :meth:`Diffusion.predict_x0_from_eps` calls it at a step ``t``,
    the continuous-time samplers at :math:`\bar\alpha(\tau)`. Returns ``[B, ...]``."""
    return (x_t - sqrt_1m_ab * eps) / sqrt_ab


def eps_from_x0(x_t: torch.Tensor, x0: torch.Tensor, sqrt_ab, sqrt_1m_ab) -> torch.Tensor:
    r""":math:`\epsilon = (x_t - \sqrt{\bar\alpha}\,x_0)/\sqrt{1-\bar\alpha}`, the inverse of
    :func:`x0_from_eps` (same arguments). Returns ``[B, ...]``."""
    return (x_t - sqrt_ab * x0) / sqrt_1m_ab


def randn_like(
    x: torch.Tensor, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn from ``generator`` (on its own device), or the
    given (already checked) ``noise`` in ``x``'s dtype and device: the one place a draw happens."""
    if noise is not None:
        return noise.to(x)
    if generator is None:
        return torch.randn_like(x)
    noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype)
    return noise.to(x.device)


class Diffusion:
    r"""A variance schedule and every closed form built on it.

    Args:
        betas: float tensor ``[T + 1]``, ``betas[0] = 0`` and :math:`\beta_t \in (0, 1)` for
            ``t >= 1`` (see :mod:`ddpm_lib.schedule`).

    Attributes (float64 ``[T + 1]``, index ``t``):
        ``betas`` :math:`\beta_t`; ``alphas`` :math:`\alpha_t = 1 - \beta_t`; ``alpha_bars``
        :math:`\bar\alpha_t = \prod_{s \le t}\alpha_s` (``alpha_bars[0] = 1``); ``beta_tildes``
        :math:`\tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\beta_t` (Ho et al. 2020,
        Eq. 7; ``beta_tildes[1] = 0``, and index 0 holds 0 as a placeholder); ``snrs``
        :math:`\mathrm{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)` (``snrs[0] = inf``).
    """

    def __init__(self, betas: torch.Tensor):
        betas = check_betas(betas)
        self.T: int = betas.shape[0] - 1
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)
        ab, ab_prev = self.alpha_bars[1:], self.alpha_bars[:-1]
        self.beta_tildes = torch.zeros_like(betas)
        self.beta_tildes[1:] = (1.0 - ab_prev) / (1.0 - ab) * betas[1:]
        self.snrs = self.alpha_bars / (1.0 - self.alpha_bars)
        # Posterior-mean coefficients of x_0 and x_t (Ho et al. 2020, Eq. 7); index 0 unused.
        self.posterior_coef_x0 = torch.zeros_like(betas)
        self.posterior_coef_x0[1:] = ab_prev.sqrt() * betas[1:] / (1.0 - ab)
        self.posterior_coef_xt = torch.zeros_like(betas)
        self.posterior_coef_xt[1:] = self.alphas[1:].sqrt() * (1.0 - ab_prev) / (1.0 - ab)
        # The L_0 decoder needs a positive scale at t = 1 where beta_tilde_1 = 0; like Ho et al.'s
        # implementation we use beta_tilde_2 there (beta_1 if T = 1).
        self.beta_tildes_clipped = self.beta_tildes.clone()
        self.beta_tildes_clipped[1] = self.beta_tildes[2] if self.T >= 2 else betas[1]

    # ----------------------------------------------------------------------------- plumbing
    @property
    def device(self) -> torch.device:
        return self.betas.device

    def to(self, device: torch.device | str) -> Diffusion:
        """Move every schedule tensor to ``device`` (in place) and return ``self``."""
        for name, value in vars(self).items():
            if isinstance(value, torch.Tensor):
                setattr(self, name, value.to(device))
        return self

    def __repr__(self) -> str:
        return (
            f"Diffusion(T={self.T}, beta_1={float(self.betas[1]):.3g}, "
            f"beta_T={float(self.betas[-1]):.3g}, alpha_bar_T={float(self.alpha_bars[-1]):.4g})"
        )

    def coef(self, values: torch.Tensor, t: int | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``values[t]`` in ``x``'s dtype/device, shaped ``[B, 1, ..., 1]`` to broadcast over ``x``:
        a schedule tensor ``values`` ``[T + 1]`` (e.g. ``alpha_bars``) gathered at an int ``t`` or a
        LongTensor ``t`` ``[B]`` (already checked; this is the gather every formula uses)."""
        if isinstance(t, int):
            return values[t].to(device=x.device, dtype=x.dtype)
        c = values[t.to(values.device)].to(device=x.device, dtype=x.dtype)
        return c.reshape(-1, *([1] * (x.dim() - 1))) if c.dim() == 1 else c

    def _check(self, t: int | torch.Tensor, lo: int = 1, **tensors: torch.Tensor):
        """The checks of a public entry: every tensor floating point with a batch dimension and the
        first one's shape (a None, e.g. an omitted ``noise``, is skipped), ``t`` in ``[lo, T]`` with
        one entry for the batch or one per example (its range read back only where that costs no
        GPU sync). Returns ``t`` as an int or a LongTensor."""
        (first_name, first), *rest = ((k, v) for k, v in tensors.items() if v is not None)
        check_tensor(first_name, first)
        for name, x in rest:
            check_same_shape(first_name, first, name, check_tensor(name, x))
        t = check_t(t, lo, self.T, sync=False)
        check_batch(t, first)
        return t

    def snr(self, t: int | torch.Tensor) -> torch.Tensor:
        r""":math:`\mathrm{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)` (Kingma et al. 2021), float64,
        for ``t`` in ``[1, T]`` (an int gives a 0-dim tensor, a ``[B]`` tensor gives ``[B]``)."""
        t = check_t(t, 1, self.T)
        return self.snrs[t if isinstance(t, int) else t.to(self.device)]

    # ----------------------------------------------------------------------- forward process
    def q_step(
        self,
        x_prev: torch.Tensor,
        t: int | torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        r"""One step of the forward chain, a draw of
        :math:`q(x_t \mid x_{t-1}) = \mathcal N\big(\sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big)`
        (Ho et al. 2020, Eq. 2):
        :math:`\mathbf x_t = \sqrt{\alpha_t}\,\mathbf x_{t-1} + \sqrt{\beta_t}\,\boldsymbol\epsilon_t`,
        where :math:`\alpha_t = 1-\beta_t` and :math:`\boldsymbol\epsilon_t` is the fresh noise of
        step ``t`` (the book's notation).

        Args: ``x_prev`` :math:`\mathbf x_{t-1}` ``[B, ...]``; ``t`` in ``[1, T]``; ``noise``
        :math:`\boldsymbol\epsilon_t` shaped like ``x_prev`` (drawn from ``generator`` if omitted).
        Returns: :math:`x_t`, shaped like ``x_prev``."""
        t = self._check(t, x_prev=x_prev, noise=noise)
        noise = randn_like(x_prev, generator, noise)
        return (
            self.coef(self.alphas, t, x_prev).sqrt() * x_prev
            + self.coef(self.betas, t, x_prev).sqrt() * noise
        )

    def q_mean_variance(self, x0: torch.Tensor, t: int | torch.Tensor) -> Gaussian:
        r""":math:`q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big)`
        (Ho et al. 2020, Eq. 4), ``t`` in ``[0, T]``. Returns ``Gaussian(mean [B, ...], variance)``."""
        t = self._check(t, lo=0, x0=x0)
        mean = self.coef(self.alpha_bars, t, x0).sqrt() * x0
        return Gaussian(mean, self.coef(1.0 - self.alpha_bars, t, x0))

    def q_sample(
        self,
        x0: torch.Tensor,
        t: int | torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        r"""A draw of :math:`q(x_t \mid x_0)` in closed form (Ho et al. 2020, Eq. 4), by
        reparametrisation:
        :math:`\mathbf x_t = \sqrt{\bar\alpha_t}\,\mathbf x_0 + \sqrt{1-\bar\alpha_t}\,\bar{\boldsymbol\epsilon}_t`,
        where :math:`\bar{\boldsymbol\epsilon}_t = \bar{\boldsymbol\epsilon}_{1:t}` is the one standard
        Gaussian that the step noises :math:`\boldsymbol\epsilon_1, \dots, \boldsymbol\epsilon_t`
        merge into (the book's notation).

        Args: ``x0`` ``[B, ...]``; ``t`` in ``[0, T]`` (``t = 0`` returns ``x0``); ``noise``
        :math:`\bar{\boldsymbol\epsilon}_t` shaped like ``x0`` (drawn from ``generator`` if omitted).
        Returns: :math:`x_t`, shaped like ``x0``."""
        t = self._check(t, lo=0, x0=x0, noise=noise)
        noise = randn_like(x0, generator, noise)
        mean = self.coef(self.alpha_bars, t, x0).sqrt() * x0
        return mean + self.coef(1.0 - self.alpha_bars, t, x0).sqrt() * noise

    # ------------------------------------------------------------------------- the posterior
    def q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: int | torch.Tensor) -> Gaussian:
        r"""The forward-process posterior :math:`q(x_{t-1} \mid x_t, x_0) = \mathcal N(\tilde\mu_t,
        \tilde\beta_t I)` (Ho et al. 2020, Eqs. 6-7), ``t`` in ``[1, T]``:

        .. math::
            \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0
            + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t,\qquad
            \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t

        Args: ``x0`` and ``x_t`` of the same shape ``[B, ...]``.
        Returns: ``Gaussian(mean [B, ...], variance broadcastable)``."""
        t = self._check(t, x0=x0, x_t=x_t)
        return Gaussian(self.mu_tilde_from_x0(x0, x_t, t), self.coef(self.beta_tildes, t, x_t))

    def mu_tilde_from_x0(self, x0: torch.Tensor, x_t: torch.Tensor, t: int | torch.Tensor):
        r"""The x₀-form of the posterior mean :math:`\tilde\mu_t(x_t, x_0)` (Ho et al. 2020, Eq. 7).
        Shapes as :meth:`q_posterior`; returns ``[B, ...]``."""
        t = self._check(t, x0=x0, x_t=x_t)
        coef_x0 = self.coef(self.posterior_coef_x0, t, x_t)
        return coef_x0 * x0 + self.coef(self.posterior_coef_xt, t, x_t) * x_t

    def mu_tilde_from_eps(self, x_t: torch.Tensor, t: int | torch.Tensor, eps: torch.Tensor):
        r"""The ε-form of the posterior mean (Ho et al. 2020, Eq. 10), obtained by substituting
        :math:`x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon)/\sqrt{\bar\alpha_t}` into Eq. 7:

        .. math:: \tilde\mu_t = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}
            \,\epsilon\Big)

        Args: ``x_t``, ``eps`` ``[B, ...]``, ``t`` in ``[1, T]``. Returns ``[B, ...]``."""
        t = self._check(t, x_t=x_t, eps=eps)
        coef = self.coef(self.betas / (1.0 - self.alpha_bars).sqrt(), t, x_t)
        return (x_t - coef * eps) / self.coef(self.alphas, t, x_t).sqrt()

    # ---------------------------------------------------------------- three parametrisations
    def predict_x0_from_eps(self, x_t: torch.Tensor, t: int | torch.Tensor, eps: torch.Tensor):
        r""":math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon)/\sqrt{\bar\alpha_t}`, Eq. 4 solved
        for :math:`x_0`. ``x_t``, ``eps`` ``[B, ...]``; ``t`` in ``[1, T]``. Returns ``[B, ...]``."""
        t = self._check(t, x_t=x_t, eps=eps)
        sqrt_1m = self.coef(1.0 - self.alpha_bars, t, x_t).sqrt()
        return x0_from_eps(x_t, eps, self.coef(self.alpha_bars, t, x_t).sqrt(), sqrt_1m)

    def eps_from_x0(self, x_t: torch.Tensor, t: int | torch.Tensor, x0: torch.Tensor):
        r""":math:`\epsilon = (x_t - \sqrt{\bar\alpha_t}\,x_0)/\sqrt{1-\bar\alpha_t}`, Eq. 4 solved for
        :math:`\epsilon`. ``x_t``, ``x0`` ``[B, ...]``; ``t`` in ``[1, T]``. Returns ``[B, ...]``."""
        t = self._check(t, x_t=x_t, x0=x0)
        sqrt_ab = self.coef(self.alpha_bars, t, x_t).sqrt()
        return eps_from_x0(x_t, x0, sqrt_ab, self.coef(1.0 - self.alpha_bars, t, x_t).sqrt())

    def score_from_eps(self, eps: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        r"""Score from noise: :math:`-\epsilon/\sqrt{1-\bar\alpha_t}`. For the true noise this is exactly
        :math:`\nabla_{x_t}\log q(x_t \mid x_0)`; for a trained :math:`\epsilon_\theta` it estimates the
        marginal score :math:`\nabla_{x_t}\log q(x_t)` (Vincent 2011; Song et al. 2021).
        ``eps`` ``[B, ...]``, ``t`` in ``[1, T]``."""
        t = self._check(t, eps=eps)
        return -eps / self.coef(1.0 - self.alpha_bars, t, eps).sqrt()

    def eps_from_score(self, score: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        r"""Inverse of :meth:`score_from_eps`: :math:`\epsilon = -\sqrt{1-\bar\alpha_t}\;\nabla\log q(x_t)`."""
        t = self._check(t, score=score)
        return -self.coef(1.0 - self.alpha_bars, t, score).sqrt() * score

    def predict_x0_from_score(self, x_t: torch.Tensor, t: int | torch.Tensor, score: torch.Tensor):
        r"""Tweedie's formula (Efron 2011): :math:`\mathbb E[x_0 \mid x_t] = \big(x_t +
        (1-\bar\alpha_t)\,\nabla\log q(x_t)\big)/\sqrt{\bar\alpha_t}`. Shapes ``[B, ...]``."""
        t = self._check(t, x_t=x_t, score=score)
        var = self.coef(1.0 - self.alpha_bars, t, x_t)
        return (x_t + var * score) / self.coef(self.alpha_bars, t, x_t).sqrt()

    # ------------------------------------------------------------------------ reverse process
    def model_variance(self, t: int | torch.Tensor, x: torch.Tensor, variance: str = "beta"):
        r"""The fixed reverse variance :math:`\sigma_t^2` (Ho et al. 2020, Sec. 3.2):
        ``"beta"`` gives :math:`\beta_t`, ``"beta_tilde"`` gives :math:`\tilde\beta_t`; broadcastable
        to ``x``."""
        check_choice("variance", variance, VARIANCES)
        t = self._check(t, x=x)
        return self.coef(self.betas if variance == "beta" else self.beta_tildes, t, x)

    def call_model(
        self,
        model: EpsModel,
        x_t: torch.Tensor,
        t: int | float | torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r""":math:`\epsilon_\theta(x_t, t)`: the one way the library evaluates a network at a time.

        ``t`` is a step (an int or a LongTensor ``[]``/``[B]`` in ``[1, T]``, passed on as a
        ``LongTensor [B]``) or a continuous time (a float or a floating tensor ``[]``/``[B]`` in
        ``[0, T]``, as :meth:`ddpm_lib.sde.VPSDE.eps` passes; passed on in ``x_t``'s dtype, and the
        output cast to it). ``labels`` ``[B]``, if given, is the model's third argument. The output
        must have ``x_t``'s shape ``[B, ...]`` (else a ValueError)."""
        B = check_tensor("x_t", x_t).shape[0]
        if isinstance(t, float) or (isinstance(t, torch.Tensor) and t.dtype.is_floating_point):
            t = check_time(t, self.T, sync=False)
            check_batch(t, x_t)
            if isinstance(t, float):
                t_batch = torch.full((B,), t, dtype=x_t.dtype, device=x_t.device)
            else:
                t_batch = t.to(device=x_t.device, dtype=x_t.dtype).expand(B)
        else:
            t = self._check(t, x_t=x_t)
            if isinstance(t, torch.Tensor):
                t_batch = t.to(x_t.device).expand(B)
            else:
                t_batch = torch.full((B,), t, dtype=torch.long, device=x_t.device)
        eps = check_eps(model(x_t, t_batch) if labels is None else model(x_t, t_batch, labels), x_t)
        return eps if t_batch.dtype == torch.long else eps.to(x_t.dtype)

    def p_mean_variance_from_eps(
        self,
        x_t: torch.Tensor,
        t: int | torch.Tensor,
        eps: torch.Tensor,
        variance: str = "beta",
        clip_x0: bool = False,
    ) -> Gaussian:
        r""":math:`p_\theta(x_{t-1}\mid x_t) = \mathcal N(\mu_\theta, \sigma_t^2 I)` from a predicted
        :math:`\epsilon_\theta`: :math:`\mu_\theta = \tilde\mu_t` in its ε-form (Ho et al. 2020,
        Eq. 11). With ``clip_x0=True`` (not part of Algorithm 2, hence off by default)
        :math:`\hat x_0` is clamped to [-1, 1] and :math:`\mu_\theta = \tilde\mu_t(x_t, \hat x_0)`."""
        check_choice("variance", variance, VARIANCES)
        t = self._check(t, x_t=x_t, eps=eps)
        if clip_x0:
            x0_hat = self.predict_x0_from_eps(x_t, t, eps).clamp(-1.0, 1.0)
            mean = self.mu_tilde_from_x0(x0_hat, x_t, t)
        else:
            mean = self.mu_tilde_from_eps(x_t, t, eps)
        return Gaussian(mean, self.model_variance(t, x_t, variance))

    def p_mean_variance(
        self,
        model: EpsModel,
        x_t: torch.Tensor,
        t: int | torch.Tensor,
        variance: str = "beta",
        clip_x0: bool = False,
    ) -> Gaussian:
        r"""Mean and variance of the learned reverse step :math:`p_\theta(x_{t-1} \mid x_t)` for an
        ε-predicting ``model`` (Ho et al. 2020, Eqs. 1 and 11), ``t`` in ``[1, T]``:

        .. math:: \mu_\theta(x_t, t) = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}
            {\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta(x_t, t)\Big),\qquad \sigma_t^2 \in
            \{\beta_t, \tilde\beta_t\}

        Returns ``Gaussian(mean [B, ...], variance broadcastable)``."""
        check_choice("variance", variance, VARIANCES)
        eps = self.call_model(model, x_t, t)
        return self.p_mean_variance_from_eps(x_t, t, eps, variance, clip_x0)

    def p_sample(
        self,
        model: EpsModel,
        x_t: torch.Tensor,
        t: int | torch.Tensor,
        variance: str = "beta",
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        clip_x0: bool = False,
    ) -> torch.Tensor:
        r"""One step of Algorithm 2 (Ho et al. 2020): :math:`x_{t-1} = \mu_\theta(x_t, t) +
        \sigma_t z` with :math:`z \sim \mathcal N(0, I)` if :math:`t > 1`, else :math:`z = 0`.
        The whole loop is :func:`ddpm_lib.sample.ancestral`.

        Args: ``x_t`` ``[B, ...]``; ``t`` in ``[1, T]``; ``noise`` :math:`z` shaped like ``x_t``
        (ignored where ``t = 1``). Returns :math:`x_{t-1}` ``[B, ...]``."""
        check_choice("variance", variance, VARIANCES)
        t = self._check(t, x_t=x_t, noise=noise)
        eps = self.call_model(model, x_t, t)
        return self.p_sample_from_eps(x_t, t, eps, variance, noise, generator, clip_x0)

    def p_sample_from_eps(
        self,
        x_t: torch.Tensor,
        t: int | torch.Tensor,
        eps: torch.Tensor,
        variance: str = "beta",
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        clip_x0: bool = False,
    ) -> torch.Tensor:
        r"""Algorithm 2's step from an already predicted :math:`\epsilon_\theta` (e.g. a guided one):
        :math:`x_{t-1} = \mu_\theta + \sigma_t z`, with :math:`z = 0` at ``t = 1``. Shapes as
        :meth:`p_sample`. Noise is drawn (from ``generator``) only where it is used."""
        check_choice("variance", variance, VARIANCES)
        t = self._check(t, x_t=x_t, eps=eps, noise=noise)
        mean, var = self.p_mean_variance_from_eps(x_t, t, eps, variance, clip_x0)
        if isinstance(t, int) and t == 1:
            return mean
        z = randn_like(mean, generator, noise)
        if isinstance(t, int):
            return mean + var.sqrt() * z
        nonzero = (t.to(mean.device) > 1).to(mean.dtype).reshape(-1, *([1] * (mean.dim() - 1)))
        return mean + nonzero * var.sqrt() * z

    def ddim_sigma(self, t: int, s: int, eta: float = 0.0) -> float:
        r"""The noise scale of a DDIM step from ``t`` down to ``s < t`` (Song, Meng & Ermon 2021,
        Eq. 16): :math:`\sigma = \eta\sqrt{\frac{1-\bar\alpha_s}{1-\bar\alpha_t}}
        \sqrt{1-\frac{\bar\alpha_t}{\bar\alpha_s}}`; ``eta = 1`` with ``s = t - 1`` gives
        :math:`\sqrt{\tilde\beta_t}`, ``s = 0`` gives 0. ``t`` in ``[1, T]``, ``s`` in ``[0, t)``."""
        t = check_t(t, 1, self.T)
        s = check_t(s, 0, t - 1, "s")
        check_number("eta", eta, 0, 1)
        ab_t, ab_s = float(self.alpha_bars[t]), float(self.alpha_bars[s])
        return float(eta) * ((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)) ** 0.5

    def ddim_step(
        self,
        x0: torch.Tensor,
        eps: torch.Tensor,
        t: int,
        s: int,
        eta: float = 0.0,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        r"""One DDIM update from step ``t`` to ``s < t`` given the predictions :math:`\hat x_0` and
        :math:`\hat\epsilon` at :math:`x_t` (Song, Meng & Ermon 2021, Eq. 12):

        .. math:: x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1 - \bar\alpha_s - \sigma^2}\;
            \hat\epsilon + \sigma z,\qquad \sigma = \text{ddim\_sigma}(t, s, \eta).

        ``eta = 0`` is deterministic; ``eta = 1`` is the posterior :math:`q(x_s \mid x_t,
        \hat x_0)` (with ``s = t - 1``, Algorithm 2's step with :math:`\sigma_t^2 = \tilde\beta_t`).
        ``x0``, ``eps``, ``noise`` (:math:`z`, drawn from ``generator`` if omitted and
        :math:`\sigma > 0`) ``[B, ...]``; ``t``, ``s`` ints. Returns :math:`x_s` ``[B, ...]``.
        Used by :func:`ddpm_lib.sample.ddim` and :func:`ddpm_lib.sample.inpaint`."""
        sigma = self.ddim_sigma(t, s, eta)
        self._check(t, x0=x0, eps=eps, noise=noise)
        ab_s = float(self.alpha_bars[s])
        # The root's argument is >= 0 in exact arithmetic; max() keeps rounding from flipping it.
        x = ab_s**0.5 * x0 + max(1.0 - ab_s - sigma**2, 0.0) ** 0.5 * eps
        if sigma > 0:
            x = x + sigma * randn_like(x, generator, noise)
        return x

    # ------------------------------------------------------- schedule facts the chapters use
    def variance_trajectory(self, var0: float) -> torch.Tensor:
        r"""The variance of every entry of :math:`x_t` for ``t = 0..T`` when the data's variance is
        ``var0`` (a number >= 0): the one-step rule :math:`v_t = (1-\beta_t)\,v_{t-1} + \beta_t` of
        Ho et al. 2020, Eq. 2 telescopes to :math:`1 - v_t = \bar\alpha_t\,(1 - v_0)`.
        Returns float64 ``[T + 1]`` with index 0 = ``var0``."""
        check_number("var0", var0, 0)
        return 1.0 - self.alpha_bars * (1.0 - float(var0))

    def first_t_snr_below(self, level: float = 1.0) -> int:
        r"""The first step ``t`` in ``[1, T]`` with :math:`\mathrm{SNR}(t) = \bar\alpha_t /
        (1-\bar\alpha_t) <` ``level`` (a number > 0; Kingma et al. 2021). For ``level = 1``: where
        noise starts to dominate, :math:`\bar\alpha_t < 1/2`. ValueError if it never does."""
        check_number("level", level, 0, lo_open=True)
        below = torch.nonzero(self.snrs[1:] < level)
        if below.numel() == 0:
            raise ValueError(
                f"SNR(t) never falls below level={level} for t in [1, {self.T}] "
                f"(SNR(T) = {float(self.snrs[self.T]):.4g})"
            )
        return int(below[0]) + 1

    def fraction_snr_below(self, level: float) -> float:
        r"""The fraction of the steps ``t = 1..T`` with :math:`\mathrm{SNR}(t) <` ``level`` (a number
        > 0): for a small level, the share of the chain spent on almost pure noise."""
        check_number("level", level, 0, lo_open=True)
        return float((self.snrs[1:] < level).double().mean())
