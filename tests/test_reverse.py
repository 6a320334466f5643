"""The reverse process and objectives with an oracle model that knows the data point x0."""

import math

import pytest
import torch

from ddpm_lib import Diffusion, bound, sample, schedule

from .conftest import oracle_for


def _data(gen, b=3):
    """Data on the 256-level grid of [-1, 1], float64."""
    u = torch.randint(0, 256, (b, 1, 4, 4), generator=gen)
    return (2 * u / 255 - 1).double()


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_oracle_p_mean_is_posterior_mean(linear, gen, variance):
    x0 = _data(gen)
    model = oracle_for(linear, x0)
    for t in (1, 2, 17, 500, 1000):
        x_t = linear.q_sample(x0, t, generator=gen)
        mean, var = linear.p_mean_variance(model, x_t, t, variance=variance)
        true_mean, true_var = linear.q_posterior(x0, x_t, t)
        assert torch.allclose(mean, true_mean, atol=1e-9)
        expected = linear.betas[t] if variance == "beta" else linear.beta_tildes[t]
        assert float(var) == pytest.approx(float(expected), rel=1e-12, abs=0)
        if variance == "beta_tilde":
            assert float(var) == pytest.approx(float(true_var), rel=1e-12, abs=0)


def test_oracle_vlb_terms(gen):
    d = Diffusion(schedule.linear_betas(200, 1e-4, 0.05))
    x0 = _data(gen)
    model = oracle_for(d, x0)
    small = bound.vlb_terms(d, model, x0, variance="beta_tilde", generator=gen)
    assert small.terms.shape == (3, 200) and small.prior.shape == (3,) and small.total.shape == (3,)
    # Matching means and variances: every L_{t-1}, t >= 2, vanishes.
    assert float(small.terms[:, 1:].abs().max()) < 1e-8
    assert float(small.terms[:, 0].min()) > 0  # L_0 is a real negative log-likelihood
    assert torch.allclose(small.total, small.prior + small.terms.sum(1))
    # With sigma_t^2 = beta_t the means still match, so L_{t-1} is the variance mismatch alone:
    # KL(N(m, bt) || N(m, b)) = (log(b / bt) + bt / b - 1) / 2 nats.
    large = bound.vlb_terms(d, model, x0, variance="beta", generator=gen)
    t = torch.arange(2, 201)
    b, bt = d.betas[t], d.beta_tildes[t]
    expected_bits = 0.5 * (torch.log(b / bt) + bt / b - 1) / math.log(2)
    assert torch.allclose(
        large.terms[:, 1:], expected_bits.expand(3, -1).to(large.terms), rtol=1e-6
    )
    # The prior term is the closed-form KL to N(0, I), averaged over dims.
    ab = d.alpha_bars[200]
    kl = 0.5 * (-1 - torch.log(1 - ab) + (1 - ab) + ab * x0**2)
    assert torch.allclose(small.prior, kl.flatten(1).mean(1) / math.log(2), rtol=1e-9)


def test_oracle_sampling_returns_x0(linear, gen):
    x0 = _data(gen)
    for variance in ("beta", "beta_tilde"):
        out = sample.ancestral(
            oracle_for(linear, x0),
            linear,
            variance=variance,
            generator=gen,
            x_T=torch.randn(x0.shape, dtype=torch.float64, generator=gen),
            clip_samples=False,
        )
        assert out.dtype == torch.float64 and torch.allclose(out, x0, atol=1e-9)


def test_algorithm_2_adds_no_noise_at_t1(linear, gen):
    x0 = _data(gen)
    model = oracle_for(linear, x0)
    x_1 = linear.q_sample(x0, 1, generator=gen)
    mean, _ = linear.p_mean_variance(model, x_1, 1)
    z = torch.randn(x0.shape, dtype=torch.float64, generator=gen)
    assert torch.equal(linear.p_sample(model, x_1, 1, noise=z), mean)
    x_5 = linear.q_sample(x0, 5, generator=gen)
    mean5, var5 = linear.p_mean_variance(model, x_5, 5)
    assert torch.allclose(linear.p_sample(model, x_5, 5, noise=z), mean5 + var5.sqrt() * z)
    # Per-example t: the row at t = 1 gets no noise, the others do.
    t = torch.tensor([1, 5, 5])
    x = torch.stack([x_1[0], x_5[1], x_5[2]])
    out = linear.p_sample(model, x, t, noise=z)
    m, v = linear.p_mean_variance(model, x, t)
    assert torch.equal(out[0], m[0]) and torch.allclose(out[1:], (m + v.sqrt() * z)[1:])


def test_loss_simple_is_zero_for_the_oracle_and_positive_otherwise(linear, gen):
    x0 = _data(gen, b=8)
    oracle = oracle_for(linear, x0)
    assert float(bound.loss_simple(linear, oracle, x0, generator=gen)) < 1e-12
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    noise = torch.randn(x0.shape, dtype=torch.float64, generator=gen)
    per = bound.loss_simple(linear, zero, x0, t=torch.full((8,), 10), noise=noise, reduction="none")
    assert per.shape == (8,) and torch.allclose(per, (noise**2).flatten(1).mean(1))


def test_loss_simple_draws_t_uniformly_from_1_to_T(gen):
    d = Diffusion(schedule.linear_betas(5, 0.1, 0.2))
    seen = []

    def spy(x, t):
        seen.append(t.clone())
        return torch.zeros_like(x)

    bound.loss_simple(d, spy, torch.zeros(20_000, 1), generator=gen)
    counts = torch.bincount(seen[0], minlength=6)
    assert counts[0] == 0 and bool((counts[1:] > 3700).all())


def test_model_returning_wrong_shape_is_a_clear_error(linear):
    with pytest.raises(ValueError, match="must return eps of shape"):
        linear.p_mean_variance(lambda x, t: x[:, :1, :1], torch.zeros(2, 1, 3, 3), 5)
