"""ddpm_lib.toy: the exact references the chapters check the library against.

The Gaussian mixture (any dimension) against scipy and against simulation of the forward chain, and
the chapter-3 references for data on a few points (Bayes on a grid, a Monte Carlo regression)
against the library's posterior formula.
"""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from ddpm_lib import Diffusion, schedule, toy


@pytest.fixture
def short() -> Diffusion:
    """A short chain with large steps: abar_T ~ 0.02, so mixing is visible in 40 steps."""
    return Diffusion(schedule.linear_betas(40, 1e-3, 0.18))


@pytest.fixture(scope="module")
def coarse() -> Diffusion:
    return Diffusion(schedule.linear_betas(10, 0.05, 0.5))


def _two_d() -> toy.GaussianMixture:
    return toy.GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [0.8, -0.2]], [0.4, 0.25])


# ------------------------------------------------------------------------- the Gaussian mixture
def test_mixture_refuses_bad_parameters():
    ok = toy.three_bumps()
    w, m, s = ok.weights, ok.means, ok.stds
    with pytest.raises(ValueError, match="sum to 1"):
        toy.GaussianMixture([0.5, 0.4, 0.2], m, s)
    with pytest.raises(ValueError, match="sum to 1"):
        toy.GaussianMixture([1.2, -0.1, -0.1], m, s)
    with pytest.raises(ValueError, match="stds must be > 0"):
        toy.GaussianMixture(w, m, [0.1, 0.0, 0.1])
    with pytest.raises(ValueError, match="one length"):
        toy.GaussianMixture(w, [[0.0], [1.0]], s)
    with pytest.raises(ValueError, match="one length"):
        toy.GaussianMixture(w, [0.0, 1.0, 2.0], s)  # means must be [K, D]
    with pytest.raises(ValueError, match="finite"):
        toy.GaussianMixture(w, [[0.0], [float("nan")], [1.0]], s)
    with pytest.raises(ValueError, match=r"alpha_bar must be one number in \[0, 1\]"):
        ok.noised(1.5)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        ok.sample(0)
    with pytest.raises(ValueError, match=r"x must have shape \[n, D\] = \[n, 1\]"):
        ok.log_prob(torch.zeros(5))
    with pytest.raises(TypeError, match="x must be a floating-point"):
        ok.log_prob(torch.zeros(5, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="D = 1"):
        _two_d().cdf(torch.zeros(3, 2))


def test_parameters_are_float64_and_shapes_are_named():
    m = toy.GaussianMixture(torch.tensor([0.5, 0.5]), torch.zeros(2, 3), torch.ones(2))
    assert m.weights.dtype == m.means.dtype == m.stds.dtype == torch.float64
    assert (m.K, m.D) == (2, 3) and "K=2, D=3" in repr(m)


def test_sample_has_the_mixture_moments():
    m = toy.three_bumps()
    x = m.sample(200_000, generator=torch.Generator().manual_seed(0))
    assert x.shape == (200_000, 1) and x.dtype == torch.float64
    mean = (m.weights * m.means[:, 0]).sum()
    var = (m.weights * (m.stds**2 + m.means[:, 0] ** 2)).sum() - mean**2
    assert abs(x.mean() - mean) < 4 * math.sqrt(var / x.numel())
    assert abs(x.var() - var) < 0.01


def test_sample_in_two_dimensions_with_labels():
    m = _two_d()
    x, k = m.sample(100_000, generator=torch.Generator().manual_seed(1), return_labels=True)
    assert x.shape == (100_000, 2) and k.shape == (100_000,) and k.dtype == torch.int64
    assert abs(float((k == 1).double().mean()) - 0.7) < 0.01
    for j in range(2):  # each component's draws have its mean and isotropic spread
        xj = x[k == j]
        assert torch.allclose(
            xj.mean(0), m.means[j], atol=4 * float(m.stds[j]) / math.sqrt(len(xj))
        )
        assert torch.allclose(xj.std(0), m.stds[j].expand(2), rtol=0.02)
    a = m.sample(5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, m.sample(5, generator=torch.Generator().manual_seed(2)))


def test_log_prob_and_cdf_against_scipy():
    m = toy.GaussianMixture([0.2, 0.8], [[-1.0], [0.5]], [0.3, 0.7])
    x = torch.linspace(-4, 4, 101, dtype=torch.float64)[:, None]
    params = list(zip(m.weights.tolist(), m.means[:, 0].tolist(), m.stds.tolist(), strict=True))
    want_pdf = sum(w * stats.norm.pdf(x[:, 0].numpy(), mu, s) for w, mu, s in params)
    want_cdf = sum(w * stats.norm.cdf(x[:, 0].numpy(), mu, s) for w, mu, s in params)
    assert np.allclose(m.log_prob(x).exp().numpy(), want_pdf, rtol=1e-10, atol=1e-14)
    assert np.allclose(m.cdf(x).numpy(), want_cdf, rtol=1e-10, atol=1e-14)
    m2 = _two_d()
    y = m2.sample(50, generator=torch.Generator().manual_seed(3))
    want = sum(
        w * stats.multivariate_normal.pdf(y.numpy(), mu.numpy(), s**2 * np.eye(2))
        for w, mu, s in zip(m2.weights.tolist(), m2.means, m2.stds.tolist(), strict=True)
    )
    assert np.allclose(m2.log_prob(y).exp().numpy(), want, rtol=1e-10)


def test_log_prob_is_finite_far_in_the_tails():
    m = toy.three_bumps()
    lp = m.log_prob(torch.tensor([[40.0], [-40.0]], dtype=torch.float64))
    assert bool(torch.isfinite(lp).all()) and float(lp.max()) < -1e5


def test_score_is_the_gradient_of_log_prob():
    m = _two_d()
    x = m.sample(20, generator=torch.Generator().manual_seed(4))
    h = 1e-5
    numeric = torch.stack(
        [(m.log_prob(x + h * e) - m.log_prob(x - h * e)) / (2 * h) for e in torch.eye(2, dtype=torch.float64)],
        dim=1,
    )  # fmt: skip
    assert m.score(x).shape == (20, 2)
    assert torch.allclose(m.score(x), numeric, rtol=1e-6, atol=1e-6)
    one = toy.GaussianMixture([1.0], [[0.3, -0.2]], [0.5])  # one Gaussian: -(x - mu) / s^2
    assert torch.allclose(one.score(x), -(x - one.means[0]) / 0.25, atol=1e-12)


def test_noised_limits_and_normalisation(short):
    m = toy.three_bumps()
    same = m.noised(1.0)
    assert torch.allclose(same.means, m.means) and torch.allclose(same.stds, m.stds)
    gone = m.noised(0.0)
    assert torch.allclose(gone.means, torch.zeros(3, 1, dtype=torch.float64))
    assert torch.allclose(gone.stds, torch.ones(3, dtype=torch.float64))
    half = m.noised(torch.tensor(0.5))
    assert torch.allclose(half.stds**2, 0.5 * m.stds**2 + 0.5)
    assert torch.equal(half.weights, m.weights)
    x = torch.linspace(-8, 8, 20_001, dtype=torch.float64)
    for t in (0, 1, 10, short.T):
        pdf = m.noised(short.alpha_bars[t]).log_prob(x[:, None]).exp()
        assert integrate.trapezoid(pdf.numpy(), x.numpy()) == pytest.approx(1.0, abs=1e-6)
        ab = short.alpha_bars[t].item()
        mean = integrate.trapezoid((x * pdf).numpy(), x.numpy())
        want = math.sqrt(ab) * (m.weights * m.means[:, 0]).sum().item()
        assert mean == pytest.approx(want, abs=1e-6)


def _q_t_samples(d, m, t, n, seed):
    g = torch.Generator().manual_seed(seed)
    x0 = m.sample(n, generator=g)
    x = x0
    for s in range(1, t + 1):
        x = d.q_step(x, s, generator=g)
    return x


def test_chain_on_toy_data_matches_the_noised_mixture(short):
    """KS: the step-by-step chain is not rejected against the exact mixture, but the wrong step is."""
    m = toy.three_bumps()
    for t in (3, 10):
        x_t = _q_t_samples(short, m, t, 20_000, seed=11)

        def cdf(v, t=t):
            return m.noised(short.alpha_bars[t]).cdf(torch.from_numpy(v)[:, None]).numpy()

        def wrong(v, t=t):
            return m.noised(short.alpha_bars[t + 3]).cdf(torch.from_numpy(v)[:, None]).numpy()

        assert stats.kstest(x_t[:, 0].numpy(), cdf).pvalue > 0.01
        assert stats.kstest(x_t[:, 0].numpy(), wrong).pvalue < 1e-6


def test_noised_mixture_in_two_dimensions_has_the_simulated_moments(short):
    m, t, n = _two_d(), 5, 100_000
    x_t = _q_t_samples(short, m, t, n, seed=12)
    q_t = m.noised(short.alpha_bars[t])
    mean = (q_t.weights[:, None] * q_t.means).sum(0)
    second = (q_t.weights[:, None, None] * (q_t.means[:, :, None] * q_t.means[:, None, :]
              + q_t.stds[:, None, None] ** 2 * torch.eye(2, dtype=torch.float64))).sum(0)  # fmt: skip
    cov = second - mean[:, None] * mean[None, :]
    assert torch.allclose(x_t.mean(0), mean, atol=5 * math.sqrt(float(cov.diagonal().max()) / n))
    assert torch.allclose(torch.cov(x_t.T), cov, atol=0.02)


# ------------------------------------------------------------------ data on a few points (ch. 3)
def _formula(d, x0, x_t, t):
    mean, var = d.q_posterior(torch.tensor([x0], dtype=torch.float64),
                              torch.tensor([x_t], dtype=torch.float64), t)  # fmt: skip
    return float(mean[0]), float(var)


@pytest.mark.parametrize("t", [2, 3, 40, 1000])
def test_grid_bayes_agrees_with_the_formula(linear, cosine, t):
    for d in (linear, cosine):
        x0 = -0.6
        x_t = math.sqrt(float(d.alpha_bars[t])) * x0 + 2.0 * math.sqrt(1 - float(d.alpha_bars[t]))
        post = toy.bayes_on_grid(d, x_t, t, [x0])
        mean, var = _formula(d, x0, x_t, t)
        assert post.mean == pytest.approx(mean, abs=1e-9)
        assert post.variance == pytest.approx(var, rel=1e-7)
        assert integrate.simpson(post.density, x=post.grid) == pytest.approx(1.0, abs=1e-12)


def test_grid_bayes_detects_a_wrong_posterior(linear):
    """The check has teeth: beta_t (not beta_tilde_t) and the x0-free mean are measurably off."""
    t, x0, x_t = 5, 0.5, 0.52
    post = toy.bayes_on_grid(linear, x_t, t, [x0])
    assert abs(post.variance / float(linear.betas[t]) - 1) > 0.1
    assert abs(post.mean - x_t / math.sqrt(float(linear.alphas[t]))) > 1e-3


def test_true_reverse_is_the_weighted_mixture_of_posteriors(coarse):
    """q(x_{t-1} | x_t) = sum_k q(x0 = v_k | x_t) q(x_{t-1} | x_t, x0 = v_k), and it is bimodal
    for big steps."""
    values, probs, t, x_t = [-1.0, 1.0], [0.3, 0.7], 3, 0.1
    true = toy.bayes_on_grid(coarse, x_t, t, values, probs)
    w = toy.data_posterior(coarse, x_t, t, values, probs)
    assert w.sum() == pytest.approx(1.0) and w[1] > w[0]
    mix = np.zeros_like(true.grid)
    for v, wk in zip(values, w, strict=True):
        mean, var = _formula(coarse, v, x_t, t)
        mix += wk * np.exp(-((true.grid - mean) ** 2) / (2 * var)) / math.sqrt(2 * math.pi * var)
    assert np.max(np.abs(mix - true.density)) < 1e-9 * true.density.max()
    interior_minima = np.sum((true.density[1:-1] < true.density[:-2])
                             & (true.density[1:-1] < true.density[2:]))  # fmt: skip
    assert interior_minima == 1


def test_data_posterior_is_bayes_with_the_closed_form(coarse):
    values, probs, t, x_t = [-1.0, 0.2, 1.0], [0.2, 0.3, 0.5], 4, -0.3
    ab = float(coarse.alpha_bars[t])
    lik = stats.norm.pdf(x_t, math.sqrt(ab) * np.array(values), math.sqrt(1 - ab))
    want = np.array(probs) * lik / (np.array(probs) * lik).sum()
    assert np.allclose(toy.data_posterior(coarse, x_t, t, values, probs), want, rtol=1e-12)
    uniform = toy.data_posterior(coarse, x_t, t, values)
    assert np.allclose(uniform, lik / lik.sum(), rtol=1e-12)


def test_regression_recovers_the_posterior(linear):
    fit = toy.regress_posterior(linear, 0.5, 20, 100_000, torch.Generator().manual_seed(0))
    assert abs(fit.slope - float(linear.posterior_coef_xt[20])) < 5 * fit.slope_se
    assert abs(fit.intercept - 0.5 * float(linear.posterior_coef_x0[20])) < 5 * fit.intercept_se
    assert abs(fit.residual_variance - float(linear.beta_tildes[20])) < 5 * fit.residual_variance_se
    # and it is sharp enough to reject beta_t as the variance
    assert abs(fit.residual_variance - float(linear.betas[20])) > 10 * fit.residual_variance_se


def test_point_data_references_refuse_bad_input(linear):
    with pytest.raises(ValueError, match=r"t must be an integer in \[2, 1000\], got 1"):
        toy.bayes_on_grid(linear, 0.0, 1, [0.0])
    with pytest.raises(ValueError, match="n must be an odd integer"):
        toy.bayes_on_grid(linear, 0.0, 5, [0.0], n=1000)
    with pytest.raises(ValueError, match="x0_probs must hold 2 positive probabilities"):
        toy.bayes_on_grid(linear, 0.0, 5, [0.0, 1.0], [0.5, 0.6])
    with pytest.raises(ValueError, match="x0_values must be a non-empty list"):
        toy.data_posterior(linear, 0.0, 5, [])
    with pytest.raises(ValueError, match=r"t must be an integer in \[1, 1000\], got 1001"):
        toy.data_posterior(linear, 0.0, 1001, [0.0])
    with pytest.raises(ValueError, match="n must be an int >= 10, got 3"):
        toy.regress_posterior(linear, 0.0, 5, 3)
    with pytest.raises(TypeError, match="t must be an int"):
        toy.regress_posterior(linear, 0.0, 5.0, 100)
