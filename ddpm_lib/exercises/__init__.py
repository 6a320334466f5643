"""Self-check functions for the book's exercises: ``check_*(your_function) -> CheckResult``.

Each checker tests a learner's function against ``ddpm_lib``'s reference on random inputs and says
what is wrong; it never raises for a wrong answer, so a notebook keeps running.
"""

from ._check import CheckResult
from .closed_form import check_alpha_bars, check_q_sample, check_snr_crossing
from .forward import check_marginal_pdf, check_q_step, check_variance_trajectory
from .posterior import check_beta_tilde, check_mu_tilde_from_eps, check_q_posterior

__all__ = [
    "CheckResult",
    "check_alpha_bars",
    "check_beta_tilde",
    "check_marginal_pdf",
    "check_mu_tilde_from_eps",
    "check_q_posterior",
    "check_q_sample",
    "check_q_step",
    "check_snr_crossing",
    "check_variance_trajectory",
]
