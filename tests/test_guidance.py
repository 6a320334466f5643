"""Classifier guidance on the exact toy: the gradient, the guided prediction, what the samplers
draw at γ = 1 (the exact conditional p(x | y)) and at γ = 3 (not the tilted density
p(x) p(y | x)^3 / Z, which a Langevin corrector with the guided score does reach); the guidance
arguments' errors."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from ddpm_lib import sample, schedule, toy
from ddpm_lib.diffusion import Diffusion
from ddpm_lib.models.classifier import NoisyClassifier

LABEL = 0


@pytest.fixture(scope="module")
def problem():
    d = Diffusion(schedule.linear_betas(1000))
    g = toy.two_d_mixture()
    return d, g, g.eps_model(d), toy.MixtureClassifier(g, d)


def _component(g: toy.GaussianMixture, k: int) -> toy.GaussianMixture:
    return toy.GaussianMixture([1.0], g.means[k : k + 1], g.stds[k : k + 1])


def _x_T(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def test_classifier_gradient_matches_a_central_difference(problem):
    d, g, _, clf = problem
    x = _x_T(6, 0) * 0.5
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    for t in (1, 200, 700):
        grad = sample.classifier_gradient(clf, x, t, labels)
        h = 1e-6
        for j in range(2):
            e = torch.zeros_like(x)
            e[:, j] = h
            up = clf(x + e, t).gather(1, labels[:, None]).squeeze(1)
            down = clf(x - e, t).gather(1, labels[:, None]).squeeze(1)
            assert torch.allclose(grad[:, j], (up - down) / (2 * h), atol=1e-7, rtol=1e-6)


def test_classifier_gradient_of_the_network_matches_a_directional_difference():
    clf = NoisyClassifier().double().eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # as the samplers call it
        for layer in clf.modules():
            if isinstance(layer, torch.nn.Linear) and layer.out_features > 64:
                layer.weight.normal_(0, 0.05, generator=gen)  # FiLM is zero at init: wake it up
        x = torch.randn(3, 1, 28, 28, dtype=torch.float64, generator=gen)
        v = torch.randn(3, 1, 28, 28, dtype=torch.float64, generator=gen)
        labels = torch.tensor([2, 5, 7])
        grad = sample.classifier_gradient(clf, x, 300, labels)
        h = 1e-6
        up, down = clf.log_prob(x + h * v, 300, labels), clf.log_prob(x - h * v, 300, labels)
    directional = (grad * v).flatten(1).sum(1)
    assert torch.allclose(directional, (up - down) / (2 * h), rtol=1e-6, atol=1e-8)


def test_guided_eps_at_gamma_one_is_the_conditional_models(problem):
    d, g, eps_model, clf = problem
    x = _x_T(50, 2)
    for t in (1, 10, 300, 1000):
        tt = torch.full((50,), t)
        labels = torch.arange(50) % 4
        sigma = float(1 - d.alpha_bars[t]) ** 0.5
        guided = eps_model(x, tt) - sigma * sample.classifier_gradient(clf, x, tt, labels)
        assert torch.allclose(guided, eps_model(x, tt, labels), atol=1e-12)


def _guided(name: str, problem, gamma: float, n: int = 2000, seed: int = 3) -> torch.Tensor:
    d, g, eps_model, clf = problem
    kw = dict(
        x_T=_x_T(n, seed),
        labels=LABEL,
        guidance_scale=0.0,  # the null label: MixtureEps is then the unconditional model
        classifier=clf,
        classifier_scale=gamma,
        clip_samples=False,
    )
    gen = torch.Generator().manual_seed(seed + 1)
    if name == "ddim":
        return sample.ddim(eps_model, d, steps=100, threshold="none", **kw)
    if name == "ancestral":
        return sample.ancestral(eps_model, d, generator=gen, **kw)
    if name == "reverse_sde":
        return sample.reverse_sde(eps_model, d, steps=500, generator=gen, **kw)
    return sample.probability_flow(eps_model, d, **kw)


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "name",
    [
        "ddim",
        pytest.param("ancestral", marks=SLOW),
        pytest.param("reverse_sde", marks=SLOW),
        "probability_flow",
    ],
)
def test_gamma_one_samples_the_exact_conditional(problem, name):
    g = problem[1]
    p = toy.ks_per_coordinate(_guided(name, problem, 1.0), _component(g, LABEL))
    assert min(p) > 1e-3, p


def test_the_conditional_test_has_power(problem):
    """Unguided samples (γ = 0) are the whole mixture: the same test must reject them."""
    g = problem[1]
    assert min(toy.ks_per_coordinate(_guided("ddim", problem, 0.0), _component(g, LABEL))) < 1e-6


def _tilted(g: toy.GaussianMixture, gamma: float, n: int, seed: int) -> torch.Tensor:
    """Exact draws of p(x) p(y | x)^γ / Z by sampling-importance-resampling from 400k draws."""
    gen = torch.Generator().manual_seed(seed)
    return g.tilted_sample(n, LABEL, gamma, pool=400_000, generator=gen)


def _two_sample_p(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    return [float(stats.ks_2samp(a[:, j].numpy(), b[:, j].numpy()).pvalue) for j in range(2)]


def test_gamma_three_overshoots_the_tilted_density(problem):
    """The guided score at every t is that of q_t(x) q_t(y | x)^γ, but these are not the marginals
    of one diffusion: the sampler does not land on the t = 0 tilted density (measured: its mean
    lies beyond the tilted one's, away from the other classes)."""
    g = problem[1]
    x = _guided("ddim", problem, 3.0)
    ref = _tilted(g, 3.0, 2000, 5)
    assert max(_two_sample_p(x, ref)) < 1e-6
    towards = g.means[LABEL] - g.means.mean(0)  # the direction away from the other classes
    assert float((x.mean(0) - ref.mean(0)) @ towards) > 0


@pytest.mark.slow
def test_gamma_three_with_a_langevin_corrector_reaches_the_tilted_density(problem):
    d, g, eps_model, clf = problem
    x = _guided("ddim", problem, 3.0)
    n, t = x.shape[0], torch.full((x.shape[0],), 1)
    labels = torch.full((n,), LABEL)
    sigma = float(1 - d.alpha_bars[1]) ** 0.5

    def guided_score(y):  # the score of q_1(x) q_1(y | x)^3, t = 1 (noise std 0.01)
        return -eps_model(y, t) / sigma + 3.0 * sample.classifier_gradient(clf, y, t, labels)

    gen = torch.Generator().manual_seed(9)
    y = sample.langevin(guided_score, x, step_size=2e-3, steps=1000, generator=gen)
    p = _two_sample_p(y, _tilted(g, 3.0, n, 5))
    assert min(p) > 1e-3, p


def test_threshold_x0_on_known_inputs():
    inside = torch.linspace(-1, 1, 784).reshape(1, 1, 28, 28)
    wide = torch.linspace(-3, 3, 784).reshape(1, 1, 28, 28)
    x = torch.cat([inside, wide]).double()
    assert torch.equal(sample.threshold_x0(x, "none"), x)
    assert torch.equal(sample.threshold_x0(x, "static"), x.clamp(-1, 1))
    out = sample.threshold_x0(x, "dynamic", 0.995)
    assert torch.equal(out[0], x[0])  # inside [-1, 1]: s = max(1, p) = 1, untouched
    import numpy as np

    s = max(1.0, float(np.quantile(np.abs(x[1].numpy()), 0.995)))
    assert s > 2.9
    assert torch.allclose(out[1], x[1].clamp(-s, s) / s, atol=1e-12)
    assert torch.allclose(sample.threshold_x0(x, "dynamic", 1.0)[1], x[1] / 3, atol=1e-12)
    with pytest.raises(ValueError, match="threshold must be one of"):
        sample.threshold_x0(x, "soft")
    with pytest.raises(ValueError, match="dynamic_percentile"):
        sample.threshold_x0(x, "dynamic", 99.5)


def test_threshold_static_clamps_x0_hat_in_every_step(problem):
    g = problem[1]
    d = Diffusion(schedule.linear_betas(100))
    eps_model = g.eps_model(d)
    kw = dict(x_T=_x_T(64, 4) * 3, shape=(2,), clip_samples=False)
    a = sample.ddim(eps_model, d, steps=20, threshold="static", **kw)
    x, times = kw["x_T"].clone(), sample.ddim_timesteps(100, 20).flip(0).tolist()
    for t, s in zip(times, [*times[1:], 0], strict=True):  # the DDIM loop with x0_hat clamped
        x0 = d.predict_x0_from_eps(x, t, eps_model(x, t)).clamp(-1, 1)
        x = d.ddim_step(x0, d.eps_from_x0(x, t, x0), t, s)
    assert torch.allclose(a, x, atol=1e-12)
    b = sample.ddim(eps_model, d, steps=20, threshold="none", **kw)
    assert not torch.allclose(a, b, atol=1e-3)  # the clamp acts on this x_T
    noise = torch.randn(100, 64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    c = sample.ancestral(eps_model, d, noise=noise, threshold="static", **kw)
    x = kw["x_T"].clone()
    for t in range(100, 0, -1):  # the step as Diffusion implements it with clip_x0=True
        x = d.p_sample_from_eps(x, t, eps_model(x, t), noise=noise[t - 1], clip_x0=True)
    assert torch.allclose(c, x, atol=1e-10)


def test_guidance_arguments_are_checked(problem):
    d, g, eps_model, clf = problem
    unconditional = lambda x, t: eps_model(x, t)  # noqa: E731 (no .config: unconditional)
    kw = dict(n=4, shape=(2,), steps=2, threshold="static")
    with pytest.raises(ValueError, match="needs labels"):
        sample.ddim(unconditional, d, classifier=clf, **kw)
    with pytest.raises(ValueError, match="needs a classifier"):
        sample.ddim(unconditional, d, classifier_scale=3.0, **kw)
    with pytest.raises(ValueError, match="class-conditional model"):
        sample.ddim(unconditional, d, classifier=clf, labels=1, guidance_scale=2.0, **kw)
    with pytest.raises(ValueError, match="labels"):
        sample.ddim(unconditional, d, classifier=clf, labels=4, **kw)  # 4 classes: 0..3
    with pytest.raises(ValueError, match="must return logits"):
        sample.ddim(unconditional, d, classifier=lambda x, t: x[:, 0], labels=1, **kw)
    with pytest.raises(ValueError, match="classifier_scale must be"):
        sample.ddim(unconditional, d, classifier=clf, labels=1, classifier_scale=float("nan"), **kw)
    out = sample.ddim(unconditional, d, classifier=clf, labels=1, classifier_scale=2.0, **kw)
    assert out.shape == (4, 2)
