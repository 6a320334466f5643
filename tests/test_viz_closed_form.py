"""Chapter 2's table and figures: the schedule summary, the drawings (checked on the drawn data) and
the explorer, live and static."""

import matplotlib

matplotlib.use("Agg")

import math  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ddpm_lib import Diffusion, schedule, viz  # noqa: E402
from ddpm_lib.losses import normal_kl  # noqa: E402
from ddpm_lib.viz import closed_form as cf  # noqa: E402

from .conftest import shown  # noqa: E402


@pytest.fixture(scope="module")
def pair():
    return viz.schedule_pair(1000)


@pytest.fixture
def digit():
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 1, 28, 28, generator=g) * 2 - 1, torch.randn(1, 1, 28, 28, generator=g)


def _image(ax) -> torch.Tensor:
    return torch.as_tensor(np.asarray(ax.get_images()[0].get_array()), dtype=torch.float32)


def _normal_pdf(v, var):
    return np.exp(-0.5 * v**2 / var) / math.sqrt(2 * math.pi * var)


# ------------------------------------------------------------------------------- the table
def test_summarise_schedule_matches_normal_kl(pair):
    linear = pair["linear"]
    x0 = torch.linspace(-1, 1, 2 * 28 * 28).reshape(2, 1, 28, 28)
    row = cf.summarise_schedule("linear", linear, x0, level=1e-2)
    ab = linear.alpha_bars[-1]
    kl = normal_kl(ab.sqrt() * x0.double(), torch.log(1 - ab), 0.0, 0.0)  # nats, elementwise
    bpd = kl.flatten(1).mean(1) / math.log(2)
    assert math.isclose(row.prior_bpd_mean, float(bpd.mean()), rel_tol=1e-9)
    assert math.isclose(row.prior_bpd_max, float(bpd.max()), rel_tol=1e-9)
    assert row.t_snr_below_1 == 260 and row.T == 1000 and row.alpha_bar_T == float(ab)
    assert row.fraction_snr_below == linear.fraction_snr_below(1e-2)
    short = cf.summarise_schedule("short", Diffusion(schedule.linear_betas(200)), x0)
    assert short.prior_bpd_mean > 1000 * row.prior_bpd_mean  # x_T remembers x0 with T = 200


def test_summary_table_has_one_row_per_schedule(pair):
    x0 = torch.zeros(1, 1, 4, 4)
    rows = [cf.summarise_schedule(name, d, x0) for name, d in pair.items()]
    table = cf.summary_table(rows, level=1e-2)
    assert table.startswith("<table>") and table.count("<tr>") == 3
    body = table.split("<tbody>")[1].split("</tr>")
    assert ">linear</td>" in body[0] and "260 (26% of T)" in body[0]
    assert ">cosine</td>" in body[1] and "497 (50% of T)" in body[1]
    assert "SNR &lt; 0.01" in table  # header text is escaped


def test_html_table_escapes_and_aligns():
    html = cf.html_table(("a<b", "n"), [("x & y", 3), ("z", 0.5)])
    assert ">a&lt;b</th>" in html and ">x &amp; y</td>" in html and html.count("<tr>") == 3
    assert 'white-space:nowrap; text-align:right">3</td>' in html
    assert 'white-space:nowrap">z</td>' in html  # text is not right-aligned


# --------------------------------------------------------------------------------------- figures
def test_draw_merge_draws_the_right_and_the_wrong_variance(fig):
    g = torch.Generator().manual_seed(5)
    w, z = 0.5 * torch.randn(2000, generator=g), torch.randn(2000, generator=g)
    cf.draw_merge(fig, w, z, 0.25, 1.0)
    (ax,) = fig.axes
    right, wrong = ax.lines
    assert np.allclose(right.get_ydata(), _normal_pdf(right.get_xdata(), 1.25))  # variances add
    assert np.allclose(wrong.get_ydata(), _normal_pdf(wrong.get_xdata(), 2.25))  # (0.5 + 1)^2
    lim = 4.5 * 1.5
    want, _ = np.histogram((w + z).double().numpy(), np.linspace(-lim, lim, 81), density=True)
    assert np.allclose([p.get_height() for p in ax.patches], want)


def test_draw_chain_vs_closed_form(fig):
    chain, closed = torch.randn(3, 100), torch.randn(3, 100)
    cf.draw_chain_vs_closed_form(fig, (1, 2, 3), chain, closed, pvalues=[0.5, 0.25, 0.125])
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == ["$t = 1$", "$t = 2$", "$t = 3$"]
    assert "0.25" in fig.axes[1].get_title()
    ax = fig.axes[2]
    lo, hi = (
        float(min(chain[2].min(), closed[2].min())),
        float(max(chain[2].max(), closed[2].max())),
    )
    bins = np.linspace(lo, hi, 61)
    want, _ = np.histogram(closed[2].double().numpy(), bins, density=True)
    assert np.allclose([p.get_height() for p in ax.patches[:60]], want)  # the one-shot bars
    fig.clear()
    four = torch.randn(4, 50)
    cf.draw_chain_vs_closed_form(fig, (1, 2, 3, 4), four, four)
    assert fig.axes[0].get_subplotspec().get_gridspec().get_geometry() == (2, 2)
    with pytest.raises(ValueError, match="len\\(ts\\) = 2"):
        cf.draw_chain_vs_closed_form(fig, (1, 2), chain, closed)
    with pytest.raises(ValueError, match="pvalues must hold len\\(ts\\) = 3"):
        cf.draw_chain_vs_closed_form(fig, (1, 2, 3), chain, closed, pvalues=[0.1])


def test_draw_snr(fig, pair):
    cf.draw_snr(fig, pair, level=1e-2)
    ax_a, ax_s = fig.axes
    for line, d in zip(ax_a.get_lines(), pair.values(), strict=True):
        assert torch.allclose(torch.as_tensor(line.get_ydata()), d.alpha_bars)
    curves = [line for line in ax_s.get_lines() if len(line.get_ydata()) == 1000]
    for line, d in zip(curves, pair.values(), strict=True):
        assert np.allclose(line.get_ydata(), d.snrs[1:].log().numpy())
    (band,) = ax_s.patches  # the "nearly pure noise" band ends at log(level)
    assert band.get_path().get_extents(band.get_patch_transform()).y1 == pytest.approx(
        math.log(1e-2)
    )
    with pytest.raises(ValueError, match="level must be a finite number > 0"):
        cf.draw_snr(plt.figure(), pair, level=0.0)


def test_draw_noising_grid_uses_the_closed_form(fig, pair, digit):
    x0, noise = digit
    cf.draw_noising_grid(fig, x0, noise, pair, ts=(0, 500, 1000))
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:3]] == ["$t = 0$", "$t = 500$", "$t = 1000$"]
    want = viz.to_display(pair["cosine"].q_sample(x0, 500, noise=noise))[0, 0]
    assert torch.allclose(_image(fig.axes[4]), want)  # cosine at t = 500
    with pytest.raises(ValueError, match="one image"):
        cf.draw_noising_grid(fig, torch.zeros(2, 1, 28, 28), torch.zeros(2, 1, 28, 28), pair, (1,))


# ------------------------------------------------------------------------ the animation / widget
def test_draw_side_by_side_panels(fig, pair, digit):
    x0, noise = digit
    cf.draw_side_by_side(fig, 250, "both", x0=x0, noise=noise, schedules=pair)
    assert len(fig.axes) == 3
    for ax, d in zip(fig.axes[:2], pair.values(), strict=True):
        assert torch.allclose(_image(ax), viz.to_display(d.q_sample(x0, 250, noise=noise))[0, 0])
    markers = [line for line in fig.axes[2].get_lines() if line.get_marker() == "o"]
    want = [(250, float(d.snrs[250].log())) for d in pair.values()]
    assert np.allclose([m.get_xydata()[0] for m in markers], want)
    fig.clear()
    cf.draw_side_by_side(fig, 0, "cosine", x0=x0, noise=noise, schedules=pair)
    assert len(fig.axes) == 2 and torch.allclose(_image(fig.axes[0]), viz.to_display(x0)[0, 0])
    with pytest.raises(ValueError, match="schedule must be one of"):
        cf.draw_side_by_side(fig, 10, "quadratic", x0=x0, noise=noise, schedules=pair)
    with pytest.raises(ValueError, match=r"\[0, 1000\]"):
        cf.draw_side_by_side(fig, 1001, "both", x0=x0, noise=noise, schedules=pair)


def test_live_explorer_redraws_with_new_controls(pair, digit, monkeypatch):
    calls, real = [], cf.draw_side_by_side

    def spy(fig, t, schedule, **kw):
        real(fig, t, schedule, **kw)
        calls.append((t, schedule, len(fig.axes)))

    monkeypatch.setattr(cf, "draw_side_by_side", spy)
    w = shown(cf.explore_side_by_side(*digit, pair, ts=(0, 100, 1000), static=False))
    assert calls[-1] == (0, "both", 3)
    w.children[0].value = 1000
    assert calls[-1] == (1000, "both", 3)
    w.children[1].value = "linear"
    assert calls[-1] == (1000, "linear", 2)
    assert list(w.children[1].options) == ["both", "linear", "cosine"]
    plt.close("all")


def test_static_explorer_is_an_animation_over_t(pair, digit):
    html = cf.explore_side_by_side(*digit, pair, ts=(0, 500, 1000), static=True).data
    assert "<script" in html and html.count("data:image/png") >= 3
    mixed = {"linear": pair["linear"], "short": Diffusion(schedule.linear_betas(10))}
    with pytest.raises(ValueError, match="same T"):
        cf.explore_side_by_side(*digit, mixed, ts=(0, 5))
