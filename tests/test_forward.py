"""The forward process: iterating q(x_t | x_{t-1}) t times is q(x_t | x_0) in closed form; and the
schedule facts the chapters quote (variance trajectory, where the SNR crosses a level)."""

import pytest
import torch
from scipy import stats

from ddpm_lib import Diffusion, schedule


def _iterate_chain(d, x0, t, generator):
    x = x0
    for s in range(1, t + 1):
        x = d.q_step(x, s, generator=generator)
    return x


@pytest.mark.parametrize(
    "t",
    [1, 10, pytest.param(250, marks=pytest.mark.slow), pytest.param(1000, marks=pytest.mark.slow)],
)
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


# ---------------------------------------------------------------------------- schedule facts
def test_variance_trajectory_iterates_the_one_step_rule():
    d = Diffusion(schedule.linear_betas(40, 1e-3, 0.18))
    v = [2.5]
    for t in range(1, d.T + 1):
        v.append((1 - d.betas[t].item()) * v[-1] + d.betas[t].item())
    got = d.variance_trajectory(2.5)
    assert got.dtype == torch.float64 and got.shape == (d.T + 1,)
    assert torch.allclose(got, torch.tensor(v, dtype=torch.float64), rtol=1e-12)
    assert d.variance_trajectory(1.0).sub(1).abs().max() < 1e-12  # unit variance is kept
    for bad in (-0.1, float("nan"), True, "1"):
        with pytest.raises(ValueError, match="var0 must be a finite number >= 0"):
            d.variance_trajectory(bad)


def test_first_t_snr_below_is_the_first_crossing(linear, cosine):
    for d in (linear, cosine):
        for level in (1.0, 0.1, 1e-3):
            t = d.first_t_snr_below(level)
            assert float(d.snr(t)) < level and (t == 1 or float(d.snr(t - 1)) >= level)
    # SNR < 1 is abar_t < 1/2: the linear schedule crosses early, the cosine one near T / 2.
    assert linear.first_t_snr_below() == 260 and cosine.first_t_snr_below() == 497
    assert float(linear.alpha_bars[260]) < 0.5 <= float(linear.alpha_bars[259])


def test_first_t_snr_below_refuses_unreachable_and_bad_levels():
    short = Diffusion(schedule.linear_betas(10, 1e-4, 0.02))
    with pytest.raises(ValueError, match="never falls below"):
        short.first_t_snr_below(1.0)
    for bad in (0, -1.0, True, "1"):
        with pytest.raises(ValueError, match="level must be a finite number > 0"):
            short.first_t_snr_below(bad)
        with pytest.raises(ValueError, match="level must be a finite number > 0"):
            short.fraction_snr_below(bad)


def test_fraction_snr_below_counts_steps(linear, cosine):
    snr = linear.snrs[1:]
    assert linear.fraction_snr_below(1e-2) == float((snr < 1e-2).sum()) / 1000
    # The chapter's claim: the linear chain spends about a third of its steps below SNR 0.01.
    assert 0.3 < linear.fraction_snr_below(1e-2) < 0.35
    assert cosine.fraction_snr_below(1e-2) < 0.1
    assert linear.fraction_snr_below(1e9) == 1.0 and linear.fraction_snr_below(1e-30) == 0.0
