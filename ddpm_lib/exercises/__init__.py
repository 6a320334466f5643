"""Self-checks for the book's exercises: ``check_*(...) -> CheckResult``.

Two kinds of check: ``check_<name>(your_function)`` tests a function the student wrote against the
library on many inputs; ``check_<name>(your_number)`` checks a number the student wrote (a
prediction before an experiment, or the result of a derivation) against the library's exact value.
A check never raises for a wrong answer, so a notebook keeps running. Help comes in three tiers:
the failure names the kind of mistake (never the formula); ``hint(name)`` gives a hint;
``solution(name)`` shows the formula. ``result.hint()`` / ``result.solution()`` do the same for a
result kept in a variable, and ``hint()`` / ``solution()`` without a name refer to the exercise
checked last."""

from ._check import CheckResult, Kind, Reveal, hint, solution
from ._question import Bounds, Tolerance, Wrong, check_number
from .closed_form import (
    check_alpha_bar_T,
    check_alpha_bars,
    check_q_sample,
    check_snr_crossing,
    check_snr_crossing_prediction,
)
from .elbo import check_lambda_t, check_most_bits_prediction, check_normal_kl, check_p_sample_step
from .forward import (
    check_marginal_pdf,
    check_merged_variance,
    check_q_step,
    check_variance_prediction,
    check_variance_step,
    check_variance_trajectory,
)
from .guidance import (
    check_cfg_eps,
    check_classifier_guided_eps,
    check_gamma_zero_prediction,
    gamma_zero_given,
)
from .posterior import (
    beta_tilde_given,
    check_beta_tilde,
    check_beta_tilde_value,
    check_mu_tilde_from_eps,
    check_posterior_std_prediction,
    check_q_posterior,
)
from .sde import (
    check_euler_maruyama_step,
    check_pf_ode_drift,
    check_step_count_prediction,
    step_count_given,
)
from .tweedie import (
    check_langevin_step,
    check_noiseless_langevin_prediction,
    check_tweedie_denoiser,
    check_tweedie_gaussian_value,
    noiseless_langevin_given,
    tweedie_gaussian_given,
)

__all__ = [
    "Bounds",
    "CheckResult",
    "Kind",
    "Reveal",
    "Tolerance",
    "Wrong",
    "beta_tilde_given",
    "gamma_zero_given",
    "check_alpha_bar_T",
    "check_alpha_bars",
    "check_lambda_t",
    "check_langevin_step",
    "check_most_bits_prediction",
    "check_noiseless_langevin_prediction",
    "check_normal_kl",
    "check_p_sample_step",
    "check_beta_tilde",
    "check_cfg_eps",
    "check_classifier_guided_eps",
    "check_euler_maruyama_step",
    "check_gamma_zero_prediction",
    "check_beta_tilde_value",
    "check_marginal_pdf",
    "check_merged_variance",
    "check_mu_tilde_from_eps",
    "check_number",
    "check_posterior_std_prediction",
    "check_q_posterior",
    "check_q_sample",
    "check_pf_ode_drift",
    "check_q_step",
    "check_snr_crossing",
    "check_snr_crossing_prediction",
    "check_step_count_prediction",
    "check_tweedie_denoiser",
    "check_tweedie_gaussian_value",
    "check_variance_prediction",
    "check_variance_step",
    "check_variance_trajectory",
    "hint",
    "noiseless_langevin_given",
    "solution",
    "step_count_given",
    "tweedie_gaussian_given",
]
