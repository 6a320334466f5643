"""q(x_{t-1} | x_t, x_0): against brute-force Bayes on a grid, Monte Carlo, and its eps-form."""

import numpy as np
import pytest
import torch
from scipy import integrate, stats


@pytest.mark.parametrize("t", [2, 3, 50, 400, 1000])
@pytest.mark.parametrize("which", ["linear", "cosine"])
def test_posterior_matches_bayes_on_a_grid(which, t, request):
    d = request.getfixturevalue(which)
    ab_prev, alpha, beta = float(d.alpha_bars[t - 1]), float(d.alphas[t]), float(d.betas[t])
    x0 = 0.7  # and a plausible x_t, 1.3 standard deviations from its mean under q(x_t | x0):
    x_t = float(d.alpha_bars[t].sqrt() * x0 + (1 - d.alpha_bars[t]).sqrt() * 1.3)
    # Bayes: p(x_{t-1} | x_t, x0) is proportional to q(x_t | x_{t-1}) q(x_{t-1} | x0).
    mean, var = d.q_posterior(torch.tensor([x0]), torch.tensor([x_t]), t)
    mean, var = float(mean), float(var)
    sd = var**0.5
    grid = np.linspace(mean - 12 * sd, mean + 12 * sd, 200_001)
    log_prior = stats.norm.logpdf(grid, np.sqrt(ab_prev) * x0, np.sqrt(1 - ab_prev))
    log_likelihood = stats.norm.logpdf(x_t, np.sqrt(alpha) * grid, np.sqrt(beta))
    log_joint = log_prior + log_likelihood
    unnorm = np.exp(log_joint - log_joint.max())  # normalised below; the shift avoids underflow
    z = integrate.simpson(unnorm, x=grid)
    grid_mean = integrate.simpson(grid * unnorm, x=grid) / z
    grid_var = integrate.simpson((grid - grid_mean) ** 2 * unnorm, x=grid) / z
    assert grid_mean == pytest.approx(mean, abs=1e-6 * max(1.0, abs(mean)))
    assert grid_var == pytest.approx(var, rel=1e-5)


def test_posterior_at_t1_is_a_point_mass_on_x0(linear):
    x0, x_t = torch.tensor([[0.3, -0.9]]), torch.tensor([[1.0, 2.0]])
    mean, var = linear.q_posterior(x0, x_t, 1)
    assert torch.allclose(mean, x0) and float(var) == 0.0


def test_posterior_matches_monte_carlo_regression(linear):
    """(x_{t-1}, x_t) given x0 is jointly Gaussian: regressing x_{t-1} on x_t recovers the posterior
    coefficients and the residual variance beta_tilde_t."""
    t, n, x0 = 200, 400_000, 0.5
    g = torch.Generator().manual_seed(11)
    x0s = torch.full((n, 1), x0, dtype=torch.float64)
    x_prev = linear.q_sample(x0s, t - 1, generator=g)
    x_t = linear.q_step(x_prev, t, generator=g)
    A = torch.cat([x_t, torch.ones_like(x_t)], dim=1)
    coef = torch.linalg.lstsq(A, x_prev).solution.squeeze(1)
    resid_var = float((x_prev - A @ coef.unsqueeze(1)).var())
    assert float(coef[0]) == pytest.approx(float(linear.posterior_coef_xt[t]), abs=5e-3)
    assert float(coef[1]) == pytest.approx(float(linear.posterior_coef_x0[t]) * x0, abs=5e-3)
    assert resid_var == pytest.approx(float(linear.beta_tildes[t]), rel=1e-2)
    mean, _ = linear.q_posterior(x0s[:5], x_t[:5], t)
    assert torch.allclose(mean.squeeze(1), A[:5] @ coef, atol=1e-2)


@pytest.mark.parametrize("which", ["linear", "cosine"])
def test_eps_form_of_mu_tilde_equals_x0_form(which, request, gen):
    d = request.getfixturevalue(which)
    x0 = torch.rand(8, 1, 4, 4, dtype=torch.float64, generator=gen) * 2 - 1
    eps = torch.randn(x0.shape, dtype=torch.float64, generator=gen)
    t = torch.randint(1, d.T + 1, (8,), generator=gen)
    x_t = d.q_sample(x0, t, noise=eps)
    assert torch.allclose(
        d.mu_tilde_from_x0(x0, x_t, t), d.mu_tilde_from_eps(x_t, t, eps), atol=1e-9
    )


def test_round_trips_and_score(linear, gen):
    x0 = torch.rand(6, 1, 5, 5, dtype=torch.float64, generator=gen) * 2 - 1
    eps = torch.randn(x0.shape, dtype=torch.float64, generator=gen)
    t = torch.tensor([1, 2, 10, 300, 999, 1000])
    x_t = linear.q_sample(x0, t, noise=eps)
    assert torch.allclose(linear.eps_from_x0(x_t, t, x0), eps, atol=1e-8)
    x0_back = linear.predict_x0_from_eps(x_t, t, linear.eps_from_x0(x_t, t, x0))
    assert torch.allclose(x0_back, x0, atol=1e-6)  # t = 1000 divides by sqrt(abar) ~ 6e-3
    score = linear.score_from_eps(eps, t)
    one_minus = (1 - linear.alpha_bars[t]).reshape(-1, 1, 1, 1)
    assert torch.allclose(score, -eps / one_minus.sqrt(), atol=0, rtol=1e-12)
    assert torch.allclose(linear.eps_from_score(score, t), eps, atol=1e-12)
    # Tweedie's formula with the true score of q(x_t | x0) gives back x0.
    assert torch.allclose(linear.predict_x0_from_score(x_t, t, score), x0, atol=1e-6)
