"""ddpm_lib.toy.tweedie_x0 and toy.score_error, each against an independent computation:
Tweedie's denoiser from the exact score equals the mixture's posterior mean (computed without the
score) and Diffusion.predict_x0_from_score; the exact ε-model has score error ~0, a model that is
off by a known factor has exactly that relative error, and a trained MLP sits in between."""

import math

import pytest
import torch

from ddpm_lib import Diffusion, schedule, toy
from ddpm_lib.models import MLPEps
from ddpm_lib.train import fit_eps

pytestmark = pytest.mark.one_thread


@pytest.mark.parametrize("alpha_bar", [0.999, 0.7, 0.2, 0.01])
def test_tweedie_from_the_exact_score_is_the_posterior_mean(alpha_bar):
    g = toy.two_d_mixture()
    x_t = g.noised(alpha_bar).sample(500, torch.Generator().manual_seed(0))
    x0_hat = toy.tweedie_x0(x_t, alpha_bar, g.noised(alpha_bar).score(x_t))
    assert torch.allclose(x0_hat, g.posterior_mean_x0(x_t, alpha_bar), atol=1e-9, rtol=1e-9)


def test_tweedie_matches_diffusion_predict_x0_from_score():
    d = Diffusion(schedule.linear_betas(100))
    x_t, score = torch.randn(7, 2, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64)
    for t in (1, 40, 100):
        assert torch.allclose(
            toy.tweedie_x0(x_t, d.alpha_bars[t], score), d.predict_x0_from_score(x_t, t, score)
        )
    # a 1-D Gaussian by hand: x0 ~ N(m, s^2) gives
    # E[x0 | x_t] = m + sqrt(ab) s^2 (x_t - sqrt(ab) m) / V
    m, s, ab, x = 0.3, 0.5, 0.6, 1.1
    v = ab * s**2 + 1 - ab
    score = torch.tensor([[-(x - math.sqrt(ab) * m) / v]], dtype=torch.float64)
    got = float(toy.tweedie_x0(torch.tensor([[x]], dtype=torch.float64), ab, score))
    assert math.isclose(got, m + math.sqrt(ab) * s**2 * (x - math.sqrt(ab) * m) / v, rel_tol=1e-12)


@pytest.mark.parametrize(
    "args, err, match",
    [
        ((torch.zeros(3, 2), 0.0, torch.zeros(3, 2)), ValueError, "alpha_bar"),
        ((torch.zeros(3, 2), 1.5, torch.zeros(3, 2)), ValueError, "alpha_bar"),
        ((torch.zeros(3, 2), 0.5, torch.zeros(3, 1)), ValueError, "score"),
        ((torch.zeros(3, 2), 0.5, [0.0, 1.0]), TypeError, "score"),
    ],
)
def test_tweedie_bad_input(args, err, match):
    with pytest.raises(err, match=match):
        toy.tweedie_x0(*args)


class _Scaled:
    """An ε-model that is the exact one times ``k``: its score is off by exactly (k - 1) x."""

    def __init__(self, exact, k):
        self.exact, self.k = exact, k

    def __call__(self, x_t, t):
        return self.k * self.exact(x_t, t)


def test_score_error_of_the_exact_and_of_a_scaled_model():
    g, d = toy.two_d_mixture(), Diffusion(schedule.linear_betas(200))
    exact = g.eps_model(d)
    ts = [1, 20, 100, 200]
    e = toy.score_error(exact, d, g, ts, n=500, generator=torch.Generator().manual_seed(0))
    assert e.ts.tolist() == ts and e.rmse.dtype == torch.float64 and e.rel_rmse.shape == (4,)
    assert float(e.rel_rmse.max()) < 1e-10
    bad = toy.score_error(_Scaled(exact, 1.5), d, g, ts, n=500,
                          generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.allclose(bad.rel_rmse, torch.full((4,), 0.5, dtype=torch.float64))
    assert bool((bad.rmse > 0.1).all())  # the exact score has size >= ~1 at every t here
    again = toy.score_error(_Scaled(exact, 1.5), d, g, ts, n=500,
                            generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.equal(again.rmse, bad.rmse)


def test_score_error_of_a_briefly_trained_mlp_lies_between():
    g, d = toy.two_d_mixture(), Diffusion(schedule.linear_betas(200))
    torch.manual_seed(0)
    m = MLPEps(hidden=32, depth=2)
    untrained = toy.score_error(
        m, d, g, [100, 150], n=500, generator=torch.Generator().manual_seed(1)
    )
    assert torch.allclose(untrained.rel_rmse, torch.ones(2, dtype=torch.float64))  # eps = 0
    fit_eps(m, d, g, 300, batch_size=256, generator=torch.Generator().manual_seed(0))
    e = toy.score_error(m, d, g, [100, 150], n=500, generator=torch.Generator().manual_seed(1))
    assert bool((e.rel_rmse < 0.25).all()), e.rel_rmse  # measured 0.05 and 0.06


@pytest.mark.parametrize(
    "kw, match",
    [({"ts": [0]}, "ts"), ({"ts": [5, 3]}, "ts"), ({"n": 1}, "n"), ({"mixture": None}, "mixture")],
)
def test_score_error_bad_arguments(kw, match):
    g, d = toy.two_d_mixture(), Diffusion(schedule.linear_betas(10))
    args = {"model": g.eps_model(d), "diffusion": d, "mixture": g, "ts": [1, 5], "n": 10}
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        toy.score_error(**args)
