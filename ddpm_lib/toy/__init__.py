r"""Toy data whose diffusion is solvable exactly: the references the book checks the library against.

* :class:`GaussianMixture` -- :math:`q(x_0) = \sum_k \pi_k\,\mathcal N(x_0;\ \mu_k, s_k^2 I)` in any
  dimension ``D``. The diffusion kernel :math:`q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0,
  (1-\bar\alpha_t) I)` (Ho et al. 2020, Eq. 4) is a Gaussian convolution, so the marginal
  :math:`q(x_t)` is again a mixture (:meth:`GaussianMixture.noised`) with a density, a score and
  samples in closed form; so are :math:`\mathbb E[x_0 \mid x_t]`, the class posterior and the
  optimal ε-model (chapter 5). Defined in :mod:`ddpm_lib.toy.mixture`, re-exported here, with
  :func:`two_d_mixture` (chapter 5's data in the plane) and, from :mod:`ddpm_lib.toy.score`,
  :func:`tweedie_x0` (Tweedie's denoiser from any score) and :func:`score_error` (a network's
  score against the exact one). :meth:`GaussianMixture.tilted_log_prob` and
  :meth:`GaussianMixture.tilted_sample` give the tilt :math:`q(x)\,q(y \mid x)^\gamma / Z` that
  classifier guidance aims at (chapter 7).
* Comparing samples with an exact law (:mod:`ddpm_lib.toy.compare`): :func:`ks_per_coordinate`, a
  Kolmogorov-Smirnov test per coordinate against a mixture, and :func:`energy_distance`, the
  two-sample energy distance (chapters 5-7, the exercises and the tests).
* 1-D Gaussian data :math:`\mathcal N(m, s^2)` (chapter 4): the true reverse kernels
  (:func:`gaussian_reverse_kernels`) and the optimal ε-model (:class:`GaussianOptimalEps`), with
  which the variational bound is tight.
* Data on a few points (chapter 3): :func:`data_posterior`, :math:`q(x_0 = v_k \mid x_t)`;
  :func:`bayes_on_grid`, the reverse step :math:`q(x_{t-1} \mid x_t)` by Bayes' rule on a 1-D grid
  with no posterior formula; :func:`regress_posterior`, a Monte Carlo estimate of
  :math:`q(x_{t-1} \mid x_t, x_0)`.

Everything is computed in float64 on the CPU. Shapes: points ``[n, D]``, densities ``[n]``."""

from .compare import energy_distance, ks_per_coordinate
from .gaussian import GaussianOptimalEps, ReverseKernels, gaussian_nll, gaussian_reverse_kernels
from .mixture import GaussianMixture, MixtureClassifier, MixtureEps, three_bumps, two_d_mixture
from .points import GridPosterior, Regression, bayes_on_grid, data_posterior, regress_posterior
from .score import ScoreError, score_error, tweedie_x0

__all__ = [
    "GaussianMixture",
    "MixtureEps",
    "MixtureClassifier",
    "three_bumps",
    "two_d_mixture",
    "ScoreError",
    "score_error",
    "tweedie_x0",
    "GridPosterior",
    "Regression",
    "data_posterior",
    "bayes_on_grid",
    "regress_posterior",
    "ReverseKernels",
    "gaussian_reverse_kernels",
    "GaussianOptimalEps",
    "gaussian_nll",
    "ks_per_coordinate",
    "energy_distance",
]
