"""The forward process: iterating q(x_t | x_{t-1}) t times is q(x_t | x_0) in closed form."""

import pytest
import torch
from scipy import stats


def _iterate_chain(d, x0, t, generator):
    x = x0
    for s in range(1, t + 1):
        x = d.q_step(x, s, generator=generator)
    return x


@pytest.mark.parametrize("t", [1, 10, 250, 1000])
def test_closed_form_matches_iterated_chain(linear, t):
    n = 40_000
    x0 = torch.full((n, 1), 0.8, dtype=torch.float64)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    iterated = _iterate_chain(linear, x0, t, g1).squeeze(1)
    closed = linear.q_sample(x0, t, generator=g2).squeeze(1)
    mean, var = float(linear.alpha_bars[t].sqrt() * 0.8), float(1 - linear.alpha_bars[t])
    # Moments of the iterated chain agree with sqrt(abar) x0 and 1 - abar (5 standard errors).
    se_mean, se_var = (var / n) ** 0.5, var * (2 / n) ** 0.5
    assert abs(float(iterated.mean()) - mean) < 5 * se_mean
    assert abs(float(iterated.var()) - var) < 5 * se_var
    # Two-sample KS: the two samplers draw from the same law; and both match the exact Gaussian.
    assert stats.ks_2samp(iterated.numpy(), closed.numpy()).pvalue > 1e-3
    assert stats.kstest(iterated.numpy(), stats.norm(mean, var**0.5).cdf).pvalue > 1e-3


def test_iterated_chain_is_exactly_closed_form_for_matched_noise(linear):
    """With the noises of the chain merged by hand (sum of Gaussians), the draws agree to round-off."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 5, dtype=torch.float64, generator=g)
    x, merged = x0, torch.zeros_like(x0)
    for s in range(1, 41):
        eps = torch.randn(x0.shape, dtype=torch.float64, generator=g)
        x = linear.q_step(x, s, noise=eps)
        # x_s = sqrt(alpha_s) x_{s-1} + sqrt(beta_s) eps_s: track the noise part alone.
        merged = linear.alphas[s].sqrt() * merged + linear.betas[s].sqrt() * eps
    eps_bar = merged / (1 - linear.alpha_bars[40]).sqrt()  # unit variance by construction
    assert torch.allclose(x, linear.q_sample(x0, 40, noise=eps_bar), atol=1e-12)


def test_a_killed_chain_is_detected_by_the_test(linear):
    """Guard against a test that cannot fail: a wrong marginal (a missing sqrt) is rejected."""
    n, t = 40_000, 100
    x0 = torch.full((n,), 0.8, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    wrong = linear.alpha_bars[t] * x0 + (1 - linear.alpha_bars[t]) * torch.randn(n, generator=g)
    mean, sd = float(linear.alpha_bars[t].sqrt() * 0.8), float((1 - linear.alpha_bars[t]).sqrt())
    assert stats.kstest(wrong.numpy(), stats.norm(mean, sd).cdf).pvalue < 1e-6


def test_q_sample_t0_is_data_and_per_example_t(linear, gen):
    x0 = torch.randn(4, 1, 6, 6, generator=gen)
    assert torch.equal(linear.q_sample(x0, 0, generator=gen), x0)
    t = torch.tensor([1, 10, 100, 1000])
    noise = torch.randn(x0.shape, generator=gen)
    out = linear.q_sample(x0, t, noise=noise)
    for i in range(4):
        assert torch.allclose(
            out[i : i + 1], linear.q_sample(x0[i : i + 1], int(t[i]), noise[i : i + 1])
        )


def test_generator_makes_draws_reproducible(linear):
    x0 = torch.zeros(2, 3)
    a = linear.q_sample(x0, 7, generator=torch.Generator().manual_seed(5))
    b = linear.q_sample(x0, 7, generator=torch.Generator().manual_seed(5))
    c = linear.q_sample(x0, 7, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
