r"""The DDPM forward chain in continuous time: the variance-preserving SDE (Song et al. 2021).

Time. The SDE runs over :math:`\tau \in [0, 1]`; the network's time is :math:`t = \tau T`, a
float (the U-Net's sinusoidal embedding and :class:`ddpm_lib.toy.MixtureEps` accept non-integer
times; training only ever showed them integers). The continuous :math:`\log\bar\alpha(\tau)`
is the monotone cubic through the discrete schedule's points :math:`(t/T, \log\bar\alpha_t)`
(:class:`ContinuousSchedule`), so :math:`\bar\alpha(t/T) = \bar\alpha_t` **exactly** at every
integer step (any schedule, linear or cosine) and the network sees at :math:`\tau = t/T` the
noise level it was trained on. Its rate

.. math:: \beta(\tau) = -\frac{d}{d\tau}\log\bar\alpha(\tau),\qquad
    \int_{(t-1)/T}^{t/T}\beta(\tau)\,d\tau = -\log\alpha_t = \beta_t + O(\beta_t^2),

is continuous and close to the familiar :math:`T\beta_{\tau T}` (Song et al. 2021, Appendix B).
The VP-SDE

.. math:: d\mathbf x = -\tfrac12\beta(\tau)\,\mathbf x\,d\tau + \sqrt{\beta(\tau)}\,d\mathbf w

has the marginal :math:`q(\mathbf x(\tau)\mid\mathbf x_0) = \mathcal N(\sqrt{\bar\alpha(\tau)}\,
\mathbf x_0, (1-\bar\alpha(\tau))\mathbf I)` (Song et al. 2021, Eq. 29), the continuous version of
Ho et al. 2020, Eq. 4.

Functions of :math:`\tau` take a float or a tensor ``[B]`` (one time per example)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from .._validate import check_int, check_tensor, check_time

if TYPE_CHECKING:
    from ..diffusion import Diffusion


class ContinuousSchedule:
    r""":math:`\bar\alpha` at a continuous step :math:`t \in [0, T]`: :math:`\log\bar\alpha(t)` is the
    monotone cubic (PCHIP, Fritsch & Carlson 1980) through the points :math:`(t, \log\bar\alpha_t)`,
    :math:`t = 0, \dots, T`. So :math:`\bar\alpha(t) = \bar\alpha_t` exactly at every integer step,
    :math:`\bar\alpha` decreases, and its rate :math:`\beta(t) = -\frac{d}{dt}\log\bar\alpha(t)
    \ge 0` is continuous, with :math:`\int_{t-1}^{t}\beta = -\log\alpha_t` over each step. (A
    piecewise-constant rate, i.e. geometric interpolation, is exact too, but its thousand jumps
    defeat the error control of an adaptive ODE solver: an encode/decode round trip then stalls
    near 1e-3 whatever the tolerance.)

    Args:
        alpha_bars: ``[T + 1]``, all > 0 (``alpha_bars[0] = 1``).
    """

    def __init__(self, alpha_bars: torch.Tensor):
        from scipy.interpolate import PchipInterpolator

        ab = torch.as_tensor(alpha_bars).detach().cpu().double()
        if ab.dim() != 1 or ab.shape[0] < 2 or not bool((ab > 0).all()):
            raise ValueError("alpha_bars must be a tensor [T + 1] (T >= 1) of values > 0")
        self.T = ab.shape[0] - 1
        self._log = PchipInterpolator(np.arange(self.T + 1, dtype=np.float64), ab.log().numpy())
        self._rate = self._log.derivative()

    def _eval(self, fn, t: float | torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(check_time(t, self.T), dtype=torch.float64)
        return torch.from_numpy(np.asarray(fn(t.detach().cpu().numpy()), dtype=np.float64)).to(
            t.device
        )

    def alpha_bar(self, t: float | torch.Tensor) -> torch.Tensor:
        r""":math:`\bar\alpha(t)`, float64 shaped like ``t`` (``[]`` for a float)."""
        return self._eval(self._log, t).exp()

    def beta(self, t: float | torch.Tensor) -> torch.Tensor:
        r""":math:`\beta(t) = -\frac{d}{dt}\log\bar\alpha(t)` per unit of step, float64."""
        return -self._eval(self._rate, t)


class Marginal(NamedTuple):
    r""":math:`q(\mathbf x(\tau) \mid \mathbf x_0) = \mathcal N(\text{mean}, \text{std}^2\mathbf I)`:
    ``mean`` shaped like ``x0``; ``std`` broadcasts against it."""

    mean: torch.Tensor
    std: torch.Tensor


class VPSDE:
    r"""The variance-preserving SDE matched to a :class:`~ddpm_lib.Diffusion` (see the module
    docstring for the map between :math:`\tau` and the network's step :math:`t = \tau T`).

    Attributes: ``diffusion``, ``T``."""

    def __init__(self, diffusion: Diffusion):
        self.diffusion = diffusion
        self.T = diffusion.T
        self.schedule = ContinuousSchedule(diffusion.alpha_bars)

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
        return self.schedule.alpha_bar(self.t_of(tau))

    def beta(self, tau: float | torch.Tensor) -> torch.Tensor:
        r""":math:`\beta(\tau) = -\frac{d}{d\tau}\log\bar\alpha(\tau) = T\,\beta(t)` (float64,
        continuous; see :class:`ContinuousSchedule`)."""
        return self.T * self.schedule.beta(self.t_of(tau))

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
        check_int("steps", steps, 1)
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
        r""":math:`\epsilon_\theta(\mathbf x, \tau T)`: :meth:`ddpm_lib.Diffusion.call_model` at the
        continuous step :math:`t = \tau T` (a float tensor ``[B]`` in ``x``'s dtype and device); the
        output is checked and cast to ``x``'s dtype."""
        x = check_tensor("x", x)
        return self.diffusion.call_model(model, x, self.t_of(tau), labels)

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
