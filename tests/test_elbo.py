"""The bound measured (chapter 4): every L_{t-1} is lambda_t times its eps-error plus C_t (on the
shipped model and on a random U-Net), vlb_terms at chosen steps, with a variance tensor and the
Gaussian decoder, the unbiased estimator against the exact sum, and the simple loss per t-bucket."""

import math

import pytest
import torch
from scipy import stats

from ddpm_lib import Diffusion, bound, schedule
from ddpm_lib.bound import estimators
from ddpm_lib.config import get_config
from ddpm_lib.models import UNet

from .conftest import oracle_for

LN2 = math.log(2)


def _grid_data(gen, shape=(4, 1, 28, 28)):
    """Data on the 256-level grid of [-1, 1] (what the discretised decoder models)."""
    return 2 * torch.randint(0, 256, shape, generator=gen).float() / 255 - 1


@pytest.fixture(scope="module")
def tiny_unet():
    """A random tiny U-Net for T = 20 whose output depends on its input (the zero-initialised
    output convolution is replaced by random weights)."""
    config = get_config("tiny", T=20)
    torch.manual_seed(0)
    model = UNet(config).eval()
    with torch.no_grad():
        model.conv_out.weight.normal_(0.0, 0.1)
        model.conv_out.bias.normal_(0.0, 0.1)
    return model, config.diffusion()


def _check_eps_weights(model, d, x0, ts, variance, gen):
    noise = torch.randn(len(ts), *x0.shape, generator=gen)
    r = bound.vlb_terms(d, model, x0, variance=variance, ts=ts, noise=noise)
    w = bound.eps_weights(d, variance)
    for k, t in enumerate(ts):
        # the eps-error, measured here with its own model call
        x_t = d.q_sample(x0, t, noise=noise[k])
        with torch.no_grad():
            err = ((noise[k] - model(x_t, torch.full((x0.shape[0],), t))) ** 2).flatten(1)
        assert torch.allclose(r.eps_mse[:, k], err.mean(1).double(), rtol=1e-5, atol=1e-7)
        predicted = (w.lambdas[t] * r.eps_mse[:, k] + w.constants[t]) / LN2
        assert torch.allclose(r.terms[:, k], predicted, rtol=1e-9, atol=1e-12), (variance, t)
    return r


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_each_term_is_lambda_times_eps_error_on_the_shipped_model(shipped, variance):
    model, d = shipped
    gen = torch.Generator().manual_seed(0)
    x0 = _grid_data(gen, (3, 1, 28, 28))
    r = _check_eps_weights(model, d, x0, [2, 10, 100, 500, 1000], variance, gen)
    assert float(r.terms[:, 0].min()) > 0.01  # a real, not a vanishing, term at t = 2


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_each_term_is_lambda_times_eps_error_on_a_random_unet(tiny_unet, variance):
    model, d = tiny_unet
    gen = torch.Generator().manual_seed(1)
    _check_eps_weights(model, d, _grid_data(gen), [2, 3, 11, 20], variance, gen)


def test_gaussian_decoder_is_lambda_1_times_eps_error_plus_its_constant(tiny_unet):
    model, d = tiny_unet
    gen = torch.Generator().manual_seed(2)
    x0 = torch.randn(4, 1, 28, 28, generator=gen)  # continuous data, outside [-1, 1] too
    noise = torch.randn(1, *x0.shape, generator=gen)
    for variance in ("beta", "beta_tilde"):
        r = bound.vlb_terms(d, model, x0, variance, noise, ts=[1], decoder="gaussian")
        w = bound.eps_weights(d, variance)
        expected = (w.lambdas[1] * r.eps_mse[:, 0] + w.constants[1]) / LN2
        assert torch.allclose(r.terms[:, 0], expected, rtol=1e-9)
        # and the plain density, with scipy: -log N(x0; mu_theta(x_1, 1), sigma_1^2)
        x_1 = d.q_sample(x0, 1, noise=noise[0])
        mean, _ = d.p_mean_variance(model, x_1, 1)
        var = float(bound.reverse_variances(d, variance)[1])
        nll = -stats.norm.logpdf(
            x0.double().numpy(), mean.detach().double().numpy(), math.sqrt(var)
        )
        assert torch.allclose(r.terms[:, 0], torch.from_numpy(nll).flatten(1).mean(1) / LN2,
                              rtol=1e-5)  # fmt: skip


def test_eps_weights_values(linear):
    w_b, w_bt = bound.eps_weights(linear, "beta"), bound.eps_weights(linear, "beta_tilde")
    b, a, ab, bt = (float(v[300]) for v in (linear.betas, linear.alphas, linear.alpha_bars,
                                            linear.beta_tildes))  # fmt: skip
    assert float(w_b.lambdas[300]) == pytest.approx(b / (2 * a * (1 - ab)), rel=1e-12)
    assert float(w_bt.lambdas[300]) == pytest.approx(b**2 / (2 * bt * a * (1 - ab)), rel=1e-12)
    assert float(w_b.constants[300]) == pytest.approx(0.5 * (math.log(b / bt) + bt / b - 1))
    assert torch.all(w_bt.constants[2:].abs() < 1e-12)  # sigma^2 = beta_tilde: no variance gap
    assert torch.all(w_b.constants[2:] > 0)
    assert math.isnan(w_b.lambdas[0]) and math.isnan(w_b.constants[0])
    # lambda_2 is 27x (beta) and 59x (beta_tilde) lambda_T: L_simple, with every weight 1, puts
    # relatively more weight on large t than the bound does
    assert float(w_b.lambdas[2] / w_b.lambdas[1000]) > 25
    assert float(w_bt.lambdas[2] / w_bt.lambdas[1000]) > 50


def test_vlb_terms_at_chosen_steps_match_the_full_run(tiny_unet):
    model, d = tiny_unet
    gen = torch.Generator().manual_seed(3)
    x0 = _grid_data(gen, (2, 1, 28, 28))
    noise = torch.randn(d.T, *x0.shape, generator=gen)
    full = bound.vlb_terms(d, model, x0, noise=noise)
    assert full.steps.tolist() == list(range(1, 21)) and full.terms.shape == (2, 20)
    assert torch.allclose(full.total, full.prior + full.terms.sum(1))
    ts = [1, 5, 20]
    part = bound.vlb_terms(d, model, x0, noise=noise[[t - 1 for t in ts]], ts=ts)
    assert part.steps.tolist() == ts and part.terms.shape == (2, 3)
    assert torch.allclose(part.terms, full.terms[:, [t - 1 for t in ts]], rtol=1e-12)
    assert torch.isnan(part.total).all()
    with pytest.raises(ValueError, match="strictly increasing"):
        bound.vlb_terms(d, model, x0, ts=[5, 2])
    with pytest.raises(ValueError, match=r"in \[1, 20\], got 21"):
        bound.vlb_terms(d, model, x0, ts=[21])
    with pytest.raises(ValueError, match=r"noise must have shape \[3, 2, 1, 28, 28\]"):
        bound.vlb_terms(d, model, x0, ts=ts, noise=noise)


def test_variance_tensor_equals_the_named_variances(gen):
    d = Diffusion(schedule.linear_betas(30, 1e-3, 0.2))
    x0 = _grid_data(gen, (3, 1, 2, 2)).double()
    model = lambda x, t: 0.3 * x  # noqa: E731
    noise = torch.randn(30, *x0.shape, generator=gen, dtype=torch.float64)
    for name in ("beta", "beta_tilde"):
        by_name = bound.vlb_terms(d, model, x0, name, noise)
        as_tensor = bound.reverse_variances(d, name)
        by_tensor = bound.vlb_terms(d, model, x0, as_tensor, noise)
        assert torch.equal(by_name.terms, by_tensor.terms)
    assert torch.equal(bound.reverse_variances(d, "beta")[1:], d.betas[1:])
    sig = bound.reverse_variances(d, "beta_tilde")
    assert float(sig[1]) == float(d.beta_tildes[2]) and torch.equal(sig[2:], d.beta_tildes[2:])
    # a larger variance at one step changes that step's term only
    bigger = d.betas.clone()
    bigger[7] *= 4
    changed = bound.vlb_terms(d, model, x0, bigger, noise).terms
    base = bound.vlb_terms(d, model, x0, "beta", noise).terms
    assert torch.equal((changed != base).any(0).nonzero().flatten(), torch.tensor([6]))
    with pytest.raises(ValueError, match=r"tensor of T \+ 1 = 31 variances"):
        bound.vlb_terms(d, model, x0, d.betas[1:])
    zero = d.betas.clone()
    zero[4] = 0
    with pytest.raises(ValueError, match=r"variance\[4\] = 0.0"):
        bound.reverse_variances(d, zero)
    with pytest.raises(ValueError, match=r"variance must be one of \('beta', 'beta_tilde'\)"):
        bound.reverse_variances(d, "large")


def test_discretized_decoder_refuses_continuous_data(gen):
    d = Diffusion(schedule.linear_betas(5, 1e-3, 0.2))
    x0 = 3 * torch.ones(2, 1)
    with pytest.raises(ValueError, match="decoder='gaussian' for continuous data"):
        bound.vlb_terms(d, lambda x, t: 0 * x, x0)
    with pytest.raises(ValueError, match="decoder must be one of"):
        bound.vlb_terms(d, lambda x, t: 0 * x, x0, decoder="logistic")


def _toy_model(x, t):
    """A cheap eps-model whose error depends on x_t and t in a non-trivial way."""
    return torch.tanh(2 * x) * (t.to(x.dtype) / 20).reshape(-1, *[1] * (x.dim() - 1))


@pytest.mark.parametrize("strata", ["log", "even", "none"])
def test_vlb_estimate_is_unbiased_for_the_exact_sum(strata):
    """T = 20: the full sum of every term is computable. Its mean over several noise draws and the
    estimator's mean (5 of 19 middle terms per example) agree within their intervals, and the
    (T - 1) scaling matters by far more than those intervals."""
    d = Diffusion(schedule.linear_betas(20, 1e-3, 0.3))
    gen = torch.Generator().manual_seed(4)
    x0 = _grid_data(gen, (400, 1, 4, 4)).double()
    full = torch.stack([bound.vlb_terms(d, _toy_model, x0, generator=gen).total
                        for _ in range(4)]).mean(0)  # fmt: skip
    exact, exact_se = float(full.mean()), float(full.std() / math.sqrt(400))
    est = bound.vlb_estimate(d, _toy_model, x0, n_t=5, generator=gen, strata=strata)
    assert est.n == 400 and est.values.shape == (400,)
    assert est.ci_low < est.mean < est.ci_high
    assert est.ci_high - est.ci_low == pytest.approx(2 * 1.959964 * est.stderr, rel=1e-6)
    both = math.hypot(est.stderr, exact_se)
    assert abs(est.mean - exact) < 4 * both, (est.mean, exact, both)
    # without the weights m_k (summing to T - 1) the middle part would shrink to 5/19 of itself
    middle = est.mean - float(est.prior.mean() + est.decoder.mean())
    assert middle * (1 - 5 / 19) > 10 * both
    ref = bound.vlb_terms(d, _toy_model, x0[:4], ts=[1], generator=gen)
    assert torch.allclose(est.prior[:4], ref.prior)  # L_T is vlb_terms' (L_0 is random)


def test_vlb_estimate_on_a_random_unet(tiny_unet):
    model, d = tiny_unet
    gen = torch.Generator().manual_seed(4)
    x0 = _grid_data(gen, (8, 1, 28, 28))
    full = bound.vlb_terms(d, model, x0, generator=gen).total
    est = bound.vlb_estimate(d, model, x0, n_t=4, generator=gen)
    both = math.hypot(est.stderr, float(full.std()) / math.sqrt(8))
    assert abs(est.mean - float(full.mean())) < 4 * both


def test_vlb_estimate_is_reproducible_and_checks_its_input():
    d, model = Diffusion(schedule.linear_betas(20, 1e-3, 0.3)), _toy_model
    x0 = _grid_data(torch.Generator().manual_seed(5), (3, 1, 4, 4))
    a, b = (bound.vlb_estimate(d, model, x0, n_t=3, generator=torch.Generator().manual_seed(9))
            for _ in range(2))  # fmt: skip
    assert torch.equal(a.values, b.values)
    noise = torch.randn(4, *x0.shape)
    c, e = (bound.vlb_estimate(d, model, x0, n_t=3, noise=noise, batch_size=k,
                              generator=torch.Generator().manual_seed(1)) for k in (1, 3))  # fmt: skip
    assert torch.allclose(c.values, e.values, rtol=1e-6)  # batching changes nothing
    with pytest.raises(ValueError, match=r"n_t must be an int in \[1, 19\]"):
        bound.vlb_estimate(d, model, x0, n_t=20)
    with pytest.raises(ValueError, match="at least 2 examples"):
        bound.vlb_estimate(d, model, x0[:1])
    with pytest.raises(ValueError, match=r"noise must have shape \[4, 3, 1, 4, 4\]"):
        bound.vlb_estimate(d, model, x0, n_t=3, noise=noise[:3])
    with pytest.raises(ValueError, match="strata must be one of"):
        bound.vlb_estimate(d, model, x0, strata="random")


def test_strata_cover_every_middle_step_once():
    for T, n_t in ((1000, 10), (20, 19), (20, 5), (3, 2), (2, 1)):
        for strata in ("log", "even"):
            lo, hi, w = estimators._strata(T, n_t, strata)
            assert lo[0] == 2 and hi[-1] == T and torch.all(lo[1:] == hi[:-1] + 1)
            assert torch.all(hi >= lo) and float(w.sum()) == T - 1 and len(lo) == n_t


def test_loss_by_t_bucket(gen):
    d = Diffusion(schedule.linear_betas(100, 1e-3, 0.05))
    x0 = torch.rand(64, 1, 3, 3, generator=gen, dtype=torch.float64) * 2 - 1
    oracle = oracle_for(d, x0)
    # an error that grows with t, known exactly: eps_theta = eps + t / T
    model = lambda x, t: oracle(x, t) + (t.double() / 100).reshape(-1, 1, 1, 1)  # noqa: E731
    r = bound.loss_by_t_bucket(d, model, x0, n_buckets=4, generator=gen)
    assert r.t_lo.tolist() == [1, 26, 51, 76] and r.t_hi.tolist() == [25, 50, 75, 100]
    assert torch.all((r.t >= r.t_lo[:, None]) & (r.t <= r.t_hi[:, None]))
    assert torch.allclose(r.per_example, (r.t.double() / 100) ** 2, rtol=1e-6)
    assert torch.allclose(r.mse, r.per_example.mean(1)) and torch.all(torch.diff(r.mse) > 0)
    again = bound.loss_by_t_bucket(d, model, x0, 4, torch.Generator().manual_seed(1234))
    first = bound.loss_by_t_bucket(d, model, x0, 4, torch.Generator().manual_seed(1234))
    assert torch.equal(again.t, first.t) and torch.equal(again.mse, first.mse)
    # a model that predicts no noise at all: the error is ||eps||^2 / dims, mean 1 in every bucket
    zero = bound.loss_by_t_bucket(d, lambda x, t: 0 * x, x0, 5, gen)
    assert torch.all((zero.mse - 1).abs() < 4 * zero.stderr + 1e-3)
    with pytest.raises(ValueError, match=r"n_buckets must be an int in \[1, 100\]"):
        bound.loss_by_t_bucket(d, model, x0, 0)


def test_vlb_estimates_share_the_draws_of_one_estimate():
    d = Diffusion(schedule.linear_betas(20, 1e-3, 0.3))
    x0 = _grid_data(torch.Generator().manual_seed(6), (50, 1, 4, 4)).double()
    both = bound.vlb_estimates(d, _toy_model, x0, ("beta", d.beta_tildes_clipped), n_t=4,
                              generator=torch.Generator().manual_seed(2))  # fmt: skip
    for est, variance in zip(both, ("beta", "beta_tilde"), strict=True):
        one = bound.vlb_estimate(d, _toy_model, x0, 4, variance,
                                torch.Generator().manual_seed(2))  # fmt: skip
        assert torch.equal(est.values, one.values) and est.mean == one.mean
    with pytest.raises(ValueError, match="variances must be a non-empty list"):
        bound.vlb_estimates(d, _toy_model, x0, "beta")
