r"""Self-checks for chapter 4, the variational bound :math:`L = L_T + \sum_{t=2}^T L_{t-1} + L_0`
(Ho et al. 2020, Eq. 5), its ε-form (Eq. 12) and Algorithm 2.

Functions the student writes receive the schedule as ``betas`` (float64 ``[T + 1]``,
``betas[0] = 0``, index ``t`` = :math:`\beta_t`), the reverse variances as ``sigma2s`` (float64
``[T + 1]``, index ``t`` = :math:`\sigma_t^2`, index 0 NaN) and a step ``t`` as a Python int:

* :func:`check_normal_kl`: ``fn(mean1, var1, mean2, var2) -> kl``, elementwise
  :math:`\mathrm{KL}(\mathcal N(\mu_1, \sigma_1^2)\,\|\,\mathcal N(\mu_2, \sigma_2^2))` in nats;
* :func:`check_lambda_t`: ``fn(t, betas, sigma2s) -> lambda_t`` for ``t >= 2`` (Eq. 12's weight);
* :func:`check_p_sample_step`: ``fn(x_t, t, eps, z, betas, sigma2s) -> x_{t-1}``, one step of
  Algorithm 2.

A number the student writes: :func:`check_most_bits_prediction` (predict, then run: which step
``t`` carries the largest term of the bound on the shipped MNIST model).

A check never raises for a wrong answer; it names the kind of mistake, and ``hint(name)`` /
``solution(name)`` give the next tiers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..bound import eps_weights, reverse_variances
from ..diffusion import Diffusion, EpsModel
from ..losses import normal_kl
from ._check import Case, CheckResult, Kind, Slip, failed, reference_schedules, register, run_check
from ._check import hint as hint
from ._check import solution as solution
from ._question import Bounds, Tolerance, Wrong, check_number

# ------------------------------------------------------------------------------ normal_kl
register(
    "normal_kl",
    "Write KL(p || q) = E_p[log p(x) - log q(x)] with both log-densities of a Gaussian. The "
    "log-normalisers give a log of a ratio; the quadratic of p averages to a constant under p; the "
    "quadratic of q needs E_p[(x - mu_q)^2], which splits into p's variance plus the squared "
    "distance of the means. The expectation is over the FIRST distribution.",
    "KL = 0.5 * (log(var2 / var1) + (var1 + (mean1 - mean2)**2) / var2 - 1)   (nats)\n"
    "In code:  return 0.5 * (torch.log(var2 / var1) + (var1 + (mean1 - mean2) ** 2) / var2 - 1)",
)


def _kl_ref(mean1, var1, mean2, var2):
    return normal_kl(mean1, torch.log(var1), mean2, torch.log(var2))


def _kl_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(11)
    shape = (3, 4)

    def draw():
        return torch.randn(shape, generator=gen, dtype=torch.float64)

    def var():
        return torch.exp(0.8 * draw())

    same_var = var()
    same_mean = draw()
    return [
        Case((draw(), var(), draw(), var()), f"random means and variances {list(shape)}"),
        Case((draw(), same_var, draw(), same_var.clone()), "equal variances, different means"),
        Case((same_mean, var(), same_mean.clone(), var()), "equal means, different variances"),
        Case((draw(), 1e-4 * var(), draw(), 1e-4 * var()), "tiny variances (as at small t)"),
    ]


def check_normal_kl(fn: Callable[..., Any]) -> CheckResult:
    r"""Check ``fn(mean1, var1, mean2, var2) -> kl`` (float64 tensors of one shape, variances
    > 0) against the KL divergence of two Gaussians, elementwise, in nats:

    .. math:: \mathrm{KL}\big(\mathcal N(\mu_1, \sigma_1^2)\,\|\,\mathcal N(\mu_2, \sigma_2^2)\big)
        = \tfrac12\Big(\log\frac{\sigma_2^2}{\sigma_1^2} + \frac{\sigma_1^2 + (\mu_1-\mu_2)^2}
        {\sigma_2^2} - 1\Big)

    (the reference is :func:`ddpm_lib.losses.normal_kl`)."""

    slips = [
        Slip(Kind.SWAPPED, "this is the divergence the other way round; KL is not symmetric, and "
             "the expectation is taken under the first distribution.",
             lambda m1, v1, m2, v2: _kl_ref(m2, v2, m1, v1)),
        Slip(Kind.MISSING_FACTOR, "every term is twice too large: the log-density of a Gaussian "
             "carries a factor in front of its exponent and of its log-variance.",
             lambda m1, v1, m2, v2: 2 * _kl_ref(m1, v1, m2, v2)),
        Slip(Kind.MISSING_FACTOR, "the constant term is missing: the KL of two equal Gaussians "
             "must be 0.",
             lambda m1, v1, m2, v2: _kl_ref(m1, v1, m2, v2) + 0.5),
        Slip(Kind.MISSING_FACTOR, "the distance between the means is missing.",
             lambda m1, v1, m2, v2: _kl_ref(m1, v1, m1, v2)),
        Slip(Kind.VAR_VS_STD, "the log term is twice too large: it compares standard deviations "
             "when written without a factor, variances when written with one.",
             lambda m1, v1, m2, v2: _kl_ref(m1, v1, m2, v2) + 0.5 * torch.log(v2 / v1)),
        Slip(Kind.WRONG_SIGN, "the log term has the wrong sign (which variance is on top?).",
             lambda m1, v1, m2, v2: _kl_ref(m1, v1, m2, v2) - torch.log(v2 / v1)),
        Slip(Kind.WRONG_QUANTITY, "the squared distance of the means is divided by the wrong "
             "variance: it comes from the log-density of the second distribution.",
             lambda m1, v1, m2, v2: _kl_ref(m1, v1, m2, v2)
             + 0.5 * (m1 - m2) ** 2 * (1 / v1 - 1 / v2)),
    ]  # fmt: skip
    return run_check("normal_kl", fn, _kl_ref, _kl_cases(), slips=slips, rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------------------------- lambda_t
register(
    "lambda_t",
    "Write the posterior mean and the model mean in their noise forms: both are (x_t - c * noise) "
    "/ sqrt(alpha_t) with the same c, so their difference is a multiple of (eps - eps_theta). "
    "Square that multiple and divide by the 2 sigma_t^2 that the Gaussian KL puts under the "
    "squared distance of the means. Mind which alpha_bar belongs to the step, and that sigma2s "
    "holds variances.",
    "lambda_t = beta_t**2 / (2 * sigma_t**2 * alpha_t * (1 - abar_t))   (Ho et al. 2020, Eq. 12)\n"
    "In code:  ab = torch.cumprod(1 - betas, 0)\n"
    "          return betas[t]**2 / (2 * sigma2s[t] * (1 - betas[t]) * (1 - ab[t]))",
)


def _lambda_ref(t, betas, sigma2s):
    return eps_weights(Diffusion(betas), sigma2s).lambdas[t]


def _lambda_slip(f):
    def wrong(t, betas, sigma2s):
        ab = torch.cumprod(1 - betas, 0)
        return f(betas[t], 1 - betas[t], ab[t], ab[t - 1], sigma2s[t])

    return wrong


def _lambda_cases() -> list[Case]:
    cases = []
    for label, betas in reference_schedules():
        d, T = Diffusion(betas), betas.shape[0] - 1
        for variance in ("beta", "beta_tilde"):
            sigma2s = reverse_variances(d, variance)
            for t in sorted({2, 3, T // 2, T}):
                name = "beta_t" if variance == "beta" else "beta_tilde_t"
                cases.append(Case((t, betas, sigma2s), f"{label}, sigma_t^2 = {name}, t = {t}"))
    return cases


def check_lambda_t(fn: Callable[..., Any]) -> CheckResult:
    r"""Check ``fn(t, betas, sigma2s) -> lambda_t`` (a number; ``t`` an int in ``[2, T]``)
    against the weight of the ε-form of :math:`L_{t-1}` (Ho et al. 2020, Eq. 12):

    .. math:: \lambda_t = \frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)}

    (the reference is :func:`ddpm_lib.bound.eps_weights`), for :math:`\sigma_t^2 = \beta_t` and
    :math:`\tilde\beta_t` on three schedules."""
    slips = [
        Slip(Kind.MISSING_FACTOR, "twice too large: the Gaussian KL has a factor in front of the "
             "squared distance of the means.",
             _lambda_slip(lambda b, a, ab, abp, s2: b**2 / (s2 * a * (1 - ab)))),
        Slip(Kind.MISSING_FACTOR, "the 1 / sqrt(alpha_t) in front of both means is missing (it "
             "is squared too).",
             _lambda_slip(lambda b, a, ab, abp, s2: b**2 / (2 * s2 * (1 - ab)))),
        Slip(Kind.OFF_BY_ONE, "alpha_bar_{t-1} is used where the noise of x_t belongs to "
             "alpha_bar_t.",
             _lambda_slip(lambda b, a, ab, abp, s2: b**2 / (2 * s2 * a * (1 - abp)))),
        Slip(Kind.VAR_VS_STD, "sigma2s holds variances; the weight divides by the variance, not "
             "by the standard deviation.",
             _lambda_slip(lambda b, a, ab, abp, s2: b**2 / (2 * s2.sqrt() * a * (1 - ab)))),
        Slip(Kind.MISSING_SQRT, "the coefficient of the noise is squared, so every factor in it "
             "enters squared; one of yours enters with the wrong power.",
             _lambda_slip(lambda b, a, ab, abp, s2: b / (2 * s2 * a * (1 - ab)))),
        Slip(Kind.MISSING_SQRT, "the coefficient of the noise is squared, so every factor in it "
             "enters squared; one of yours enters with the wrong power.",
             _lambda_slip(lambda b, a, ab, abp, s2: b**2 / (2 * s2 * a * (1 - ab).sqrt()))),
    ]  # fmt: skip
    return run_check("lambda_t", fn, _lambda_ref, _lambda_cases(), slips=slips, rtol=1e-6,
                     atol=0.0)  # fmt: skip


# ------------------------------------------------------------------------- p_sample_step
register(
    "p_sample_step",
    "One step of Algorithm 2 is a draw from p_theta(x_{t-1} | x_t) = N(mu_theta, sigma_t^2 I): "
    "the mean is the posterior mean of chapter 3 in its noise form with the model's eps in place "
    "of the true noise, and the draw adds the standard deviation times z outside that mean. Read "
    "Algorithm 2's line about z once more: what happens at the last step?",
    "x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) * eps) / sqrt(alpha_t) + sigma_t * z, with z = 0 "
    "at t = 1   (Ho et al. 2020, Algorithm 2)\n"
    "In code:  ab = torch.cumprod(1 - betas, 0)\n"
    "          mean = (x_t - betas[t] / (1 - ab[t]).sqrt() * eps) / (1 - betas[t]).sqrt()\n"
    "          return mean + sigma2s[t].sqrt() * z if t > 1 else mean",
)


def _step_ref(x_t, t, eps, z, betas, sigma2s):
    mean = Diffusion(betas).mu_tilde_from_eps(x_t, t, eps)
    return mean + sigma2s[t].sqrt() * z if t > 1 else mean


def _step_slip(f, always_noise=False):
    def wrong(x_t, t, eps, z, betas, sigma2s):
        ab = torch.cumprod(1 - betas, 0)
        b, a, s2 = betas[t], 1 - betas[t], sigma2s[t]
        noise = z if (t > 1 or always_noise) else torch.zeros_like(z)
        return f(x_t, eps, noise, b, a, ab[t], s2)

    return wrong


def _step_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(7)
    shape = (2, 1, 3, 3)
    cases = []
    for label, betas in reference_schedules():
        d, T = Diffusion(betas), betas.shape[0] - 1
        for variance in ("beta", "beta_tilde"):
            sigma2s = reverse_variances(d, variance)
            for t in sorted({1, 2, T // 2, T}):
                x_t, eps, z = (torch.randn(shape, generator=gen, dtype=torch.float64)
                               for _ in range(3))  # fmt: skip
                cases.append(Case((x_t, t, eps, z, betas, sigma2s),
                                  f"{label}, sigma_t^2 = {variance}, t = {t}"))  # fmt: skip
    return cases


def check_p_sample_step(fn: Callable[..., Any]) -> CheckResult:
    r"""Check ``fn(x_t, t, eps, z, betas, sigma2s) -> x_prev`` (``x_t``, ``eps`` =
    :math:`\epsilon_\theta(x_t, t)` and ``z`` float64 tensors of one shape, ``t`` an int in
    ``[1, T]``) against one step of Algorithm 2 (Ho et al. 2020):

    .. math:: x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}
        \epsilon_\theta(x_t, t)\Big) + \sigma_t z,\qquad z = 0 \text{ if } t = 1

    (the reference mean is :meth:`ddpm_lib.Diffusion.mu_tilde_from_eps`)."""

    def mean(x_t, eps, b, a, ab):
        return (x_t - b / (1 - ab).sqrt() * eps) / a.sqrt()

    slips = [
        Slip(Kind.MISSING_FACTOR, "noise is added at the last step too: Algorithm 2 returns the "
             "mean at t = 1 (z = 0 there), else the sample ends with a layer of noise.",
             _step_slip(lambda x, e, z, b, a, ab, s2: mean(x, e, b, a, ab) + s2.sqrt() * z,
                        always_noise=True)),
        Slip(Kind.WRONG_QUANTITY, "the noise term is inside the bracket, so it is scaled as well: "
             "it belongs outside, added to the mean.",
             _step_slip(lambda x, e, z, b, a, ab, s2: (x - b / (1 - ab).sqrt() * e
                                                       + s2.sqrt() * z) / a.sqrt())),
        Slip(Kind.VAR_VS_STD, "z is scaled by a variance; it needs a standard deviation.",
             _step_slip(lambda x, e, z, b, a, ab, s2: mean(x, e, b, a, ab) + s2 * z)),
        Slip(Kind.WRONG_SIGN, "the predicted noise is added instead of subtracted.",
             _step_slip(lambda x, e, z, b, a, ab, s2: (x + b / (1 - ab).sqrt() * e) / a.sqrt()
                        + s2.sqrt() * z)),
        Slip(Kind.WRONG_QUANTITY, "the front factor undoes all t steps at once; one reverse step "
             "undoes one forward step.",
             _step_slip(lambda x, e, z, b, a, ab, s2: (x - b / (1 - ab).sqrt() * e) / ab.sqrt()
                        + s2.sqrt() * z)),
        Slip(Kind.MISSING_SQRT, "the noise's coefficient divides by a share of the variance where "
             "its square root belongs.",
             _step_slip(lambda x, e, z, b, a, ab, s2: (x - b / (1 - ab) * e) / a.sqrt()
                        + s2.sqrt() * z)),
        Slip(Kind.MISSING_FACTOR, "the factor in front of the bracket is missing.",
             _step_slip(lambda x, e, z, b, a, ab, s2: x - b / (1 - ab).sqrt() * e
                        + s2.sqrt() * z)),
    ]  # fmt: skip
    return run_check("p_sample_step", fn, _step_ref, _step_cases(), slips=slips)


# ============================================================ predict, then run: where the bits go
register(
    "most_bits_prediction",
    "The bound's terms are L_T (the prior: no parameters, and x_T is nearly pure noise), the "
    "KL terms of the middle steps and the decoder term of the last step. Ask at which step the "
    "model has to be most precise for the data to be likely: where the noise is large a wrong "
    "guess costs little, where it is tiny every pixel must land in the right one of 256 grey "
    "levels. Answer with one step t.",
    "t = 1: the decoder term L_0 = -log p_theta(x_0 | x_1) (Ho et al. 2020, Eq. 13) is the largest "
    "single term.\n"
    "In code:  terms = vlb_terms(d, model, x0, ts=most_bits_steps()).terms.mean(0); "
    "most_bits_steps()[terms.argmax()]",
)

#: The steps at which :func:`check_most_bits_prediction` measures the bound's terms.
_STEPS = (1, 2, 3, 5, 20, 100, 500, 1000)


def most_bits_steps() -> tuple[int, ...]:
    """The steps ``t`` at which :func:`check_most_bits_prediction` measures the terms."""
    return _STEPS


def _largest_term_step(model: EpsModel, diffusion: Diffusion, n: int = 8) -> int:
    from ..bound import vlb_terms
    from ..data import images_to_model, load_mnist

    x0 = images_to_model(load_mnist("test").images[:n])
    gen = torch.Generator().manual_seed(0)
    terms = vlb_terms(diffusion, model, x0, "beta", ts=_STEPS, generator=gen).terms.mean(0)
    return _STEPS[int(terms.argmax())]


def check_most_bits_prediction(
    prediction: Any, model: EpsModel, diffusion: Diffusion
) -> CheckResult:
    r"""Predict, then run: the step ``t`` (an int in ``[1, T]``, ``T = 1000``) whose term of the
    bound is largest on ``model`` with schedule ``diffusion`` (the chapter passes the shipped
    ``ddpm_lib.pretrained("mnist-unet")``, ``T = 1000``) with :math:`\sigma_t^2 = \beta_t`
    (:math:`L_0` for ``t = 1``, :math:`L_{t-1}` for ``t >= 2``). The exact value is measured by
    :func:`ddpm_lib.bound.vlb_terms` on 8 MNIST test digits at :func:`most_bits_steps` (a
    second or two on a CPU; nothing is measured while the answer is blank); the answer must equal
    it."""
    if prediction is None or prediction is Ellipsis:  # no need to measure anything yet
        return failed(
            "most_bits_prediction",
            "most_bits_prediction: write your prediction (a "
            "step t) first, then run the cell again.",
        )
    exact = _largest_term_step(model, diffusion)
    T = diffusion.T
    wrong = [
        Wrong(Kind.WRONG_QUANTITY, "at t = T the input is nearly pure noise: the model's error "
              "there is weighted by a tiny lambda_t, and the prior term L_T has no parameters at "
              "all.", T),
        Wrong(Kind.OFF_BY_ONE, "t = 2 is a KL between two narrow Gaussians that the model "
              "matches well; which term of the bound is not a KL between two Gaussians?", 2),
        Wrong(Kind.INDEX_ZERO, "t = 0 is the clean data itself, not a step of the chain.", 0),
    ]  # fmt: skip
    wrong = [w for w in wrong if w.value != exact]
    return check_number(
        "most_bits_prediction", prediction, exact, Tolerance(atol=0.0), wrong=wrong,
        what="prediction (a step t)",
        bounds=Bounds(1, T, f"Steps run from the first step of the chain to t = T = {T}."),
    )  # fmt: skip
