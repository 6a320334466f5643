"""Chapter 1 helpers: the chain runner, the exact toy marginal, and the drawing functions."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy import integrate, stats  # noqa: E402

from ddpm_lib import Diffusion, schedule, viz  # noqa: E402
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
def chains(digits, short):
    ts = (0, 5, 20, 40)
    return {
        name: fwd.run_chain(digits, d, ts, generator=torch.Generator().manual_seed(1))
        for name, d in {"linear": short, "cosine": Diffusion(schedule.cosine_betas(40))}.items()
    }


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ------------------------------------------------------------------------------ the chain
def test_make_diffusion_uses_the_papers_schedules():
    assert torch.equal(fwd.make_diffusion("linear").betas, schedule.linear_betas(1000, 1e-4, 0.02))
    assert torch.equal(fwd.make_diffusion("cosine", T=50).betas, schedule.cosine_betas(50))
    with pytest.raises(ValueError, match="name must be one of"):
        fwd.make_diffusion("quadratic")


def test_run_chain_is_q_step_iterated_with_the_same_generator(digits, short):
    chain = fwd.run_chain(digits, short, ts=[0, 3, 40], generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    x, want = digits, {0: digits}
    for t in range(1, short.T + 1):
        x = short.q_step(x, t, generator=g)
        want[t] = x
    assert chain.ts == (0, 3, 40)
    assert chain.states.shape == (3, *digits.shape)
    for i, t in enumerate(chain.ts):
        assert torch.equal(chain.states[i], want[t])
        assert math.isclose(chain.means[t], want[t].double().mean().item(), rel_tol=1e-9)
        assert math.isclose(
            chain.variances[t], want[t].double().var(correction=0).item(), rel_tol=1e-9
        )
    again = fwd.run_chain(digits, short, ts=[40], generator=torch.Generator().manual_seed(7))
    assert torch.equal(again.states[0], chain.states[2])  # reproducible from the seed


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
        fwd.run_chain(digits, short, ts)


def test_chain_variance_follows_the_recursion(short):
    """Unit variance is preserved at every step; variance 4 relaxes as 1 - abar_t (1 - 4)."""
    g = torch.Generator().manual_seed(3)
    n = 20_000
    for var0 in (1.0, 4.0, 0.0):
        x0 = math.sqrt(var0) * torch.randn(n, generator=g, dtype=torch.float64)
        chain = fwd.run_chain(x0, short, ts=[short.T], generator=g)
        predicted = fwd.variance_trajectory(var0, short)
        assert (chain.variances - predicted).abs().max() < 6 / math.sqrt(n) * max(var0, 1.0)
    assert fwd.variance_trajectory(1.0, short).sub(1).abs().max() < 1e-12


def test_variance_trajectory_iterates_the_one_step_rule(short):
    v = [2.5]
    for t in range(1, short.T + 1):
        v.append((1 - short.betas[t].item()) * v[-1] + short.betas[t].item())
    got = fwd.variance_trajectory(2.5, short)
    assert got.dtype == torch.float64 and got.shape == (short.T + 1,)
    assert torch.allclose(got, torch.tensor(v, dtype=torch.float64), rtol=1e-12)
    with pytest.raises(ValueError, match=">= 0"):
        fwd.variance_trajectory(-0.1, short)


# ---------------------------------------------------------------------------- the toy mixture
def test_check_mixture_refuses_bad_parameters():
    ok = fwd.toy_mixture()
    with pytest.raises(ValueError, match="sum to 1"):
        fwd.check_mixture(ok._replace(weights=torch.tensor([0.5, 0.4, 0.2])))
    with pytest.raises(ValueError, match="sum to 1"):
        fwd.check_mixture(ok._replace(weights=torch.tensor([1.2, -0.1, -0.1])))
    with pytest.raises(ValueError, match="stds must be > 0"):
        fwd.check_mixture(ok._replace(stds=torch.tensor([0.1, 0.0, 0.1])))
    with pytest.raises(ValueError, match="one length"):
        fwd.check_mixture(ok._replace(means=torch.tensor([0.0, 1.0])))
    with pytest.raises(ValueError, match=r"alpha_bar must be one number in \[0, 1\]"):
        fwd.diffused_mixture(ok, 1.5)


def test_sample_mixture_has_the_mixture_moments():
    m = fwd.toy_mixture()
    x = fwd.sample_mixture(m, 200_000, generator=torch.Generator().manual_seed(0))
    mean = (m.weights * m.means).sum()
    var = (m.weights * (m.stds**2 + m.means**2)).sum() - mean**2
    assert abs(x.mean() - mean) < 4 * math.sqrt(var / x.numel())
    assert abs(x.var() - var) < 0.01
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        fwd.sample_mixture(m, 0)


def test_mixture_pdf_and_cdf_against_scipy():
    m = fwd.Mixture1D(
        *(torch.tensor(v, dtype=torch.float64) for v in ([0.2, 0.8], [-1.0, 0.5], [0.3, 0.7]))
    )
    x = torch.linspace(-4, 4, 101, dtype=torch.float64)
    want_pdf = sum(
        w * stats.norm.pdf(x.numpy(), mu, s)
        for w, mu, s in zip(*(v.tolist() for v in m), strict=True)
    )
    want_cdf = sum(
        w * stats.norm.cdf(x.numpy(), mu, s)
        for w, mu, s in zip(*(v.tolist() for v in m), strict=True)
    )
    assert np.allclose(fwd.mixture_pdf(x, m).numpy(), want_pdf, rtol=1e-10, atol=1e-14)
    assert np.allclose(fwd.mixture_cdf(x, m).numpy(), want_cdf, rtol=1e-10, atol=1e-14)


def test_diffused_mixture_limits_and_normalisation(short):
    m = fwd.toy_mixture()
    same = fwd.diffused_mixture(m, 1.0)
    assert torch.allclose(same.means, m.means) and torch.allclose(same.stds, m.stds)
    gone = fwd.diffused_mixture(m, 0.0)
    assert torch.allclose(gone.means, torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(gone.stds, torch.ones(3, dtype=torch.float64))
    half = fwd.diffused_mixture(m, 0.5)
    assert torch.allclose(half.stds**2, 0.5 * m.stds**2 + 0.5)
    x = torch.linspace(-8, 8, 20_001, dtype=torch.float64)
    for t in (0, 1, 10, short.T):
        pdf = fwd.mixture_marginal_pdf(x, t, short, m)
        assert integrate.trapezoid(pdf.numpy(), x.numpy()) == pytest.approx(1.0, abs=1e-6)
        ab = short.alpha_bars[t].item()
        mean = integrate.trapezoid((x * pdf).numpy(), x.numpy())
        assert mean == pytest.approx(math.sqrt(ab) * (m.weights * m.means).sum().item(), abs=1e-6)
    with pytest.raises(ValueError, match=r"in \[0, 40\]"):
        fwd.mixture_marginal_pdf(x, 41, short, m)


def test_simulated_toy_chain_matches_the_exact_marginal(short):
    """KS: the step-by-step chain is not rejected against the exact mixture, but the wrong step is."""
    m = fwd.toy_mixture()
    g = torch.Generator().manual_seed(11)
    chain = fwd.run_chain(
        fwd.sample_mixture(m, 20_000, generator=g), short, ts=[3, 10], generator=g
    )
    for t, x_t in zip(chain.ts, chain.states, strict=True):

        def cdf(v, t=t):
            return fwd.mixture_marginal_cdf(torch.from_numpy(v), t, short, m).numpy()

        def wrong(v, t=t):
            return fwd.mixture_marginal_cdf(torch.from_numpy(v), t + 3, short, m).numpy()

        assert stats.kstest(x_t.numpy(), cdf).pvalue > 0.01
        assert stats.kstest(x_t.numpy(), wrong).pvalue < 1e-6


# ---------------------------------------------------------------------------------- figures
def test_plot_schedules_draws_both_schedules():
    fig = plt.figure()
    fwd.plot_schedules(fig, T=100)
    ax_b, ax_a = fig.axes
    assert [line.get_label() for line in ax_b.lines] == ["linear", "cosine"]
    assert np.allclose(ax_b.lines[0].get_ydata(), schedule.linear_betas(100)[1:].numpy())
    assert ax_b.get_yscale() == "log"
    assert ax_a.lines[1].get_ydata()[0] == 1.0  # abar_0 = 1


def test_noising_draw_shows_the_requested_step_and_schedule(chains):
    draw = fwd.noising_draw(chains, n_show=3)
    fig = plt.figure()
    draw(fig, t=20, schedule="cosine")
    assert "cosine" in fig._suptitle.get_text() and "t = 20" in fig._suptitle.get_text()
    images = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(images) == 3
    want = viz.to_display(chains["cosine"].states[2][0, 0]).numpy()
    assert np.allclose(images[0], want)
    with pytest.raises(ValueError, match="one of the chain's steps"):
        draw(plt.figure(), t=7, schedule="linear")
    with pytest.raises(ValueError, match="schedule must be one of"):
        draw(plt.figure(), t=5, schedule="sigmoid")


def test_live_noising_widget_redraws_on_every_control(chains, monkeypatch):
    calls = []
    real = fwd.noising_draw

    def spy_factory(chains, n_show=5):
        draw = real(chains, n_show)

        def spy(fig, t, schedule):
            draw(fig, t=t, schedule=schedule)
            calls.append((t, schedule, fig._suptitle.get_text()))

        return spy

    monkeypatch.setattr(fwd, "noising_draw", spy_factory)
    w = shown(fwd.explore_noising(chains, n_show=2, static=False))
    assert calls[-1][:2] == (0, "linear")
    w.children[0].value = 40
    assert calls[-1][:2] == (40, "linear") and "t = 40" in calls[-1][2]
    w.children[1].value = "cosine"
    assert calls[-1][:2] == (40, "cosine") and "cosine" in calls[-1][2]


def test_static_noising_is_an_animation_over_t(chains):
    html = fwd.explore_noising(chains, n_show=2, static=True).data
    assert "<script" in html and html.count("data:image/png") == len(chains["linear"].ts)


def test_explore_noising_needs_common_steps(digits, short, chains):
    other = fwd.run_chain(digits, short, ts=(0, 40))
    with pytest.raises(ValueError, match="same steps"):
        fwd.explore_noising({"linear": chains["linear"], "other": other})


def test_histogram_and_moment_figures(chains, short):
    fig = plt.figure()
    fwd.plot_pixel_histograms(fig, chains, ts=(0, 40))
    assert len(fig.axes) == 4 and "linear, $t=0$" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="one of the chain's steps"):
        fwd.plot_pixel_histograms(plt.figure(), chains, ts=(1,))
    fig = plt.figure()
    diffusions = {"linear": short, "cosine": Diffusion(schedule.cosine_betas(40))}
    fwd.plot_pixel_moments(fig, chains, diffusions)
    ax_m, ax_v, ax_x = fig.axes
    predicted = ax_v.lines[1].get_ydata()  # dashed: 1 - abar_t (1 - v0)
    assert np.allclose(
        predicted, fwd.variance_trajectory(chains["linear"].variances[0].item(), short)
    )
    no_shrink = ax_x.lines[0].get_ydata()
    assert no_shrink[-1] == pytest.approx(
        chains["linear"].variances[0].item() + short.betas.sum().item()
    )


def test_toy_figures(short):
    m = fwd.toy_mixture()
    g = torch.Generator().manual_seed(2)
    chain = fwd.run_chain(
        fwd.sample_mixture(m, 500, generator=g), short, ts=(0, 10, 40), generator=g
    )
    fig = plt.figure()
    fwd.plot_toy_marginals(fig, chain, short, m)
    assert len(fig.axes) == 3
    x, y = fig.axes[1].lines[0].get_data()
    assert np.allclose(y, fwd.mixture_marginal_pdf(torch.from_numpy(x), 10, short, m).numpy())
    paths = fwd.run_chain(
        fwd.sample_mixture(m, 5, generator=g), short, ts=range(short.T + 1), generator=g
    )
    fig = plt.figure()
    fwd.plot_marginal_heatmap(fig, short, m, paths=paths)
    assert len(fig.axes[0].lines) == 5
    with pytest.raises(ValueError, match="every step"):
        fwd.plot_marginal_heatmap(plt.figure(), short, m, paths=chain)
