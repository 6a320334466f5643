"""The chain runner and the schedule pair every chapter shares, and chapter 1's figures: each draws
the library's numbers (checked on the drawn data, not on labels)."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

from ddpm_lib import Diffusion, schedule, toy, viz  # noqa: E402
from ddpm_lib.viz import forward as fwd  # noqa: E402

from .conftest import shown  # noqa: E402


@pytest.fixture
def short() -> Diffusion:
    """A short chain with large steps: abar_T ~ 0.02, so mixing is visible in 40 steps."""
    return Diffusion(schedule.linear_betas(40, 1e-3, 0.18))


@pytest.fixture
def digits() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(6, 1, 28, 28, generator=g) > 0.8).float() * 2 - 1  # "ink" at +1 on -1


@pytest.fixture
def schedules(short):
    return {"linear": short, "cosine": Diffusion(schedule.cosine_betas(40))}


@pytest.fixture
def chains(digits, schedules):
    ts = (0, 5, 20, 40)
    return {
        name: viz.run_chain(d, digits, ts, generator=torch.Generator().manual_seed(1))
        for name, d in schedules.items()
    }


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _image(ax) -> np.ndarray:
    return np.asarray(ax.images[0].get_array())


def _bar_heights(ax) -> np.ndarray:
    return np.array([p.get_height() for p in ax.patches])


# ----------------------------------------------------------------------- the shared helpers
def test_schedule_pair_uses_the_papers_schedules():
    pair = viz.schedule_pair()
    assert list(pair) == ["linear", "cosine"]
    assert torch.equal(pair["linear"].betas, schedule.linear_betas(1000, 1e-4, 0.02))
    assert torch.equal(pair["cosine"].betas, schedule.cosine_betas(1000, 0.008))
    assert viz.schedule_pair(T=50)["cosine"].T == 50


def test_run_chain_is_q_step_iterated_with_the_same_generator(digits, short):
    chain = viz.run_chain(short, digits, ts=[0, 3, 40], generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    x, want = digits, {0: digits}
    for t in range(1, short.T + 1):
        x = short.q_step(x, t, generator=g)
        want[t] = x
    assert chain.ts == (0, 3, 40)
    assert chain.x_t.shape == chain.eps_bar.shape == (3, *digits.shape)
    assert chain.means.shape == chain.variances.shape == (short.T + 1,)
    for i, t in enumerate(chain.ts):
        assert torch.equal(chain.x_t[i], want[t])
        assert math.isclose(chain.means[t], want[t].double().mean().item(), rel_tol=1e-9)
        assert math.isclose(
            chain.variances[t], want[t].double().var(correction=0).item(), rel_tol=1e-9
        )
    again = viz.run_chain(short, digits, ts=[40], generator=torch.Generator().manual_seed(7))
    assert torch.equal(again.x_t[0], chain.x_t[2])  # reproducible from the seed


def test_run_chain_stops_at_the_last_kept_step(digits, short):
    chain = viz.run_chain(short, digits, ts=[2, 7])
    assert chain.means.shape == (8,) and chain.x_t.shape[0] == 2


def test_run_chain_merged_noise_reproduces_the_chain(linear):
    """Eq. 4 with the tracked noise gives the chain's state to round-off (the derivation, sample by
    sample); at t = 1 the merged noise is the single step's noise; at t = 0 there is none."""
    x0 = torch.randn(6, 1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    run = viz.run_chain(linear, x0, (0, 1, 7, 40), torch.Generator().manual_seed(2))
    for i, t in enumerate(run.ts):
        assert torch.allclose(linear.q_sample(x0, t, noise=run.eps_bar[i]), run.x_t[i], atol=1e-12)
    g = torch.Generator().manual_seed(2)
    assert torch.allclose(run.eps_bar[1], torch.randn(x0.shape, generator=g, dtype=x0.dtype))
    assert torch.equal(run.eps_bar[0], torch.zeros_like(x0)) and torch.equal(run.x_t[0], x0)


def test_run_chain_merged_noise_is_standard_normal(cosine):
    x0 = torch.full((20_000, 1), 0.7, dtype=torch.float64)
    run = viz.run_chain(cosine, x0, (50, 600), torch.Generator().manual_seed(3))
    for i, t in enumerate(run.ts):
        eps = run.eps_bar[i].flatten().numpy()
        assert stats.kstest(eps, stats.norm(0, 1).cdf).pvalue > 1e-4
        mean, sd = (
            math.sqrt(float(cosine.alpha_bars[t])) * 0.7,
            math.sqrt(1 - float(cosine.alpha_bars[t])),
        )
        assert stats.kstest(run.x_t[i].flatten().numpy(), stats.norm(mean, sd).cdf).pvalue > 1e-4


@pytest.mark.parametrize(
    "ts, err, match",
    [
        ([], ValueError, "at least one"),
        ([0, 41], ValueError, r"in \[0, 40\]"),
        ([-1], ValueError, r"in \[0, 40\]"),
        ([5, 3], ValueError, "strictly increasing"),
        ([2, 2], ValueError, "strictly increasing"),
        ([1.5], TypeError, "must be an int"),
    ],
)
def test_run_chain_refuses_bad_steps(digits, short, ts, err, match):
    with pytest.raises(err, match=match):
        viz.run_chain(short, digits, ts)


def test_run_chain_refuses_non_tensor(short):
    with pytest.raises(TypeError, match="x0"):
        viz.run_chain(short, [0.0, 1.0], (1,))


def test_chain_variance_follows_the_recursion(short):
    """Unit variance is preserved at every step; variance 4 relaxes as 1 - abar_t (1 - 4)."""
    g = torch.Generator().manual_seed(3)
    n = 20_000
    for var0 in (1.0, 4.0, 0.0):
        x0 = math.sqrt(var0) * torch.randn(n, generator=g, dtype=torch.float64)
        chain = viz.run_chain(short, x0, ts=[short.T], generator=g)
        predicted = short.variance_trajectory(var0)
        assert (chain.variances - predicted).abs().max() < 6 / math.sqrt(n) * max(var0, 1.0)


def test_draw_image_shows_one_image_on_the_fixed_grey_scale():
    x = torch.linspace(-2, 2, 12).reshape(1, 1, 3, 4)
    ax = plt.figure().add_subplot()
    viz.draw_image(ax, x)
    assert np.allclose(_image(ax), ((x[0, 0] + 1) / 2).clamp(0, 1).numpy())
    assert ax.images[0].get_clim() == (0, 1) and list(ax.get_xticks()) == []
    with pytest.raises(ValueError, match="one image"):
        viz.draw_image(ax, torch.zeros(2, 1, 3, 4))


# ---------------------------------------------------------------------------------- figures
def test_draw_betas_draws_every_schedule(schedules):
    fig = plt.figure()
    fwd.draw_betas(fig, schedules)
    ax_b, ax_a = fig.axes
    for line, d in zip(ax_b.lines, schedules.values(), strict=True):
        assert np.allclose(line.get_ydata(), d.betas[1:].numpy())
    for line, d in zip(ax_a.lines, schedules.values(), strict=True):
        assert np.allclose(line.get_ydata(), d.alpha_bars.numpy()) and line.get_ydata()[0] == 1.0
    assert ax_b.get_yscale() == "log"


def test_draw_noising_shows_the_requested_step_and_schedule(chains):
    fig = plt.figure()
    fwd.draw_noising(fig, 20, "cosine", chains=chains, n_show=3)
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 3
    x_t = chains["cosine"].x_t[2]  # t = 20
    for i, ax in enumerate(image_axes):
        assert np.allclose(_image(ax), viz.to_display(x_t[i, 0]).numpy())
    (hist_ax,) = [ax for ax in fig.axes if ax.patches]
    want, _ = np.histogram(x_t.double().flatten().numpy(), np.linspace(-4, 4, 81), density=True)
    assert np.allclose(_bar_heights(hist_ax), want)
    with pytest.raises(ValueError, match="one of the chain's steps"):
        fwd.draw_noising(plt.figure(), 7, "linear", chains=chains)
    with pytest.raises(ValueError, match="schedule must be one of"):
        fwd.draw_noising(plt.figure(), 5, "sigmoid", chains=chains)


def test_live_noising_widget_redraws_on_every_control(chains, monkeypatch):
    calls = []
    real = fwd.draw_noising

    def spy(fig, t, schedule, **kw):
        real(fig, t, schedule, **kw)
        calls.append((t, schedule, _image(fig.axes[0])))

    monkeypatch.setattr(fwd, "draw_noising", spy)
    w = shown(fwd.explore_noising(chains, n_show=2, static=False))
    assert calls[-1][:2] == (0, "linear")
    w.children[0].value = 40
    assert calls[-1][:2] == (40, "linear")
    assert np.allclose(calls[-1][2], viz.to_display(chains["linear"].x_t[3][0, 0]).numpy())
    w.children[1].value = "cosine"
    assert calls[-1][:2] == (40, "cosine")
    assert np.allclose(calls[-1][2], viz.to_display(chains["cosine"].x_t[3][0, 0]).numpy())


def test_static_noising_is_an_animation_over_t(chains):
    html = fwd.explore_noising(chains, n_show=2, static=True).data
    assert "<script" in html and html.count("data:image/png") == len(chains["linear"].ts)


def test_explore_noising_needs_common_steps(digits, short, chains):
    other = viz.run_chain(short, digits, ts=(0, 40))
    with pytest.raises(ValueError, match="same steps"):
        fwd.explore_noising({"linear": chains["linear"], "other": other})
    with pytest.raises(ValueError, match="at least one"):
        fwd.explore_noising({})


def test_histogram_and_moment_figures(chains, schedules, short):
    fig = plt.figure()
    fwd.draw_pixel_histograms(fig, chains, ts=(0, 40))
    assert len(fig.axes) == 4
    for ax, (name, i) in zip(fig.axes, [("linear", 0), ("linear", 3), ("cosine", 0), ("cosine", 3)],
                             strict=True):  # fmt: skip
        values = chains[name].x_t[i].double().flatten().numpy()
        want, _ = np.histogram(values, np.linspace(-4, 4, 81), density=True)
        assert np.allclose(_bar_heights(ax), want)
    with pytest.raises(ValueError, match="one of the chain's steps"):
        fwd.draw_pixel_histograms(plt.figure(), chains, ts=(1,))
    fig = plt.figure()
    fwd.draw_pixel_moments(fig, chains, schedules)
    ax_m, ax_v, ax_x = fig.axes
    v0 = chains["linear"].variances[0].item()
    assert np.allclose(ax_m.lines[0].get_ydata(), chains["linear"].means.numpy())
    assert np.allclose(ax_v.lines[1].get_ydata(), short.variance_trajectory(v0))  # predicted
    assert ax_x.lines[0].get_ydata()[-1] == pytest.approx(v0 + short.betas.sum().item())
    cut = {
        name: c._replace(means=c.means[:6], variances=c.variances[:6]) for name, c in chains.items()
    }
    with pytest.raises(ValueError, match="must run to T = 40"):
        fwd.draw_pixel_moments(plt.figure(), cut, schedules)


def test_toy_figures(short):
    m = toy.three_bumps()
    g = torch.Generator().manual_seed(2)
    chain = viz.run_chain(short, m.sample(500, generator=g), ts=(0, 10, 40), generator=g)
    fig = plt.figure()
    fwd.draw_toy_marginals(fig, chain, short, m)
    assert len(fig.axes) == 3
    x, y = fig.axes[1].lines[0].get_data()
    want = m.noised(short.alpha_bars[10]).log_prob(torch.from_numpy(x)[:, None]).exp()
    assert np.allclose(y, want.numpy())
    heights, _ = np.histogram(
        chain.x_t[1].flatten().numpy(), np.linspace(-3.5, 3.5, 176), density=True
    )
    assert np.allclose(_bar_heights(fig.axes[1]), heights)
    paths = viz.run_chain(short, m.sample(5, generator=g), ts=range(short.T + 1), generator=g)
    fig = plt.figure()
    fwd.draw_marginal_heatmap(fig, short, m, paths=paths)
    lines = fig.axes[0].lines
    assert len(lines) == 5
    assert np.allclose(lines[2].get_ydata(), paths.x_t[:, 2, 0].numpy())
    with pytest.raises(ValueError, match="every step"):
        fwd.draw_marginal_heatmap(plt.figure(), short, m, paths=chain)
    two_d = toy.GaussianMixture([1.0], [[0.0, 0.0]], [1.0])
    with pytest.raises(ValueError, match="1-D"):
        fwd.draw_marginal_heatmap(plt.figure(), short, two_d)
