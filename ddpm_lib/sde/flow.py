r"""The SDE view of a DDPM (Song et al. 2021) on the library's own ε-networks: the VP-SDE
(:class:`VPSDE`, from :mod:`ddpm_lib.sde.vpsde`: continuous time, :math:`\bar\alpha(\tau)`,
:math:`\beta(\tau)`, drifts), the probability-flow ODE solved by ``scipy.integrate.solve_ivp``
(:func:`solve_flow`), encoding data to :math:`\mathbf x(1)` (:func:`encode`) and the exact
log-likelihood by the instantaneous change of variables (:func:`log_likelihood`). The samplers
are :func:`ddpm_lib.sample.reverse_sde` and :func:`ddpm_lib.sample.probability_flow`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch

from .._validate import check_int, check_number, check_tensor
from .vpsde import VPSDE

if TYPE_CHECKING:
    from ..diffusion import Diffusion


# ------------------------------------------------------------------ ODE solving (scipy)
class Flow(NamedTuple):
    r"""The end of an ODE solve: ``x`` (the state at the far end, the input's shape and dtype) and
    ``nfe``, the number of network evaluations it took (each counts one batched call); with
    ``t_eval``, ``taus`` ``[K]`` (float64) and the states there, ``path`` ``[K, *x.shape]``."""

    x: torch.Tensor
    nfe: int
    taus: torch.Tensor | None = None
    path: torch.Tensor | None = None


def _check_tau(name: str, value: float) -> float:
    return check_number(name, value, 0, 1, lo_open=True, hi_open=True)
    return float(value)


def _check_tols(rtol: float, atol: float, method: str) -> None:
    for name, tol in (("rtol", rtol), ("atol", atol)):
        check_number(name, tol, 0, lo_open=True)
    if method not in _ODE_METHODS:
        raise ValueError(f"method must be one of {_ODE_METHODS}, got {method!r}")


#: The explicit solvers of scipy.integrate.solve_ivp that suit a non-stiff ODE like this one.
_ODE_METHODS = ("RK45", "RK23", "DOP853")


def solve_flow(
    eps_fn: Callable[[torch.Tensor, float], torch.Tensor],
    sde: VPSDE,
    x: torch.Tensor,
    tau_from: float,
    tau_to: float,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    method: str = "RK45",
    t_eval: str | Sequence[float] | None = None,
) -> Flow:
    r"""Integrate the probability-flow ODE :math:`d\mathbf x/d\tau =` :meth:`VPSDE.ode_drift_from_eps`
    from ``tau_from`` to ``tau_to`` (either direction) with ``scipy.integrate.solve_ivp``
    (adaptive step, error control by ``rtol``/``atol`` on the flattened state, float64 inside
    the solver). ``eps_fn(x, tau) -> eps`` gives the network's prediction at a state of ``x``'s
    shape and dtype. Used by :func:`ddpm_lib.sample.probability_flow` and :func:`encode`."""
    from scipy.integrate import solve_ivp  # scipy is imported only when an ODE is solved

    _check_tols(rtol, atol, method)
    shape, dtype, device = x.shape, x.dtype, x.device
    nfe = 0

    def rhs(tau: float, y):
        nonlocal nfe
        nfe += 1
        state = torch.from_numpy(y).reshape(shape).to(device=device, dtype=dtype)
        with torch.no_grad():
            eps = eps_fn(state, float(tau))
            drift = sde.ode_drift_from_eps(state, float(tau), eps)
        return drift.detach().double().cpu().numpy().reshape(-1)

    y0 = x.detach().double().cpu().numpy().reshape(-1)
    dense = t_eval is not None and not isinstance(t_eval, str)
    sol = solve_ivp(rhs, (tau_from, tau_to), y0, method=method, rtol=rtol, atol=atol,
                    dense_output=dense)  # fmt: skip
    if not sol.success:
        raise RuntimeError(f"the ODE solver failed: {sol.message}")
    out = torch.from_numpy(sol.y[:, -1].copy()).reshape(shape).to(device=device, dtype=dtype)
    if t_eval is None:
        return Flow(out, nfe)
    taus, ys = (sol.t[:-1], sol.y[:, :-1]) if not dense else (t_eval, sol.sol(t_eval))
    path = torch.from_numpy(ys.T.copy()).reshape(-1, *shape).to(device=device, dtype=dtype)
    return Flow(out, nfe, torch.as_tensor(taus, dtype=torch.float64), path)


def encode(
    model: Callable,
    diffusion: Diffusion,
    x0: torch.Tensor,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    method: str = "RK45",
    labels: torch.Tensor | None = None,
    tau_start: float = 1e-3,
) -> Flow:
    r"""Encode data into the latent :math:`\mathbf x(1)` by the probability-flow ODE (Song et al.
    2021, Sec. 4.3): solve :math:`d\mathbf x/d\tau = -\tfrac12\beta(\tau)\big(\mathbf x +
    \mathbf s_\theta(\mathbf x, \tau)\big)` forward from :math:`\mathbf x(\tau_\text{start}) =`
    ``x0`` to :math:`\tau = 1`. The flow is a bijection, so
    ``sample.probability_flow(model, d, x_T=encode(...).x, denoise=False, tau_end=tau_start)``
    returns ``x0`` up to the solver tolerance. (``x0`` is taken as the state at
    :math:`\tau_\text{start}`, where the noise std :math:`\sqrt{1-\bar\alpha(\tau_\text{start})}`
    is 0.01 for the linear schedule with T = 1000: the ε-network is not defined at
    :math:`\tau = 0`.)

    Args:
        x0: data ``[n, ...]`` (its dtype is the state's).
        labels: class labels ``[n]`` for a conditional model (the conditional flow), or None.
        tau_start: :math:`\tau_\text{start} \in (0, 1)`.

    Returns:
        :class:`Flow` ``(x = x(1) [n, ...], nfe)``.
    """
    x0 = check_tensor("x0", x0)
    sde = VPSDE(diffusion)
    tau_start = _check_tau("tau_start", tau_start)
    return solve_flow(lambda x, tau: sde.eps(model, x, tau, labels), sde, x0, tau_start, 1.0,
                      rtol, atol, method)  # fmt: skip


class LogLikelihood(NamedTuple):
    r"""Per example ``[n]`` (float64): ``log_prob`` :math:`\log p_\theta(\mathbf x)` in nats (a
    density: it can exceed 0); ``bpd``, bits per dimension (see :func:`log_likelihood`);
    ``prior`` :math:`\log\mathcal N(\mathbf x(1); \mathbf 0, \mathbf I)` and ``delta``, the
    integrated divergence, with ``log_prob = prior + delta``; and ``nfe``."""

    log_prob: torch.Tensor
    bpd: torch.Tensor
    prior: torch.Tensor
    delta: torch.Tensor
    nfe: int


def _divergence(eps_fn, x, tau, trace, probes):
    r""":math:`\nabla\cdot\epsilon_\theta` per example ``[n]`` (exact, one backward pass per
    dimension, or Hutchinson's :math:`\mathbf v^\top (\partial\epsilon/\partial\mathbf x)\mathbf v`
    averaged over the fixed ``probes`` ``[P, n, ...]``), and :math:`\epsilon_\theta` itself."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        eps = eps_fn(x, tau)
        n, flat = x.shape[0], eps.reshape(x.shape[0], -1)
        if trace == "exact":
            div = torch.zeros(n, dtype=x.dtype, device=x.device)
            for i in range(flat.shape[1]):
                (grad,) = torch.autograd.grad(flat[:, i].sum(), x, retain_graph=True)
                div = div + grad.reshape(n, -1)[:, i]
        else:
            div = torch.zeros(n, dtype=x.dtype, device=x.device)
            for k, v in enumerate(probes):
                (grad,) = torch.autograd.grad((eps * v).sum(), x, retain_graph=k < len(probes) - 1)
                div = div + (grad * v).reshape(n, -1).sum(1)
            div = div / len(probes)
    return div.detach(), eps.detach()


_LOG_2PI = math.log(2.0 * math.pi)


def log_likelihood(
    model: Callable,
    diffusion: Diffusion,
    x0: torch.Tensor,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    method: str = "RK45",
    trace: str = "auto",
    n_probes: int = 1,
    generator: torch.Generator | None = None,
    bin_width: float | None = None,
    labels: torch.Tensor | None = None,
    tau_start: float = 1e-3,
) -> LogLikelihood:
    r"""The exact log-likelihood of the probability-flow ODE's model (Song et al. 2021, Sec. 4.3
    and Appendix D.2; Chen et al. 2018, the instantaneous change of variables):

    .. math:: \log p_\theta(\mathbf x(\tau_0)) = \log\mathcal N(\mathbf x(1); \mathbf 0,
        \mathbf I) + \int_{\tau_0}^{1}\nabla\cdot F(\mathbf x(\tau), \tau)\,d\tau,\qquad
        \nabla\cdot F = -\tfrac12\beta(\tau)\Big(D - \frac{\nabla\cdot\epsilon_\theta}
        {\sqrt{1-\bar\alpha(\tau)}}\Big)

    with :math:`F` the ODE drift (:meth:`VPSDE.ode_drift_from_eps`), solved jointly for
    :math:`\mathbf x` and the integral from :math:`\mathbf x(\tau_0) =` ``x0`` (``tau_start``;
    see :func:`encode`). The prior is :math:`\mathcal N(\mathbf 0, \mathbf I)` (the true
    :math:`q_1` differs by :math:`\bar\alpha_T \approx 4\cdot 10^{-5}` for the linear schedule).

    The divergence :math:`\nabla\cdot\epsilon_\theta` is exact (one backward pass per
    dimension; ``trace="exact"``, the default for ``D <= 16``) or Hutchinson's unbiased estimate
    (``trace="hutchinson"``, the default above): :math:`\mathbf v^\top J\mathbf v` with Rademacher
    :math:`\mathbf v`, ``n_probes`` of them drawn once from ``generator`` and kept fixed along
    the trajectory (so the ODE stays smooth for the adaptive solver).

    Bits per dimension: with ``bin_width`` :math:`\Delta` (discrete data, e.g. ``2 / 255`` for
    8-bit images scaled to [-1, 1] by :func:`ddpm_lib.data.images_to_model`), the model's
    probability of the data's bin is :math:`\approx p_\theta(\mathbf x)\Delta^D`, so
    ``bpd`` :math:`= -(\log p_\theta/D + \log\Delta)/\ln 2`; the caller adds the dequantisation
    noise :math:`\mathbf u \sim \mathcal U[0, \Delta)^D` to ``x0`` if wanted (Theis et al. 2016:
    the average over it bounds the discrete log-likelihood from below). Without ``bin_width``
    (continuous data), ``bpd`` :math:`= -\log p_\theta/(D\ln 2)`.

    Args:
        x0: ``[n, ...]``; its dtype is the state's (float64 for the exact toy).
        trace: ``"auto"``, ``"exact"`` or ``"hutchinson"``.
        n_probes: Hutchinson probes (>= 1).
        labels: class labels ``[n]`` for a conditional model, or None.

    Returns:
        :class:`LogLikelihood` ``(log_prob, bpd, prior, delta, nfe)``, each ``[n]`` float64.
    """
    from scipy.integrate import solve_ivp

    x0 = check_tensor("x0", x0)
    _check_tols(rtol, atol, method)
    if trace not in ("auto", "exact", "hutchinson"):
        raise ValueError(f"trace must be 'auto', 'exact' or 'hutchinson', got {trace!r}")
    check_int("n_probes", n_probes, 1)
    if bin_width is not None and not (isinstance(bin_width, float | int) and bin_width > 0):
        raise ValueError(f"bin_width must be a number > 0 or None, got {bin_width!r}")
    tau_start = _check_tau("tau_start", tau_start)
    sde = VPSDE(diffusion)
    n, D = x0.shape[0], x0[0].numel()
    trace = ("exact" if D <= 16 else "hutchinson") if trace == "auto" else trace
    probes = None
    if trace == "hutchinson":
        gen_device = generator.device if generator is not None else x0.device
        bits = torch.randint(0, 2, (n_probes, *x0.shape), generator=generator, device=gen_device)
        probes = (2.0 * bits - 1.0).to(device=x0.device, dtype=x0.dtype)
    shape, dtype, device = x0.shape, x0.dtype, x0.device
    nfe = 0

    def rhs(tau: float, y):
        nonlocal nfe
        nfe += 1
        state = torch.from_numpy(y[: n * D]).reshape(shape).to(device=device, dtype=dtype)
        div_eps, eps = _divergence(lambda x, s: sde.eps(model, x, s, labels), state, tau,
                                   trace, probes)  # fmt: skip
        drift = sde.ode_drift_from_eps(state, tau, eps)
        beta, ab = float(sde.beta(tau)), float(sde.alpha_bar(tau))
        div_f = -0.5 * beta * (D - div_eps.double() / (1.0 - ab) ** 0.5)
        return torch.cat([drift.double().reshape(-1), div_f]).cpu().numpy()

    y0 = torch.cat([x0.detach().double().reshape(-1), torch.zeros(n, dtype=torch.float64)])
    sol = solve_ivp(rhs, (tau_start, 1.0), y0.cpu().numpy(), method=method, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"the ODE solver failed: {sol.message}")
    end = torch.from_numpy(sol.y[:, -1].copy())
    x1, delta = end[: n * D].reshape(n, D), end[n * D :]
    prior = -0.5 * (x1.pow(2).sum(1) + D * _LOG_2PI)
    log_prob = prior + delta
    if bin_width is None:
        bpd = -log_prob / (D * math.log(2.0))
    else:
        bpd = -(log_prob / D + math.log(float(bin_width))) / math.log(2.0)
    return LogLikelihood(log_prob, bpd, prior, delta, nfe)
