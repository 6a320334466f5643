"""normal_kl against Monte Carlo; the discretised decoder is a proper distribution over 256 levels."""

import math

import pytest
import torch
from scipy import stats

from ddpm_lib import losses

LEVELS = torch.linspace(-1, 1, 256, dtype=torch.float64)


@pytest.mark.parametrize(
    "m1,v1,m2,v2", [(0.0, 1.0, 0.0, 1.0), (0.3, 0.5, -0.2, 2.0), (1.0, 0.01, 0.0, 1.0)]
)
def test_normal_kl_matches_monte_carlo(m1, v1, m2, v2):
    g = torch.Generator().manual_seed(0)
    n = 2_000_000
    x = m1 + math.sqrt(v1) * torch.randn(n, dtype=torch.float64, generator=g)
    log_ratio = torch.tensor(
        stats.norm.logpdf(x.numpy(), m1, math.sqrt(v1))
        - stats.norm.logpdf(x.numpy(), m2, math.sqrt(v2))
    )
    kl = losses.normal_kl(torch.tensor(m1), math.log(v1), m2, math.log(v2))
    se = float(log_ratio.std()) / math.sqrt(n)
    assert abs(float(kl) - float(log_ratio.mean())) < 5 * se + 1e-12
    assert float(kl) >= 0


def test_normal_kl_broadcasts_and_refuses_mismatch():
    kl = losses.normal_kl(torch.zeros(3, 1), torch.zeros(1, 4), 0.0, 0.0)
    assert kl.shape == (3, 4) and float(kl.abs().max()) == 0
    with pytest.raises(ValueError, match="broadcast"):
        losses.normal_kl(torch.zeros(3), torch.zeros(4), 0.0, 0.0)


@pytest.mark.parametrize(
    "mean,scale", [(0.0, 0.5), (0.37, 0.01), (-0.99, 0.003), (1.4, 0.2), (0.0, 1e-4), (0.2, 30.0)]
)
def test_decoder_probabilities_sum_to_one(mean, scale):
    logp = losses.discretized_gaussian_log_likelihood(
        LEVELS,
        torch.tensor(mean, dtype=torch.float64),
        torch.tensor(math.log(scale), dtype=torch.float64),
    )
    assert torch.isfinite(logp).all()
    assert float(logp.exp().sum()) == pytest.approx(1.0, abs=1e-9)


def test_decoder_matches_scipy_bins():
    mean, scale = 0.1, 0.05
    logp = losses.discretized_gaussian_log_likelihood(
        LEVELS, torch.tensor(mean), torch.tensor(math.log(scale))
    )
    edges = torch.cat(
        [torch.tensor([-math.inf]), (LEVELS[:-1] + LEVELS[1:]) / 2, torch.tensor([math.inf])]
    )
    cdf = stats.norm.cdf(edges.numpy(), mean, scale)
    expected = torch.tensor(cdf[1:] - cdf[:-1])
    mask = expected > 1e-200
    assert torch.allclose(logp.exp()[mask], expected[mask], rtol=1e-6, atol=1e-15)


def test_decoder_is_accurate_far_in_the_tail():
    """A narrow Gaussian far from the bin: the log-probability stays finite and matches scipy."""
    x = torch.tensor([0.5], dtype=torch.float64)
    logp = losses.discretized_gaussian_log_likelihood(
        x, torch.tensor(0.0), torch.tensor(math.log(0.05))
    )
    lo, hi = (0.5 - 1 / 255) / 0.05, (0.5 + 1 / 255) / 0.05
    expected = stats.norm.logsf(lo) + math.log(
        -math.expm1(stats.norm.logsf(hi) - stats.norm.logsf(lo))
    )
    assert float(logp) == pytest.approx(expected, rel=1e-8)


def test_decoder_refuses_data_outside_range():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        losses.discretized_gaussian_log_likelihood(
            torch.tensor([1.5]), torch.tensor(0.0), torch.tensor(0.0)
        )
