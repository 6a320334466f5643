"""Chapter 2 helpers: the chain against the closed form, schedule summaries, figures and explorer."""

import matplotlib

matplotlib.use("Agg")

import math  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

from ddpm_lib import Diffusion, schedule  # noqa: E402
from ddpm_lib.losses import normal_kl  # noqa: E402
from ddpm_lib.viz import schedules as vs  # noqa: E402

from .conftest import shown  # noqa: E402


@pytest.fixture(scope="module")
def pair():
    return vs.two_schedules(1000)


@pytest.fixture
def digit():
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 1, 28, 28, generator=g) * 2 - 1, torch.randn(1, 1, 28, 28, generator=g)


@pytest.fixture
def fig():
    f = plt.figure()
    yield f
    plt.close(f)


# ------------------------------------------------------------------------------------- run_chain
def test_run_chain_is_q_step_iterated_and_its_merged_noise_reproduces_it(linear):
    """Same generator state -> the same draws as a hand-written loop of q_step; and Eq. 4 with the
    tracked noise gives the chain's state to round-off (the derivation, sample by sample)."""
    x0 = torch.randn(6, 1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    run = vs.run_chain(linear, x0, (1, 7, 40), torch.Generator().manual_seed(2))
    g, x = torch.Generator().manual_seed(2), x0
    for t in range(1, 41):
        x = linear.q_step(x, t, noise=torch.randn(x0.shape, generator=g, dtype=x0.dtype))
        if t in (1, 7, 40):
            assert torch.equal(run.x_t[run.ts.index(t)], x)
    assert run.ts == (1, 7, 40) and run.x_t.shape == run.eps_bar.shape == (3, 6, 1, 3, 3)
    for i, t in enumerate(run.ts):
        assert torch.allclose(linear.q_sample(x0, t, noise=run.eps_bar[i]), run.x_t[i], atol=1e-12)
    # At t = 1 the merged noise is the single step's noise itself.
    g = torch.Generator().manual_seed(2)
    assert torch.allclose(run.eps_bar[0], torch.randn(x0.shape, generator=g, dtype=x0.dtype))


def test_run_chain_merged_noise_is_standard_normal(cosine):
    x0 = torch.full((20_000, 1), 0.7, dtype=torch.float64)
    run = vs.run_chain(cosine, x0, (50, 600), torch.Generator().manual_seed(3))
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
    [((), ValueError, "at least one"), ((0, 5), ValueError, r"\[1, 1000\]"),
     ((5, 1001), ValueError, r"\[1, 1000\]"), ((5, 5), ValueError, "strictly increasing"),
     ((1.5,), TypeError, "must be an int")],
)  # fmt: skip
def test_run_chain_refuses_bad_steps(linear, ts, err, match):
    with pytest.raises(err, match=match):
        vs.run_chain(linear, torch.zeros(2, 3), ts)


def test_run_chain_refuses_non_tensor(linear):
    with pytest.raises(TypeError, match="x0"):
        vs.run_chain(linear, [0.0, 1.0], (1,))


# ------------------------------------------------------------------------------ compare_samples
def test_compare_samples_accepts_same_law_and_rejects_a_shift():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(5000, generator=g), torch.randn(5000, generator=g)
    same = vs.compare_samples(a, b)
    assert same.ks_pvalue > 1e-3 and abs(same.mean_a - float(a.mean())) < 1e-9
    assert math.isclose(same.var_b, float(b.double().var()), rel_tol=1e-9)
    shifted = vs.compare_samples(a, b + 0.3)
    assert shifted.ks_pvalue < 1e-10 and shifted.ks_statistic > same.ks_statistic
    with pytest.raises(ValueError, match="at least 2"):
        vs.compare_samples(a, torch.zeros(1))


# ------------------------------------------------------------------------- schedule quantities
def test_first_t_snr_below_is_the_first_crossing(pair):
    for _, d in pair:
        for level in (1.0, 0.1, 1e-3):
            t = vs.first_t_snr_below(d, level)
            assert float(d.snr(t)) < level and (t == 1 or float(d.snr(t - 1)) >= level)
    linear, cosine = (s.diffusion for s in pair)
    # SNR < 1 is abar_t < 1/2: the linear schedule crosses early, the cosine one near T / 2.
    assert vs.first_t_snr_below(linear) == 260 and vs.first_t_snr_below(cosine) == 497
    assert float(linear.alpha_bars[260]) < 0.5 <= float(linear.alpha_bars[259])


def test_first_t_snr_below_refuses_unreachable_and_bad_levels():
    short = Diffusion(schedule.linear_betas(10, 1e-4, 0.02))
    with pytest.raises(ValueError, match="never falls below"):
        vs.first_t_snr_below(short, 1.0)
    for bad in (0, -1.0, True, "1"):
        with pytest.raises(ValueError, match="level must be a number > 0"):
            vs.first_t_snr_below(short, bad)


def test_fraction_snr_below_counts_steps(pair):
    linear, cosine = (s.diffusion for s in pair)
    snr = linear.snrs[1:]
    assert vs.fraction_snr_below(linear, 1e-2) == float((snr < 1e-2).sum()) / 1000
    # The chapter's claim: the linear chain spends about a third of its steps below SNR 0.01.
    assert 0.3 < vs.fraction_snr_below(linear, 1e-2) < 0.35
    assert vs.fraction_snr_below(cosine, 1e-2) < 0.1
    assert vs.fraction_snr_below(linear, 1e9) == 1.0 and vs.fraction_snr_below(linear, 1e-30) == 0.0


def test_summarise_schedule_matches_normal_kl(pair):
    linear = pair[0].diffusion
    x0 = torch.linspace(-1, 1, 2 * 28 * 28).reshape(2, 1, 28, 28)
    row = vs.summarise_schedule("linear", linear, x0, level=1e-2)
    ab = linear.alpha_bars[-1]
    kl = normal_kl(ab.sqrt() * x0.double(), torch.log(1 - ab), 0.0, 0.0)  # nats, elementwise
    bpd = kl.flatten(1).mean(1) / math.log(2)
    assert math.isclose(row.prior_bpd_mean, float(bpd.mean()), rel_tol=1e-9)
    assert math.isclose(row.prior_bpd_max, float(bpd.max()), rel_tol=1e-9)
    assert row.t_snr_below_1 == 260 and row.T == 1000 and row.alpha_bar_T == float(ab)
    short = vs.summarise_schedule("short", Diffusion(schedule.linear_betas(200)), x0)
    assert short.prior_bpd_mean > 1000 * row.prior_bpd_mean  # x_T remembers x0 with T = 200


def test_summary_table_has_one_row_per_schedule(pair):
    x0 = torch.zeros(1, 1, 4, 4)
    rows = [vs.summarise_schedule(name, d, x0) for name, d in pair]
    table = vs.summary_table(rows, level=1e-2)
    assert table.startswith("<table>") and table.count("<tr>") == 3
    body = table.split("<tbody>")[1].split("</tr>")
    assert ">linear</td>" in body[0] and "260 (26% of T)" in body[0]
    assert ">cosine</td>" in body[1] and "497 (50% of T)" in body[1]
    assert "SNR &lt; 0.01" in table  # header text is escaped


def test_html_table_escapes_and_aligns():
    html = vs.html_table(("a<b", "n"), [("x & y", 3), ("z", 0.5)])
    assert ">a&lt;b</th>" in html and ">x &amp; y</td>" in html and html.count("<tr>") == 3
    assert 'white-space:nowrap; text-align:right">3</td>' in html
    assert 'white-space:nowrap">z</td>' in html  # text is not right-aligned


# --------------------------------------------------------------------------------------- figures
def test_draw_merge(fig):
    g = torch.Generator().manual_seed(5)
    w, z = 0.5 * torch.randn(2000, generator=g), torch.randn(2000, generator=g)
    vs.draw_merge(fig, w, z, 0.25, 1.0)
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "variance 1.2500" in labels[1] and "variance 2.2500" in labels[2]


def test_draw_chain_vs_closed_form(fig):
    chain, closed = torch.randn(3, 100), torch.randn(3, 100)
    cmp = [vs.compare_samples(a, b) for a, b in zip(chain, closed, strict=True)]
    vs.draw_chain_vs_closed_form(fig, (1, 2, 3), chain, closed, cmp)
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == ["$t = 1$", "$t = 2$", "$t = 3$"]
    assert f"KS p = {cmp[0].ks_pvalue:.2f}" in fig.axes[0].get_title()
    fig.clear()
    four = torch.randn(4, 50)
    vs.draw_chain_vs_closed_form(fig, (1, 2, 3, 4), four, four)
    assert fig.axes[0].get_subplotspec().get_gridspec().get_geometry() == (2, 2)
    with pytest.raises(ValueError, match="len\\(ts\\) = 2"):
        vs.draw_chain_vs_closed_form(fig, (1, 2), chain, closed)


def test_draw_schedules(fig, pair):
    vs.draw_schedules(fig, pair, level=1e-2)
    ax_a, ax_s = fig.axes
    (lin_line, cos_line) = ax_a.get_lines()
    assert torch.allclose(torch.as_tensor(lin_line.get_ydata()), pair[0].diffusion.alpha_bars)
    legend = [t.get_text() for t in ax_s.get_legend().get_texts()]
    assert legend[0].startswith("linear: 33%") and legend[1].startswith("cosine: 6%")


def test_draw_noising_grid_uses_the_closed_form(fig, pair, digit):
    x0, noise = digit
    vs.draw_noising_grid(fig, x0, noise, pair, ts=(0, 500, 1000))
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:3]] == ["$t = 0$", "$t = 500$", "$t = 1000$"]
    shown = fig.axes[4].get_images()[0].get_array()  # cosine at t = 500
    want = vs.to_display(pair[1].diffusion.q_sample(x0, 500, noise=noise))[0, 0]
    assert torch.allclose(torch.as_tensor(shown.data, dtype=torch.float32), want)
    with pytest.raises(ValueError, match="one image"):
        vs.draw_noising_grid(fig, torch.zeros(2, 1, 28, 28), torch.zeros(2, 1, 28, 28), pair, (1,))


# ------------------------------------------------------------------------ the animation / widget
def _spied(x0, noise, pair):
    draw, calls = vs.side_by_side_draw(x0, noise, pair), []

    def spy(fig, t, schedule):
        draw(fig, t, schedule)
        calls.append((t, schedule, [ax.get_title() for ax in fig.axes]))

    return spy, calls


def test_side_by_side_draw_panels(fig, pair, digit):
    draw = vs.side_by_side_draw(*digit, pair)
    draw(fig, 250, "both")
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 3 and titles[0].startswith("linear") and titles[1].startswith("cosine")
    assert "0.724" in titles[0] and "t = 250" in titles[2]
    fig.clear()
    draw(fig, 0, "cosine")
    assert len(fig.axes) == 2 and fig.axes[0].get_title().startswith("cosine")
    with pytest.raises(ValueError, match="schedule must be one of"):
        draw(fig, 10, "quadratic")
    with pytest.raises(ValueError, match=r"\[0, 1000\]"):
        draw(fig, 1001, "both")


def test_live_explorer_redraws_with_new_controls(pair, digit, monkeypatch):
    spy, calls = _spied(*digit, pair)
    monkeypatch.setattr(vs, "side_by_side_draw", lambda *a: spy)
    w = shown(vs.explore_side_by_side(*digit, pair, ts=(0, 100, 1000), static=False))
    assert calls[-1][:2] == (0, "both")
    w.children[0].value = 1000
    assert calls[-1][:2] == (1000, "both") and "t = 1000" in calls[-1][2][-1]
    w.children[1].value = "linear"
    assert calls[-1][:2] == (1000, "linear") and len(calls[-1][2]) == 2
    assert list(w.children[1].options) == ["both", "linear", "cosine"]
    plt.close("all")


def test_static_explorer_is_an_animation_over_t(pair, digit):
    html = vs.explore_side_by_side(*digit, pair, ts=(0, 500, 1000), static=True).data
    assert "<script" in html and html.count("data:image/png") >= 3
    with pytest.raises(ValueError, match="same T"):
        vs.side_by_side_draw(
            *digit, (pair[0], vs.NamedSchedule("short", Diffusion(schedule.linear_betas(10))))
        )
