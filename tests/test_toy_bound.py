"""The bound made exact (chapter 4) on 1-D Gaussian data N(m, s^2): the true reverse kernels, the
optimal eps-model, bound = negative log-likelihood, fixed variances make it loose by the predicted
amount, and the decomposed bound equals the direct Monte Carlo one. Units: bits (D = 1, so bits
per dimension are bits)."""

import math

import pytest
import torch

from ddpm_lib import bound, toy

# d: T = 250 with alpha_bar_T = 3.3e-5 (the paper's T = 1000 has 4.0e-5): the same physics at a
# quarter of the cost (each step is a few tiny tensor operations).
pytestmark = pytest.mark.schedule(250, 4e-4, 0.08)

LN2 = math.log(2)
M, S = 0.3, 0.5


def _data(n, seed, m=M, s=S):
    gen = torch.Generator().manual_seed(seed)
    return m + s * torch.randn(n, 1, generator=gen, dtype=torch.float64), gen


def _predicted_gap(d, kernels, variance) -> float:
    """With the true means, the bound exceeds the exact one by sum_t KL(N(mu, v_t) || N(mu,
    sigma_t^2)) in expectation (t = 1 included: the decoder's variance), in bits."""
    ratio = bound.reverse_variances(d, variance)[1:] / kernels.v[1:]
    return float((0.5 * (torch.log(ratio) + 1 / ratio - 1)).sum()) / LN2


@pytest.mark.parametrize("t", [1, 2, 50, 249])
def test_kernels_match_a_regression_on_simulated_pairs(d, t):
    x0, gen = _data(100_000, t)
    x_prev = d.q_sample(x0, t - 1, generator=gen)
    x_t = d.q_step(x_prev, t, generator=gen)
    design = torch.cat([x_t, torch.ones_like(x_t)], dim=1)
    slope, intercept = torch.linalg.lstsq(design, x_prev).solution[:, 0].tolist()
    resid = (x_prev[:, 0] - design @ torch.tensor([slope, intercept], dtype=torch.float64)).var()
    k = toy.gaussian_reverse_kernels(d, M, S)
    v = float(k.v[t])
    assert slope == pytest.approx(float(k.a[t]), abs=5 * math.sqrt(v / 1e5 / float(x_t.var())))
    assert intercept == pytest.approx(float(k.b[t]), abs=5 * math.sqrt(v / 1e5) + 1e-12)
    assert float(resid) == pytest.approx(v, rel=5 * math.sqrt(2 / 1e5))
    assert float(k.means[t]) == pytest.approx(float(x_t.mean()), abs=5 * math.sqrt(1 / 1e5))
    assert math.isnan(k.a[0]) and float(k.variances[0]) == S**2


def test_optimal_eps_gives_the_true_kernel_mean_and_is_least_squares(d):
    model = toy.GaussianOptimalEps(d, M, S)
    k = model.kernels
    x_t = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None]
    for t in (1, 2, 100, 250):
        mean, _ = d.p_mean_variance(model, x_t, t)
        assert torch.allclose(mean, k.a[t] * x_t + k.b[t], rtol=1e-12, atol=1e-12)
    ts = torch.tensor([1, 5, 5, 80, 100, 249, 250])
    per_example = model(x_t, ts)
    assert torch.allclose(per_example[3], model(x_t[3:4], 80)[0])
    # E[eps_bar | x_t]: the error of the best predictor is uncorrelated with x_t (and mean zero)
    x0, gen = _data(200_000, 7)
    eps = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    x = d.q_sample(x0, 50, noise=eps)
    err = eps - model(x, 50)
    assert abs(float(err.mean())) < 5 / math.sqrt(2e5)
    assert abs(float((err * (x - x.mean())).mean())) < 5 / math.sqrt(2e5)
    with pytest.raises(ValueError, match=r"x_t must have shape \[B, 1\]"):
        model(torch.zeros(3, 2), 4)
    with pytest.raises(ValueError, match=r"t must be an integer in \[1, 250\], got 0"):
        model(x_t, 0)
    with pytest.raises(ValueError, match="s must be > 0"):
        toy.gaussian_reverse_kernels(d, 0.0, 0.0)


def test_the_bound_of_the_true_reverse_process_is_the_nll(d):
    """With p_theta = q(x_{t-1} | x_t) the bound equals -log N(x_0; m, s^2) up to Monte Carlo
    error (and the prior mismatch, which alpha_bar_T = 3.3e-5 makes tiny)."""
    model = toy.GaussianOptimalEps(d, M, S)
    x0, gen = _data(2000, 11)
    nll = toy.gaussian_nll(x0, M, S)[:, 0] / LN2
    terms = bound.vlb_terms(d, model, x0, model.kernels.v, generator=gen, decoder="gaussian")
    gap = terms.total - nll
    assert abs(float(gap.mean())) < 4 * float(gap.std()) / math.sqrt(2000)
    assert float(gap.std()) < 2.0  # the decomposition's own Monte Carlo noise, per example


def test_direct_monte_carlo_of_the_exact_model_is_the_nll_plus_the_prior_mismatch(d):
    """Sum of log q(x_t | x_{t-1}) - log p_theta(x_{t-1} | x_t) over the chain, minus log p(x_T):
    with the true kernels it collapses, draw by draw, to -log q(x_0) + log q(x_T) - log p(x_T)."""
    model = toy.GaussianOptimalEps(d, M, S)
    x0, gen = _data(300, 12)
    noise = torch.randn(d.T, *x0.shape, generator=gen, dtype=torch.float64)
    direct = bound.vlb_direct(d, model, x0, model.kernels.v, noise=noise)
    x_T = x0
    for t in range(1, d.T + 1):
        x_T = d.q_step(x_T, t, noise=noise[t - 1])
    k = model.kernels
    log_q_T = -toy.gaussian_nll(x_T, float(k.means[-1]), float(k.variances[-1].sqrt()))
    log_p_T = -toy.gaussian_nll(x_T, 0.0, 1.0)
    expected = (toy.gaussian_nll(x0, M, S) + log_q_T - log_p_T)[:, 0] / LN2
    assert torch.allclose(direct, expected, atol=1e-8)


@pytest.mark.parametrize("s,variance", [(0.5, "beta_tilde"), (0.5, "beta"), (0.05, "beta")])
def test_fixed_variances_make_the_bound_loose_by_the_predicted_amount(d, s, variance):
    """Same noise for the exact variances v_t and for Ho's beta_t or beta_tilde_t: the means are
    the true ones in both, so the difference is the variance mismatch, sum_t KL(N(mu, v_t) ||
    N(mu, sigma_t^2)) in expectation: strictly positive, beyond Monte Carlo error."""
    model = toy.GaussianOptimalEps(d, M, s)
    x0, gen = _data(1000, 13, s=s)
    noise = torch.randn(d.T, *x0.shape, generator=gen, dtype=torch.float64)
    exact = bound.vlb_terms(d, model, x0, model.kernels.v, noise, decoder="gaussian").total
    fixed = bound.vlb_terms(d, model, x0, variance, noise, decoder="gaussian").total
    gap = fixed - exact
    se = float(gap.std()) / math.sqrt(1000)
    assert float(gap.mean()) > 5 * se
    assert float(gap.mean()) == pytest.approx(_predicted_gap(d, model.kernels, variance),
                                              abs=4 * se)  # fmt: skip


def test_decomposed_bound_equals_direct_monte_carlo(d):
    """With a wrong variance (so that neither is trivially the NLL) the KL decomposition and the
    definition E_q[log q(x_{1:T} | x_0) - log p_theta(x_{0:T})] agree within Monte Carlo error."""
    model = toy.GaussianOptimalEps(d, M, S)
    x0, gen = _data(1500, 14)
    decomposed = bound.vlb_terms(d, model, x0, "beta_tilde", generator=gen,
                                      decoder="gaussian").total  # fmt: skip
    direct = bound.vlb_direct(d, model, x0, "beta_tilde", generator=gen)
    se = math.hypot(float(decomposed.std()), float(direct.std())) / math.sqrt(1500)
    assert abs(float(decomposed.mean() - direct.mean())) < 4 * se
    nll = float(toy.gaussian_nll(x0, M, S).mean()) / LN2
    assert float(direct.mean()) - nll > 0.5  # loose by ~0.8 bits, so the check is not vacuous
