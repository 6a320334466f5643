"""Chapter 3 experiments and figures: the brute-force checks are right, the drawings run headless,
the live widget redraws on a new value, and the static twin is an animation."""

import matplotlib

matplotlib.use("Agg")

import math  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy import integrate  # noqa: E402

from ddpm_lib import Diffusion, schedule, viz  # noqa: E402
from ddpm_lib.viz import posterior as P  # noqa: E402


@pytest.fixture(scope="module")
def coarse() -> Diffusion:
    return Diffusion(schedule.linear_betas(10, 0.05, 0.5))


@pytest.fixture
def fig():
    f = plt.figure(figsize=(8, 3))
    yield f
    plt.close(f)


def _formula(d, x0, x_t, t):
    mean, var = d.q_posterior(torch.tensor([x0], dtype=torch.float64),
                              torch.tensor([x_t], dtype=torch.float64), t)  # fmt: skip
    return float(mean[0]), float(var)


@pytest.mark.parametrize("t", [2, 3, 40, 1000])
def test_grid_bayes_agrees_with_the_formula(linear, cosine, t):
    for d in (linear, cosine):
        x0 = -0.6
        x_t = math.sqrt(float(d.alpha_bars[t])) * x0 + 2.0 * math.sqrt(1 - float(d.alpha_bars[t]))
        post = P.bayes_on_grid(d, x_t, t, [x0])
        mean, var = _formula(d, x0, x_t, t)
        assert post.mean == pytest.approx(mean, abs=1e-9)
        assert post.variance == pytest.approx(var, rel=1e-7)
        assert integrate.simpson(post.density, x=post.grid) == pytest.approx(1.0, abs=1e-12)


def test_grid_bayes_detects_a_wrong_posterior(linear):
    """The check has teeth: beta_t (not beta_tilde_t) and the x0-free mean are measurably off."""
    t, x0, x_t = 5, 0.5, 0.52
    post = P.bayes_on_grid(linear, x_t, t, [x0])
    assert abs(post.variance / float(linear.betas[t]) - 1) > 0.1
    assert abs(post.mean - x_t / math.sqrt(float(linear.alphas[t]))) > 1e-3


def test_true_reverse_is_the_weighted_mixture_of_posteriors(coarse):
    """q(x_{t-1} | x_t) = sum_k q(x0 = v_k | x_t) q(x_{t-1} | x_t, x0 = v_k), and it is bimodal
    for big steps."""
    values, probs, t, x_t = [-1.0, 1.0], [0.3, 0.7], 3, 0.1
    true = P.bayes_on_grid(coarse, x_t, t, values, probs)
    w = P.data_posterior(coarse, x_t, t, values, probs)
    assert w.sum() == pytest.approx(1.0) and w[1] > w[0]
    mix = np.zeros_like(true.grid)
    for v, wk in zip(values, w, strict=True):
        mean, var = _formula(coarse, v, x_t, t)
        mix += wk * np.exp(-((true.grid - mean) ** 2) / (2 * var)) / math.sqrt(2 * math.pi * var)
    assert np.max(np.abs(mix - true.density)) < 1e-9 * true.density.max()
    interior_minima = np.sum((true.density[1:-1] < true.density[:-2])
                             & (true.density[1:-1] < true.density[2:]))  # fmt: skip
    assert interior_minima == 1


def test_regression_recovers_the_posterior(linear):
    fit = P.regress_posterior(linear, 0.5, 20, 100_000, torch.Generator().manual_seed(0))
    assert abs(fit.slope - float(linear.posterior_coef_xt[20])) < 5 * fit.slope_se
    assert abs(fit.intercept - 0.5 * float(linear.posterior_coef_x0[20])) < 5 * fit.intercept_se
    assert abs(fit.residual_variance - float(linear.beta_tildes[20])) < 5 * fit.residual_variance_se
    # and it is sharp enough to reject beta_t as the variance
    assert abs(fit.residual_variance - float(linear.betas[20])) > 10 * fit.residual_variance_se


def test_experiments_refuse_bad_input(linear):
    with pytest.raises(ValueError, match=r"t must be an integer in \[2, 1000\], got 1"):
        P.bayes_on_grid(linear, 0.0, 1, [0.0])
    with pytest.raises(ValueError, match="n must be an odd integer"):
        P.bayes_on_grid(linear, 0.0, 5, [0.0], n=1000)
    with pytest.raises(ValueError, match="x0_probs must hold 2 positive probabilities"):
        P.bayes_on_grid(linear, 0.0, 5, [0.0, 1.0], [0.5, 0.6])
    with pytest.raises(ValueError, match=r"t must be an integer in \[1, 1000\], got 1001"):
        P.data_posterior(linear, 0.0, 1001, [0.0])
    with pytest.raises(ValueError, match="n must be an integer >= 10"):
        P.regress_posterior(linear, 0.0, 5, 3)
    with pytest.raises(TypeError, match="t must be an int"):
        P.regress_posterior(linear, 0.0, 5.0, 100)


def test_grid_check_lays_out_rows(fig, linear):
    P.draw_grid_check(fig, linear, -0.3, [2, 50, 900], z=-1.0, ncols=2)
    visible = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in visible] == ["t = 2", "t = 50", "t = 900"]
    assert len(fig.axes) == 4 and len(fig.legends) == 1
    with pytest.raises(ValueError, match="ncols must be >= 1"):
        P.draw_grid_check(fig, linear, 0.0, [2], ncols=0)


def test_static_figures_draw(fig, linear, cosine, coarse):
    P.draw_schedules(fig, {"linear": linear, "cosine": cosine})
    ratio_ax = fig.axes[1]
    ratio = ratio_ax.lines[0].get_ydata()
    assert ratio[0] == 0 and 0.99 < ratio[-1] <= 1 and np.all(np.diff(ratio) >= 0)
    fig.clear()
    P.draw_true_reverse(fig, [P.ReverseCase("coarse", coarse, 3, 0.1),
                              P.ReverseCase("fine", linear, 100, 0.1)], [-1.0, 1.0])  # fmt: skip
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 3
    fig.clear()
    P.draw_grid_check(fig, linear, 0.7, [2, 100])
    assert [ax.get_title() for ax in fig.axes] == ["t = 2", "t = 100"]
    fig.clear()
    g = torch.Generator().manual_seed(1)
    P.draw_regression(fig, linear, 0.5, {2: P.regress_posterior(linear, 0.5, 2, 500, g)})
    assert "t = 2" in fig.axes[0].get_title()


def _digit():
    x = torch.full((1, 28, 28), -1.0)
    x[0, 6:22, 12:16] = 1.0  # a "1"
    return x


def test_digit_posterior_at_t1_is_x0(fig, linear):
    P.draw_digit_posterior(fig, 1, "linear", x0=_digit(), diffusions={"linear": linear})
    shown = [ax.images[0].get_array() for ax in fig.axes]
    assert len(shown) == 7  # x0, x_t, mean, 3 draws, mean - x_t
    for img in shown[2:6]:  # beta_tilde_1 = 0: the mean and every draw are x0 itself
        assert np.allclose(img, shown[0])
    with pytest.raises(ValueError, match="schedule must be one of"):
        P.draw_digit_posterior(fig, 5, "cosine", x0=_digit(), diffusions={"linear": linear})


def test_digit_widget_live_and_static(linear, cosine, monkeypatch):
    calls = []

    def spy(fig, t, schedule):
        calls.append((t, schedule))
        P.draw_digit_posterior(fig, t, schedule, x0=_digit(),
                               diffusions={"linear": linear, "cosine": cosine})  # fmt: skip
        assert fig._suptitle.get_text().startswith(f"{schedule}, t = {t}:")

    controls = {"t": [1, 10, 500], "schedule": ["linear", "cosine"]}
    w = viz.explore(spy, controls, static=False, figsize=(8, 2))
    w.children[0].value = 500
    w.children[1].value = "cosine"
    assert calls[-2:] == [(500, "linear"), (500, "cosine")]
    html = viz.explore(spy, controls, animate_over="t", static=True, figsize=(8, 2)).data
    assert "<script" in html and html.count("data:image/png") >= 3
