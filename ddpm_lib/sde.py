r"""The DDPM forward chain in continuous time: the variance-preserving SDE (Song et al. 2021).

Time. The SDE runs over :math:`\tau \in [0, 1]`; the network's time is :math:`t = \tau T`, a
float (the U-Net's sinusoidal embedding and :class:`ddpm_lib.toy.MixtureEps` accept non-integer
times; training only ever showed them integers). The continuous :math:`\bar\alpha(\tau)` is the
discrete schedule interpolated **geometrically** between steps,

.. math:: \log\bar\alpha(\tau) = (1-w)\log\bar\alpha_{k} + w\log\bar\alpha_{k+1},\qquad
    \tau T = k + w,\ 0 \le w < 1,

so :math:`\bar\alpha(t/T) = \bar\alpha_t` **exactly** at every integer step (any schedule, linear
or cosine), and the network sees at :math:`\tau = t/T` the noise level it was trained on. Then

.. math:: \beta(\tau) = -\frac{d}{d\tau}\log\bar\alpha(\tau) = -T\log\alpha_k
    \quad\text{for } \tau T \in (k-1, k],

piecewise constant, and :math:`T\beta_k \le \beta(\tau) \le T\beta_k/(1-\beta_k)`: the familiar
:math:`\beta(\tau) \approx T\beta_{\tau T}` (Song et al. 2021, Appendix B) up to
:math:`O(\beta_k^2)` per step. The VP-SDE

.. math:: d\mathbf x = -\tfrac12\beta(\tau)\,\mathbf x\,d\tau + \sqrt{\beta(\tau)}\,d\mathbf w

has the marginal :math:`q(\mathbf x(\tau)\mid\mathbf x_0) = \mathcal N(\sqrt{\bar\alpha(\tau)}\,
\mathbf x_0, (1-\bar\alpha(\tau))\mathbf I)` (Song et al. 2021, Eq. 29), the continuous version of
Ho et al. 2020, Eq. 4.

Functions of :math:`\tau` take a float or a tensor ``[B]`` (one time per example).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import torch

from ._validate import check_tensor, check_time

if TYPE_CHECKING:
    from .diffusion import Diffusion

__all__ = ["VPSDE", "Marginal", "continuous_alpha_bar"]


def continuous_alpha_bar(alpha_bars: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    r""":math:`\bar\alpha` at a continuous step :math:`t \in [0, T]`: geometric interpolation of
    ``alpha_bars`` (``[T + 1]``, index = step) between the neighbouring integer steps; equal to
    ``alpha_bars[t]`` at an integer ``t``. Returns float64, shaped like ``t`` (``[]`` for a float)."""
    T = alpha_bars.shape[0] - 1
    t = torch.as_tensor(check_time(t, T), dtype=torch.float64)
    log_ab = alpha_bars.detach().to(dtype=torch.float64, device=t.device).log()
    k = t.floor().clamp(max=T - 1).long()
    w = t - k
    lo, hi = log_ab[k], log_ab[k + 1]
    # w = 0 or 1 returns the table entry itself (also when it is log 0 = -inf)
    mixed = torch.where(w == 0, lo, torch.where(w == 1, hi, lo + w * (hi - lo)))
    return mixed.exp()


class Marginal(NamedTuple):
    r""":math:`q(\mathbf x(\tau) \mid \mathbf x_0) = \mathcal N(\text{mean}, \text{std}^2\mathbf I)`:
    ``mean`` shaped like ``x0``; ``std`` broadcasts against it."""

    mean: torch.Tensor
    std: torch.Tensor


class VPSDE:
    r"""The variance-preserving SDE matched to a :class:`~ddpm_lib.Diffusion` (see the module
    docstring for the map between :math:`\tau` and the network's step :math:`t = \tau T`).

    Attributes: ``diffusion``, ``T``.
    """

    def __init__(self, diffusion: Diffusion):
        self.diffusion = diffusion
        self.T = diffusion.T
        ab = diffusion.alpha_bars.detach().cpu().double()
        self._log_alpha_bars = ab.log()
        # beta(tau) on (k-1, k]/T: -T log alpha_k (index 0 unused)
        self._betas = torch.zeros_like(ab)
        self._betas[1:] = -self.T * (self._log_alpha_bars[1:] - self._log_alpha_bars[:-1])

    def __repr__(self) -> str:
        return f"VPSDE(T={self.T})"

    # ------------------------------------------------------------------------------- time
    def _tau(self, tau: float | torch.Tensor) -> torch.Tensor:
        if isinstance(tau, bool) or not isinstance(tau, float | int | torch.Tensor):
            raise TypeError(f"tau must be a float or a tensor, got {type(tau).__name__}")
        tau = torch.as_tensor(tau, dtype=torch.float64).detach().cpu()
        if tau.dim() > 1 or tau.numel() == 0:
            raise ValueError(f"tau must be a number or a tensor [B], got shape {list(tau.shape)}")
        if float(tau.min()) < 0.0 or float(tau.max()) > 1.0:
            raise ValueError(f"tau must be in [0, 1], got values in [{float(tau.min())}, "
                             f"{float(tau.max())}]")  # fmt: skip
        return tau

    def t_of(self, tau: float | torch.Tensor) -> torch.Tensor:
        r"""The network's (continuous) step :math:`t = \tau T`, float64 shaped like ``tau``."""
        return self._tau(tau) * self.T

    def alpha_bar(self, tau: float | torch.Tensor) -> torch.Tensor:
        r""":math:`\bar\alpha(\tau)` (float64); ``alpha_bar(t / T) == diffusion.alpha_bars[t]``."""
        return continuous_alpha_bar(self._log_alpha_bars.exp(), self.t_of(tau))

    def beta(self, tau: float | torch.Tensor) -> torch.Tensor:
        r""":math:`\beta(\tau) = -\frac{d}{d\tau}\log\bar\alpha(\tau)` (float64; piecewise constant,
        the value on :math:`(k-1, k]/T` is :math:`-T\log\alpha_k`, and :math:`\beta(0)` that of
        the first step)."""
        k = self.t_of(tau).ceil().long().clamp(min=1)
        return self._betas[k]

    def g(self, tau: float | torch.Tensor) -> torch.Tensor:
        r"""The diffusion coefficient :math:`g(\tau) = \sqrt{\beta(\tau)}` (float64)."""
        return self.beta(tau).sqrt()

    @staticmethod
    def _per_example(c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """A coefficient (float64 ``[]`` or ``[B]``) in ``x``'s dtype and device, broadcastable."""
        c = c.to(device=x.device, dtype=x.dtype)
        return c.reshape(-1, *([1] * (x.dim() - 1))) if c.dim() == 1 else c

    # ------------------------------------------------------------------------- the process
    def drift(self, x: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
        r"""The forward drift :math:`f(\mathbf x, \tau) = -\tfrac12\beta(\tau)\,\mathbf x`."""
        x = check_tensor("x", x)
        return -0.5 * self._per_example(self.beta(tau), x) * x

    def marginal(self, x0: torch.Tensor, tau: float | torch.Tensor) -> Marginal:
        r""":math:`q(\mathbf x(\tau)\mid\mathbf x_0)`: mean :math:`\sqrt{\bar\alpha(\tau)}\,\mathbf x_0`,
        std :math:`\sqrt{1-\bar\alpha(\tau)}`, in ``x0``'s dtype."""
        x0 = check_tensor("x0", x0)
        ab = self._per_example(self.alpha_bar(tau), x0)
        return Marginal(ab.sqrt() * x0, (1.0 - ab).sqrt())

    def simulate(
        self,
        x0: torch.Tensor,
        tau_end: float = 1.0,
        steps: int = 1000,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        r"""Simulate the forward SDE from :math:`\mathbf x(0) = ` ``x0`` to ``tau_end`` by
        Euler–Maruyama with ``steps`` equal steps :math:`h`:
        :math:`\mathbf x \leftarrow \mathbf x + f(\mathbf x, \tau)h + g(\tau)\sqrt h\,\mathbf z`
        (:math:`f, g` at the step's start). Returns :math:`\mathbf x(\tau_\text{end})`."""
        x = check_tensor("x0", x0)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {steps!r}")
        tau_end = float(self._tau(float(tau_end)))
        h = tau_end / steps
        for i in range(steps):
            tau = i * h
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype,
                                device=generator.device if generator is not None else x.device)  # fmt: skip
            x = x + self.drift(x, tau) * h + float(self.g(tau)) * h**0.5 * noise.to(x.device)
        return x

    # ------------------------------------------------------------------- with an ε-network
    def eps(
        self,
        model: Callable,
        x: torch.Tensor,
        tau: float | torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r""":math:`\epsilon_\theta(\mathbf x, \tau T)` with the continuous time as a float tensor
        ``[B]`` on ``x``'s device; the output is checked and cast to ``x``'s dtype."""
        x = check_tensor("x", x)
        t = self.t_of(tau).to(device=x.device, dtype=torch.float32).expand(x.shape[0])
        out = model(x, t) if labels is None else model(x, t, labels)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"the model must return eps of x's shape {list(x.shape)}, got {got}")
        return out.to(x.dtype)

    def score_from_eps(self, eps: torch.Tensor, tau: float | torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla\log q_\tau(\mathbf x) \approx -\epsilon_\theta/\sqrt{1-\bar\alpha(\tau)}`
        (Tweedie; chapter 5)."""
        return -eps / self._per_example((1.0 - self.alpha_bar(tau)).sqrt(), eps)

    def score(
        self,
        model: Callable,
        x: torch.Tensor,
        tau: float | torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""The score of the noised data at time :math:`\tau` from an ε-network:
        :math:`\mathbf s_\theta(\mathbf x, \tau) = -\epsilon_\theta(\mathbf x, \tau T)/
        \sqrt{1-\bar\alpha(\tau)}`, ``x``'s shape and dtype (``tau`` > 0)."""
        return self.score_from_eps(self.eps(model, x, tau, labels), tau)

    def ode_drift_from_eps(
        self, x: torch.Tensor, tau: float | torch.Tensor, eps: torch.Tensor
    ) -> torch.Tensor:
        r"""The probability-flow drift (Song et al. 2021, Eq. 13) written with :math:`\epsilon`:

        .. math:: \frac{d\mathbf x}{d\tau} = f - \tfrac12 g^2\nabla\log q_\tau
            = -\tfrac12\beta(\tau)\Big(\mathbf x - \frac{\epsilon_\theta}{\sqrt{1-\bar\alpha(\tau)}}
            \Big)
        """
        beta = self._per_example(self.beta(tau), x)
        return -0.5 * beta * (x + self.score_from_eps(eps, tau))

    def reverse_drift_from_eps(
        self, x: torch.Tensor, tau: float | torch.Tensor, eps: torch.Tensor
    ) -> torch.Tensor:
        r"""The drift of the reverse-time SDE (Anderson 1982; Song et al. 2021, Eq. 6),
        :math:`f - g^2\nabla\log q_\tau = -\tfrac12\beta(\tau)\mathbf x - \beta(\tau)\,
        \mathbf s_\theta`, to be integrated *backwards* in :math:`\tau` with noise
        :math:`g\,d\bar{\mathbf w}`."""
        beta = self._per_example(self.beta(tau), x)
        return -0.5 * beta * x - beta * self.score_from_eps(eps, tau)
