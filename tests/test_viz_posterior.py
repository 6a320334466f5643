"""Chapter 3 figures: the drawings show the library's numbers (checked on the drawn data), the live
widget redraws on a new value, and the static twin is an animation. The references they draw
(Bayes on a grid, the regression) are tested in test_toy.py."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ddpm_lib import Diffusion, schedule, toy, viz  # noqa: E402
from ddpm_lib.viz import posterior as P  # noqa: E402

pytestmark = pytest.mark.figsize(8, 3)


@pytest.fixture(scope="module")
def coarse() -> Diffusion:
    return Diffusion(schedule.linear_betas(10, 0.05, 0.5))


def _posterior(d, x0, x_t, t):
    mean, var = d.q_posterior(torch.tensor([x0], dtype=torch.float64),
                              torch.tensor([x_t], dtype=torch.float64), t)  # fmt: skip
    return float(mean[0]), float(var)


def _normal_pdf(x, mean, var):
    return np.exp(-0.5 * (x - mean) ** 2 / var) / np.sqrt(2 * np.pi * var)


def test_grid_check_lays_out_rows_and_draws_the_formula(fig, linear):
    P.draw_grid_check(fig, linear, -0.3, [2, 50, 900], z=-1.0, ncols=2)
    visible = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in visible] == ["t = 2", "t = 50", "t = 900"]
    assert len(fig.axes) == 4 and len(fig.legends) == 1
    ab = float(linear.alpha_bars[50])
    x_t = ab**0.5 * -0.3 + (1 - ab) ** 0.5 * -1.0
    formula = visible[1].lines[-1]  # dashed: N(mu_tilde, beta_tilde) from q_posterior
    x, y = formula.get_data()
    assert np.allclose(y, _normal_pdf(x, *_posterior(linear, -0.3, x_t, 50)))
    with pytest.raises(ValueError, match="ncols must be >= 1"):
        P.draw_grid_check(fig, linear, 0.0, [2], ncols=0)
    with pytest.raises(ValueError, match=r"t must be an integer in \[2, 1000\], got 1"):
        P.draw_grid_check(fig, linear, 0.0, [1])


def test_draw_beta_tildes(fig, linear, cosine):
    P.draw_beta_tildes(fig, {"linear": linear, "cosine": cosine})
    ax_b, ax_r = fig.axes
    assert np.allclose(ax_b.lines[0].get_ydata(), linear.betas[1:].numpy())
    assert np.allclose(ax_b.lines[3].get_ydata(), cosine.beta_tildes[2:].numpy())
    ratio = ax_r.lines[0].get_ydata()
    assert np.allclose(ratio, (linear.beta_tildes[1:] / linear.betas[1:]).numpy())
    assert ratio[0] == 0 and 0.99 < ratio[-1] <= 1 and np.all(np.diff(ratio) >= 0)


def test_draw_true_reverse_draws_grid_bayes_and_its_decomposition(fig, linear, coarse):
    values = [-1.0, 1.0]
    P.draw_true_reverse(fig, [P.ReverseCase("coarse", coarse, 3, 0.1),
                              P.ReverseCase("fine", linear, 100, 0.1)], values)  # fmt: skip
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 3
    true = toy.bayes_on_grid(coarse, 0.1, 3, values)
    weights = toy.data_posterior(coarse, 0.1, 3, values)
    grid_line, *parts = fig.axes[0].lines
    assert np.allclose(grid_line.get_ydata(), true.density)
    for line, v, w in zip(parts, values, weights, strict=True):
        want = w * _normal_pdf(true.grid, *_posterior(coarse, v, 0.1, 3))
        assert np.allclose(line.get_ydata(), want)


def test_draw_regression_shows_the_simulated_pairs_and_both_lines(fig, linear):
    fit = toy.regress_posterior(linear, 0.5, 2, 500, torch.Generator().manual_seed(1))
    P.draw_regression(fig, linear, 0.5, {2: fit})
    (ax,) = fig.axes
    assert np.allclose(ax.collections[0].get_offsets(), np.c_[fit.x_t.numpy(), fit.x_prev.numpy()])
    formula, ls_fit = ax.lines[0], ax.lines[1]
    x = formula.get_xdata()
    assert np.allclose(formula.get_ydata(), linear.posterior_coef_xt[2].item() * x
                       + 0.5 * linear.posterior_coef_x0[2].item())  # fmt: skip
    assert np.allclose(ls_fit.get_ydata(), fit.slope * x + fit.intercept)
    assert "t = 2" in ax.get_title()


def _digit():
    x = torch.full((1, 28, 28), -1.0)
    x[0, 6:22, 12:16] = 1.0  # a "1"
    return x


def test_digit_posterior_at_t1_is_x0(fig, linear):
    P.draw_digit_posterior(fig, 1, "linear", x0=_digit(), schedules={"linear": linear})
    shown = [ax.images[0].get_array() for ax in fig.axes]
    assert len(shown) == 7  # x0, x_t, mean, 3 draws, mean - x_t
    for img in shown[2:6]:  # beta_tilde_1 = 0: the mean and every draw are x0 itself
        assert np.allclose(img, shown[0])
    with pytest.raises(ValueError, match="schedule must be one of"):
        P.draw_digit_posterior(fig, 5, "cosine", x0=_digit(), schedules={"linear": linear})


def _x_t_shown(d, t, seed=0):
    """What draw_digit_posterior must show as x_t: q_sample with the first draw from ``seed``."""
    x0 = _digit()[None].double()
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return viz.to_display(d.q_sample(x0, t, noise=eps))[0, 0].numpy()


def test_digit_widget_live_and_static(linear, cosine):
    calls = []
    schedules = {"linear": linear, "cosine": cosine}

    def spy(fig, t, schedule):
        P.draw_digit_posterior(fig, t, schedule, x0=_digit(), schedules=schedules)
        # recorded, not asserted here: a live widget logs an exception in its callback, no more
        drawn = np.allclose(fig.axes[1].images[0].get_array(), _x_t_shown(schedules[schedule], t))
        calls.append((t, schedule, drawn))

    controls = {"t": [1, 10, 500], "schedule": ["linear", "cosine"]}
    w = viz.explore(spy, controls, static=False, figsize=(8, 2))
    w.children[0].value = 500
    w.children[1].value = "cosine"
    assert calls[-2:] == [(500, "linear", True), (500, "cosine", True)]
    assert not np.allclose(_x_t_shown(linear, 500), _x_t_shown(cosine, 500))  # the check can fail
    html = viz.explore(spy, controls, animate_over="t", static=True, figsize=(8, 2)).data
    assert "<script" in html and html.count("data:image/png") >= 3
    assert calls[-3:] == [(t, "linear", True) for t in controls["t"]]
