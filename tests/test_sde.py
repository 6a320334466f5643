"""ddpm_lib.sde / vpsde and the continuous samplers, checked on diffusions solvable exactly:
the continuous schedule against the discrete one and against Song et al.'s closed form, the
forward SDE against its Gaussian marginal, and (with the exact ε of a Gaussian mixture) the
probability-flow ODE and the reverse SDE against the mixture, encode/decode round trips and the
ODE log-likelihood against the exact log-density."""

import math

import pytest
import torch
from scipy import stats

from ddpm_lib import Diffusion, sample, toy
from ddpm_lib.models import CallCounter
from ddpm_lib.schedule import cosine_betas, linear_betas
from ddpm_lib.sde import VPSDE, ContinuousSchedule, encode, log_likelihood

pytestmark = [pytest.mark.one_thread, pytest.mark.schedule(1000, 1e-4, 0.02)]


def _song_schedule(T: int) -> Diffusion:
    """Song et al.'s VP-SDE, beta(tau) = 0.1 + 19.9 tau, discretised as beta_t = beta(t/T)/T."""
    t = torch.arange(T + 1, dtype=torch.float64)
    betas = (0.1 + 19.9 * t / T) / T
    betas[0] = 0.0
    return Diffusion(betas)


# ----------------------------------------------------------------------- the schedule
@pytest.mark.parametrize("betas", [linear_betas(1000), cosine_betas(200), linear_betas(10)])
def test_continuous_alpha_bar_is_exact_at_every_step(betas):
    d = Diffusion(betas)
    s = VPSDE(d)
    steps = torch.arange(d.T + 1, dtype=torch.float64)
    assert torch.allclose(s.alpha_bar(steps / d.T), d.alpha_bars, rtol=1e-12, atol=0)
    assert torch.allclose(
        ContinuousSchedule(d.alpha_bars).alpha_bar(steps), d.alpha_bars, rtol=1e-12
    )
    # between two steps it lies strictly between their values (a monotone interpolation)
    mid = ContinuousSchedule(d.alpha_bars).alpha_bar(steps[:-1] + 0.5)
    assert bool((mid < d.alpha_bars[:-1]).all() and (mid > d.alpha_bars[1:]).all())


def test_beta_is_minus_the_derivative_of_log_alpha_bar_and_close_to_T_beta_t(d):
    s = VPSDE(d)
    tau = torch.tensor([0.1234, 0.5, 0.77777, 0.9991], dtype=torch.float64)
    h = 1e-7
    fd = -(s.alpha_bar(tau + h).log() - s.alpha_bar(tau - h).log()) / (2 * h)
    assert torch.allclose(s.beta(tau), fd, rtol=1e-5)  # continuous: also at a step (tau = 0.5)
    # over each step it integrates to -log alpha_t (Simpson's rule on the cubic's derivative)
    k = torch.arange(1, d.T + 1)
    lo, hi = (k - 1) / d.T, k / d.T
    simpson = (s.beta(lo) + 4 * s.beta((lo + hi) / 2) + s.beta(hi)) / (6 * d.T)
    assert torch.allclose(simpson, -d.alphas[1:].log(), rtol=1e-9)
    # and it stays within 2 % of the familiar T beta_t in the middle of each step
    assert torch.allclose(s.beta((lo + hi) / 2), d.T * d.betas[1:], rtol=0.02)
    assert bool((s.beta(torch.linspace(0, 1, 5001, dtype=torch.float64)) > 0).all())


def test_continuous_alpha_bar_matches_song_et_al_to_order_one_over_T():
    """The discrete chain with beta_t = beta(t/T)/T against Song et al.'s closed form
    alpha_bar(tau) = exp(-(0.1 tau + 19.9 tau^2 / 2)): the gap times T stays bounded (measured
    1.93 at T = 100, 1000 and 10000), so the gap is O(1/T)."""
    tau = torch.linspace(0, 1, 2001, dtype=torch.float64)
    closed = torch.exp(-(0.1 * tau + 0.5 * 19.9 * tau**2))
    gaps = []
    for T in (100, 1000, 10_000):
        gaps.append(float((VPSDE(_song_schedule(T)).alpha_bar(tau) - closed).abs().max()))
        assert gaps[-1] * T < 2.5, (T, gaps[-1])
    assert gaps[0] > 9 * gaps[1] > 81 * gaps[2]  # it really shrinks like 1/T


def test_forward_sde_reaches_the_closed_form_marginal(d):
    s = VPSDE(d)
    n, gen = 4000, torch.Generator().manual_seed(0)
    x0 = torch.full((n, 1), 0.8, dtype=torch.float64)
    x = s.simulate(x0, tau_end=0.3, steps=300, generator=gen)
    mean, std = s.marginal(x0[:1], 0.3)
    z = (x[:, 0] - float(mean)) / float(std)
    assert stats.kstest(z.numpy(), "norm").pvalue > 1e-3
    assert abs(float(z.mean())) < 4 / math.sqrt(n)
    # drift and g are the SDE's: f = -beta x / 2, g^2 = beta
    assert torch.allclose(s.drift(x0[:2], 0.3), -0.5 * s.beta(0.3) * x0[:2])
    assert torch.allclose(s.g(0.3) ** 2, s.beta(0.3))


# --------------------------------------------------------------- the exact toy's time
def test_mixture_eps_at_continuous_times_uses_the_same_alpha_bar(d):
    g = toy.two_d_mixture()
    m = g.eps_model(d)
    x = g.sample(5, torch.Generator().manual_seed(1))
    assert torch.allclose(m(x, 300.0), m(x, 300), rtol=0, atol=1e-15)
    ab = float(
        ContinuousSchedule(d.alpha_bars).alpha_bar(torch.tensor(300.25, dtype=torch.float64))
    )
    want = -math.sqrt(1 - ab) * g.noised(ab).score(x)
    assert torch.allclose(m(x, torch.full((5,), 300.25, dtype=torch.float64)), want, atol=1e-12)
    with pytest.raises(ValueError, match="t"):
        m(x, 0.0)


# ------------------------------------------------------------------------ the samplers
@pytest.mark.parametrize("mixture", [toy.three_bumps, toy.two_d_mixture])
def test_probability_flow_with_the_exact_eps_samples_the_mixture(d, mixture):
    g = mixture()
    x_T = torch.randn(1500, g.D, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    counted = CallCounter(g.eps_model(d))
    out = sample.probability_flow(counted, d, x_T=x_T, clip_samples=False)
    assert out.shape == x_T.shape and out.dtype == torch.float64
    assert 20 < counted.calls < 1000
    assert min(toy.ks_per_coordinate(out, g)) > 1e-3


@pytest.mark.parametrize("mixture", [toy.three_bumps, toy.two_d_mixture])
def test_reverse_sde_with_the_exact_eps_samples_the_mixture(d, mixture):
    g = mixture()
    gen = torch.Generator().manual_seed(3)
    x_T = torch.randn(1500, g.D, generator=gen, dtype=torch.float64)
    out = sample.reverse_sde(g.eps_model(d), d, x_T=x_T, steps=1000, generator=gen,
                             clip_samples=False)  # fmt: skip
    assert min(toy.ks_per_coordinate(out, g)) > 1e-3


def test_reverse_sde_with_too_few_steps_is_measurably_off(d):
    """The two-sample test has power: 5 Euler-Maruyama steps cannot reproduce narrow bumps."""
    g = toy.three_bumps()
    gen = torch.Generator().manual_seed(4)
    out = sample.reverse_sde(g.eps_model(d), d, n=1500, shape=(1,), steps=5, generator=gen,
                             clip_samples=False)  # fmt: skip
    assert min(toy.ks_per_coordinate(out.double(), g)) < 1e-6


def test_encode_then_decode_round_trips(d):
    g = toy.two_d_mixture()
    m = g.eps_model(d)
    x0 = g.sample(100, torch.Generator().manual_seed(5))
    code = encode(m, d, x0)
    back = sample.probability_flow(m, d, x_T=code.x, denoise=False, clip_samples=False)
    assert float((back - x0).abs().max()) < 1e-3  # measured 1e-4 (tolerances 1e-5)
    # the code is Gaussian-like: x(1) has about unit spread, unlike the data
    assert 0.7 < float(code.x.std()) < 1.3 and float(x0.std()) < 0.6


def test_log_likelihood_matches_the_exact_log_density(d):
    g = toy.two_d_mixture()
    m = g.eps_model(d)
    x0 = g.sample(12, torch.Generator().manual_seed(6))
    ll = log_likelihood(m, d, x0)
    ab = float(VPSDE(d).alpha_bar(1e-3))
    exact = g.noised(ab).log_prob(x0)  # the density of x(tau_start), where the flow starts
    assert float((ll.log_prob - exact).abs().max()) < 0.05
    assert torch.allclose(ll.log_prob, ll.prior + ll.delta)
    assert torch.allclose(ll.bpd, -ll.log_prob / (2 * math.log(2)))
    # a wrong model (the score of the wrong mixture) is visibly wrong
    wrong = toy.GaussianMixture([1.0], [[0.0, 0.0]], [0.5]).eps_model(d)
    assert float((log_likelihood(wrong, d, x0).log_prob - exact).abs().max()) > 0.5


def test_hutchinson_trace_is_unbiased(d):
    g = toy.three_bumps()
    m = g.eps_model(d)
    x0 = g.sample(6, torch.Generator().manual_seed(7))
    exact = log_likelihood(m, d, x0, trace="exact").log_prob
    est = log_likelihood(m, d, x0, trace="hutchinson", n_probes=8,
                         generator=torch.Generator().manual_seed(8)).log_prob  # fmt: skip
    # 1-D Rademacher probes square to one: Hutchinson is exact in one dimension
    assert torch.allclose(est, exact, atol=1e-6)


def test_hutchinson_trace_averages_to_the_exact_one_in_2d(d):
    g = toy.two_d_mixture()
    m = g.eps_model(d)
    x0 = g.sample(8, torch.Generator().manual_seed(10))
    exact = log_likelihood(m, d, x0, trace="exact").log_prob
    one = log_likelihood(m, d, x0, trace="hutchinson", generator=torch.Generator().manual_seed(1))
    many = log_likelihood(m, d, x0, trace="hutchinson", n_probes=64,
                          generator=torch.Generator().manual_seed(2))  # fmt: skip
    err_one = float((one.log_prob - exact).abs().mean())
    err_many = float((many.log_prob - exact).abs().mean())
    assert err_many < 0.05 and err_many < err_one / 2, (err_one, err_many)


def test_conditional_flow_lands_in_the_chosen_component(d):
    g = toy.two_d_mixture()
    m = g.eps_model(d)
    x_T = torch.randn(200, 2, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    for k in range(g.K):
        out = sample.probability_flow(m, d, x_T=x_T, labels=k, clip_samples=False)
        # the class-conditional flow samples component k: its mean and spread
        assert torch.allclose(out.mean(0), g.means[k], atol=4 * float(g.stds[k]) / 200**0.5 + 0.01)
        assert abs(float(out.std(0).mean()) - float(g.stds[k])) < 0.2 * float(g.stds[k])


def test_the_unet_runs_in_every_continuous_sampler():
    """The image path: a small random U-Net (T = 20) through both samplers, encode and the
    Hutchinson likelihood; shapes, dtypes, finite values and the bits/dim convention."""
    from ddpm_lib.config import get_config
    from ddpm_lib.models import UNet

    torch.manual_seed(0)
    config = get_config("tiny", T=20)
    net = UNet(config).eval()
    d20 = Diffusion(linear_betas(20))
    gen = torch.Generator().manual_seed(12)
    x = sample.reverse_sde(net, d20, n=2, steps=10, generator=gen)
    assert x.shape == (2, 1, 28, 28) and bool(torch.isfinite(x).all())
    counted = CallCounter(net)
    flow = sample.probability_flow(counted, d20, n=2, generator=gen, rtol=1e-3, atol=1e-3)
    assert flow.shape == (2, 1, 28, 28) and counted.calls > 2
    x0 = 2 * torch.rand(2, 1, 28, 28, generator=gen) - 1
    code = encode(net, d20, x0, rtol=1e-3, atol=1e-3)
    assert code.x.shape == x0.shape and bool(torch.isfinite(code.x).all())
    ll = log_likelihood(net, d20, x0, rtol=1e-3, atol=1e-3, generator=gen, bin_width=2 / 255)
    assert ll.log_prob.shape == (2,) and bool(torch.isfinite(ll.bpd).all())
    assert torch.allclose(ll.bpd, -(ll.log_prob / 784 + math.log(2 / 255)) / math.log(2))


def test_bits_per_dim_with_a_bin_width(d):
    g = toy.three_bumps()
    x0 = g.sample(3, torch.Generator().manual_seed(9))
    ll = log_likelihood(g.eps_model(d), d, x0, bin_width=2 / 255)
    assert torch.allclose(ll.bpd, -(ll.log_prob + math.log(2 / 255)) / math.log(2))


# ----------------------------------------------------------------------- bad input
def test_bad_arguments_are_refused_with_their_name(d):
    g = toy.three_bumps()
    m = g.eps_model(d)
    x = torch.zeros(2, 1, dtype=torch.float64)
    s = VPSDE(d)
    for call, name in [
        (lambda: s.alpha_bar(1.5), "tau"),
        (lambda: s.beta(-0.1), "tau"),
        (lambda: sample.reverse_sde(m, d, x_T=x, steps=0), "steps"),
        (lambda: sample.probability_flow(m, d, x_T=x, method="Euler"), "method"),
        (lambda: sample.probability_flow(m, d, x_T=x, rtol=0), "rtol"),
        (lambda: sample.probability_flow(m, d, x_T=x, tau_end=0.0), "tau_end"),
        (lambda: encode(m, d, x, tau_start=1.0), "tau_start"),
        (lambda: log_likelihood(m, d, x, trace="diagonal"), "trace"),
        (lambda: log_likelihood(m, d, x, n_probes=0), "n_probes"),
        (lambda: log_likelihood(m, d, x, bin_width=-1.0), "bin_width"),
        (lambda: s.simulate(x, steps=0), "steps"),
    ]:
        with pytest.raises(ValueError, match=name):
            call()
