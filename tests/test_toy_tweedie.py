"""ddpm_lib.toy for chapter 5: the exact denoiser E[x_0 | x_t], the class posterior and the optimal
eps-model of a Gaussian mixture, each against a computation that does not share its formula
(numerical integration and scipy densities in 1-D, Monte Carlo in 2-D); Tweedie's formula between
them; the eps-model driving the library's ancestral sampler to the mixture."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from ddpm_lib import toy

pytestmark = pytest.mark.one_thread

ALPHA_BARS = [0.999, 0.9, 0.5, 0.1, 0.01]


def _one_d() -> toy.GaussianMixture:
    return toy.GaussianMixture([0.2, 0.5, 0.3], [[-1.5], [0.2], [1.1]], [0.3, 0.15, 0.5])


def _two_d() -> toy.GaussianMixture:
    return toy.GaussianMixture(
        [0.3, 0.45, 0.25], [[-0.6, 0.4], [0.5, -0.3], [0.1, 0.7]], [0.2, 0.15, 0.1]
    )


def _quad_posterior_mean(g: toy.GaussianMixture, x_t: float, ab: float) -> float:
    """E[x_0 | x_t] = int x0 q(x0) q(x_t | x0) dx0 / int q(x0) q(x_t | x0) dx0, by scipy.quad."""
    w, m, s = g.weights.numpy(), g.means[:, 0].numpy(), g.stds.numpy()

    def normal_pdf(v, mean, sd):  # written out here, independent of the library
        return np.exp(-0.5 * ((v - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))

    def joint(x0: float) -> float:
        prior = float(np.sum(w * normal_pdf(x0, m, s)))
        return prior * normal_pdf(x_t, math.sqrt(ab) * x0, math.sqrt(1 - ab))

    # The integrand can be narrow (width sqrt(1 - ab) / sqrt(ab)): tell quad where it lives.
    points = sorted({*m.tolist(), x_t / math.sqrt(ab)})
    lo, hi = min(points) - 8.0, max(points) + 8.0
    opts = {"points": points, "limit": 500, "epsabs": 0.0, "epsrel": 1e-11}
    num = integrate.quad(lambda v: v * joint(v), lo, hi, **opts)[0]
    den = integrate.quad(joint, lo, hi, **opts)[0]
    return num / den


def test_posterior_mean_x0_and_tweedie_against_numerical_integration():
    g = _one_d()
    x_t = torch.linspace(-2.5, 2.5, 11, dtype=torch.float64)[:, None]
    worst_mean, worst_tweedie = 0.0, 0.0
    for ab in ALPHA_BARS:
        exact = torch.tensor(
            [_quad_posterior_mean(g, float(v), ab) for v in x_t[:, 0]], dtype=torch.float64
        )
        ours = g.posterior_mean_x0(x_t, ab)[:, 0]
        # Tweedie (Efron 2011): sqrt(ab) E[x0 | x_t] = x_t + (1 - ab) grad log q_t(x_t)
        q_t, h = g.noised(ab), 1e-5
        score = q_t.score(x_t)
        numeric = (q_t.log_prob(x_t + h) - q_t.log_prob(x_t - h)) / (2 * h)
        assert torch.allclose(
            score[:, 0], numeric, rtol=1e-6, atol=1e-6
        )  # the score is the gradient
        tweedie = (x_t + (1 - ab) * score)[:, 0] / math.sqrt(ab)
        worst_mean = max(worst_mean, float((ours - exact).abs().max()))
        worst_tweedie = max(worst_tweedie, float((tweedie - exact).abs().max()))
    print(f"max |E[x0|x_t] - quad| = {worst_mean:.2e}, max |Tweedie - quad| = {worst_tweedie:.2e}")
    assert worst_mean < 1e-9, worst_mean
    assert worst_tweedie < 1e-9, worst_tweedie
    # the check can fail: the prior mean alone (no x_t) is far from the posterior mean
    prior_mean = float((g.weights * g.means[:, 0]).sum())
    assert abs(_quad_posterior_mean(g, 2.0, 0.9) - prior_mean) > 0.5


def test_posterior_mean_x0_limits():
    g = _two_d()
    x = g.sample(50, torch.Generator().manual_seed(1))
    assert torch.allclose(g.posterior_mean_x0(x, 1.0), x, atol=1e-12)  # no noise: x_0 = x_t
    prior_mean = (g.weights[:, None] * g.means).sum(0)
    assert torch.allclose(g.posterior_mean_x0(x, 0.0), prior_mean.expand(50, 2), atol=1e-12)


def test_tweedie_holds_exactly_in_two_dimensions():
    g = _two_d()
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for ab in ALPHA_BARS:
        lhs = math.sqrt(ab) * g.posterior_mean_x0(x, ab)
        rhs = x + (1 - ab) * g.noised(ab).score(x)
        assert torch.allclose(lhs, rhs, atol=1e-12, rtol=0)


def test_class_log_prob_is_bayes_with_scipy_densities():
    g = _two_d()
    x = torch.randn(40, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for ab in (0.95, 0.3):
        comps = np.stack([
            g.weights[k].item() * stats.multivariate_normal.pdf(
                x.numpy(), math.sqrt(ab) * g.means[k].numpy(),
                (ab * g.stds[k].item() ** 2 + 1 - ab) * np.eye(2),
            )
            for k in range(g.K)
        ], axis=1)  # fmt: skip
        expected = np.log(comps / comps.sum(1, keepdims=True))
        ours = g.class_log_prob(x, ab)
        assert ours.shape == (40, g.K) and ours.dtype == torch.float64
        np.testing.assert_allclose(ours.numpy(), expected, atol=1e-10)
    one = _one_d()
    x1 = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
    v = (0.5 * one.stds**2 + 0.5).sqrt().numpy()
    dens = one.weights.numpy() * stats.norm.pdf(x1.numpy(), math.sqrt(0.5) * one.means[:, 0], v)
    np.testing.assert_allclose(
        one.class_log_prob(x1, 0.5).numpy(), np.log(dens / dens.sum(1, keepdims=True)), atol=1e-10
    )


def test_posterior_mean_x0_against_monte_carlo_in_two_dimensions():
    """Draw (x_0, x_t) pairs; in a small ball around a query point the average x_0 and the average
    of E[x_0 | x_t] over the same x_t estimate the same thing, E[x_0 | x_t in the ball]."""
    g, ab, n = _two_d(), 0.5, 400_000
    gen = torch.Generator().manual_seed(4)
    x0 = g.sample(n, gen)
    x_t = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * torch.randn(
        n, 2, generator=gen, dtype=torch.float64
    )
    f = g.posterior_mean_x0(x_t, ab)
    wrong = x_t / math.sqrt(ab)  # the naive inversion, ignoring the prior
    for q in ([[-0.3, 0.3]], [[0.3, -0.1]], [[0.0, 0.5]], [[0.6, 0.2]]):
        inside = (x_t - torch.tensor(q, dtype=torch.float64)).norm(dim=1) < 0.1
        count = int(inside.sum())
        resid = x0[inside] - f[inside]
        se = resid.std(0) / math.sqrt(count)
        z = resid.mean(0).abs() / se
        print(f"ball at {q}: {count} pairs, |z| = {z.tolist()}")
        assert count > 1000 and bool((z < 4.5).all()), (q, count, z)
        assert float((x0[inside] - wrong[inside]).mean(0).abs().max()) > 10 * float(se.max())


def test_mixture_new_methods_refuse_bad_input(linear):
    g = _two_d()
    x = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"alpha_bar must be one number in \[0, 1\]"):
        g.posterior_mean_x0(x, -0.1)
    with pytest.raises(ValueError, match=r"alpha_bar must be one number in \[0, 1\]"):
        g.class_log_prob(x, torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match=r"x_t must have shape \[n, D\] = \[n, 2\]"):
        g.posterior_mean_x0(torch.zeros(3, 1), 0.5)
    with pytest.raises(ValueError, match="stds must be > 0"):
        toy.GaussianMixture([0.5, 0.5], [[0.0], [1.0]], [0.1, -0.1])
    model = g.eps_model(linear)
    with pytest.raises(ValueError, match=r"t must be an integer in \[1, 1000\]"):
        model(x, 0)
    with pytest.raises(ValueError, match=r"labels must be an integer in \[0, 3\]"):
        model(x, 5, labels=4)
    with pytest.raises(ValueError, match=r"labels must have shape \[3\]"):
        model(x, 5, labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="t has 2 entries"):
        model(x, torch.tensor([3, 4]))


def test_eps_model_is_minus_sqrt_one_minus_alpha_bar_times_the_score(linear):
    g = _two_d()
    model = g.eps_model(linear)
    assert model.config.num_classes == g.K
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ts = torch.tensor([1, 10, 100, 400, 700, 1000])
    eps = model(x, ts)
    for i, t in enumerate(ts.tolist()):
        ab = float(linear.alpha_bars[t])
        expected = -math.sqrt(1 - ab) * g.noised(ab).score(x[i : i + 1])
        assert torch.allclose(eps[i : i + 1], expected, atol=1e-12, rtol=0)
        # an int t means the same step for the whole batch
        assert torch.allclose(model(x, t)[i], eps[i], atol=1e-14, rtol=0)
    # with a label: the score of component k alone, N(sqrt(ab) mu_k, (ab s_k^2 + 1 - ab) I)
    ab = float(linear.alpha_bars[300])
    labels = torch.tensor([0, 1, 2, 3, 0, 2])  # 3 = K, the null label: unconditional
    cond = model(x, 300, labels)
    for i, k in enumerate(labels.tolist()):
        if k == g.K:
            comp = g.noised(ab)
        else:
            comp = toy.GaussianMixture([1.0], g.means[k : k + 1], g.stds[k : k + 1]).noised(ab)
        expected = -math.sqrt(1 - ab) * comp.score(x[i : i + 1])
        assert torch.allclose(cond[i : i + 1], expected, atol=1e-12, rtol=0)
    assert model(x.float(), 300).dtype == torch.float32


def test_eps_model_drives_ancestral_sampling_to_the_mixture(linear):
    """The full T = 1000 chain of Algorithm 2 with the exact eps reproduces the mixture."""
    from ddpm_lib import sample

    g, n = _two_d(), 1500
    gen = torch.Generator().manual_seed(6)
    x_T = torch.randn(n, 2, generator=gen, dtype=torch.float64)
    out = sample.ancestral(g.eps_model(linear), linear, x_T=x_T, generator=gen, clip_samples=False)
    assert out.shape == (n, 2) and out.dtype == torch.float64
    p = toy.ks_per_coordinate(out, g)
    print(f"ancestral vs mixture, KS p-values per coordinate: {p}")
    assert min(p) > 1e-3, p
    # the test can fail: as many samples of q_t at t = 100 (slightly noised data) are rejected
    off = g.noised(float(linear.alpha_bars[100])).sample(n, torch.Generator().manual_seed(7))
    assert min(toy.ks_per_coordinate(off, g)) < 1e-3


def test_labelled_eps_model_samples_the_chosen_component(linear):
    from ddpm_lib import sample

    g, k = _two_d(), 1
    gen = torch.Generator().manual_seed(8)
    x_T = torch.randn(500, 2, generator=gen, dtype=torch.float64)
    model = g.eps_model(linear)
    out = sample.ancestral(model, linear, labels=k, x_T=x_T, generator=gen, clip_samples=False)
    assert float((g.class_log_prob(out, 1.0).argmax(1) == k).double().mean()) > 0.99
    comp = toy.GaussianMixture([1.0], g.means[k : k + 1], g.stds[k : k + 1])
    p = toy.ks_per_coordinate(out, comp)
    print(f"labelled ancestral vs component {k}, KS p-values: {p}")
    assert min(p) > 1e-3, p


def test_eps_model_drives_ddim_and_classifier_free_guidance(linear):
    """DDIM (eta = 0, 100 steps) with the exact eps lands on the mixture too; the null label K
    makes guidance scale 0 the unconditional model, exactly."""
    from ddpm_lib import sample

    g, n = _two_d(), 1500
    model = g.eps_model(linear)
    x_T = torch.randn(n, 2, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    out = sample.ddim(model, linear, x_T=x_T, steps=100, threshold="none", clip_samples=False)
    p = toy.ks_per_coordinate(out, g)
    print(f"DDIM (100 steps) vs mixture, KS p-values per coordinate: {p}")
    assert min(p) > 1e-3, p
    kw = {"x_T": x_T[:200], "steps": 20, "threshold": "none", "clip_samples": False}
    plain = sample.ddim(model, linear, **kw)
    null = sample.ddim(model, linear, labels=0, guidance_scale=0.0, **kw)
    assert torch.allclose(plain, null, atol=1e-12, rtol=0)
    guided = sample.ddim(model, linear, labels=2, guidance_scale=3.0, **kw)
    assert float((g.class_log_prob(guided, 1.0).argmax(1) == 2).double().mean()) > 0.99
