"""The schedule explorer: every drawn number is the library's, each control redraws headless, and
the static twin is an animation over T with both schedules, one frame per value."""

import matplotlib

matplotlib.use("Agg")

import math  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ddpm_lib import Diffusion, schedule  # noqa: E402
from ddpm_lib.bound import prior_bpd  # noqa: E402
from ddpm_lib.viz import schedules as sv  # noqa: E402
from ddpm_lib.viz.images import to_display  # noqa: E402

from .conftest import shown  # noqa: E402

pytestmark = pytest.mark.figsize(11, 3.4)


@pytest.fixture
def digit():
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 1, 28, 28, generator=g) * 2 - 1, torch.randn(1, 1, 28, 28, generator=g)


def _line(ax, label):
    (line,) = [h for h in ax.get_lines() if h.get_label() == label]
    return np.asarray(line.get_xdata(), dtype=float), np.asarray(line.get_ydata(), dtype=float)


def test_make_schedules_calls_the_library_constructors():
    both = sv.make_schedules("both", 50, 1e-3, 0.05, 0.02)
    assert list(both) == ["linear", "cosine"]
    assert torch.equal(both["linear"].betas, schedule.linear_betas(50, 1e-3, 0.05))
    assert torch.equal(both["cosine"].betas, schedule.cosine_betas(50, 0.02))
    assert list(sv.make_schedules("cosine", 50, 1e-3, 0.05, 0.02)) == ["cosine"]
    with pytest.raises(ValueError, match="kind"):
        sv.make_schedules("quadratic", 50, 1e-3, 0.05, 0.02)
    with pytest.raises(ValueError, match="beta_1"):
        sv.make_schedules("linear", 50, 1.5, 0.05, 0.02)


def test_step_at():
    assert sv.step_at(0.5, 1000) == 500 and sv.step_at(0.0, 7) == 0 and sv.step_at(1.0, 7) == 7
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sv.step_at(1.5, 10)


@pytest.mark.parametrize(
    "kind, T, beta_1, beta_T, s, t_over_T",
    [("both", 1000, 1e-4, 0.02, 0.008, 0.5), ("linear", 200, 1e-3, 0.05, 0.008, 0.3),
     ("cosine", 50, 1e-4, 0.02, 0.2, 1.0), ("both", 20, 3e-3, 0.2, 0.0, 0.0)],
)  # fmt: skip
def test_drawn_curves_are_the_librarys_numbers(fig, digit, kind, T, beta_1, beta_T, s, t_over_T):
    x0, noise = digit
    Ts = (10, 100, 1000)
    sv.draw_schedule_explorer(fig, kind, T, beta_1, beta_T, s, t_over_T, x0=x0, noise=noise, Ts=Ts)
    names = ["linear", "cosine"] if kind == "both" else [kind]
    ax_a, ax_s, ax_k, *images = fig.axes
    assert len(images) == len(names)
    t = round(t_over_T * T)
    for name, ax_img in zip(names, images, strict=True):
        d = Diffusion(
            schedule.linear_betas(T, beta_1, beta_T)
            if name == "linear"
            else schedule.cosine_betas(T, s)
        )
        x, y = _line(ax_a, name)
        assert np.allclose(x, np.arange(T + 1) / T) and np.array_equal(y, d.alpha_bars.numpy())
        x, y = _line(ax_s, name)
        assert np.array_equal(y, d.snrs[1:].numpy())
        x, y = _line(ax_k, name)
        want = [float(prior_bpd(Diffusion(
            schedule.linear_betas(TT, beta_1, beta_T) if name == "linear" else schedule.cosine_betas(TT, s)
        ), x0.double())[0]) for TT in Ts]  # fmt: skip
        assert list(x) == list(Ts) and np.allclose(y, want, rtol=1e-12, atol=0)
        here = float(prior_bpd(d, x0.double())[0])
        x, y = _line(ax_k, f"T = {T}: {here:.2g}")
        assert x[0] == T and math.isclose(y[0], here, rel_tol=1e-12)
        shown_image = torch.as_tensor(np.asarray(ax_img.get_images()[0].get_array()))
        want_image = to_display(d.q_sample(x0, t, noise=noise))[0, 0]
        assert torch.allclose(shown_image.float(), want_image) and f"t = {t}" in ax_img.get_title()
    assert ax_s.get_yscale() == "log" and ax_k.get_xscale() == "log"


def test_draw_refuses_a_batch_or_mismatched_noise(fig, digit):
    x0, noise = digit
    with pytest.raises(ValueError, match="one image"):
        sv.draw_schedule_explorer(fig, **sv.INITIAL, x0=x0.repeat(2, 1, 1, 1), noise=noise)
    with pytest.raises(ValueError, match="noise"):
        sv.draw_schedule_explorer(fig, **sv.INITIAL, x0=x0, noise=noise[..., :5])


def test_live_explorer_redraws_for_every_control(digit, monkeypatch):
    calls, real = [], sv.draw_schedule_explorer

    def spy(fig, kind, T, beta_1, beta_T, s, t_over_T, **kw):
        real(fig, kind, T, beta_1, beta_T, s, t_over_T, **kw)
        calls.append(((kind, T, beta_1, beta_T, s, t_over_T), len(fig.axes)))

    monkeypatch.setattr(sv, "draw_schedule_explorer", spy)
    w = shown(sv.explore_schedules(*digit, static=False))
    assert calls[-1] == (tuple(sv.INITIAL.values()), 5)  # starts at the published schedules
    controls = w.children[:-1]
    assert [c.description for c in controls] == [sv.LABELS[k] for k in sv.CONTROLS]
    expected = dict(sv.INITIAL)
    for control, (name, value, n_axes) in zip(
        controls,
        [("kind", "linear", 4), ("T", 200, 4), ("beta_1", 1e-3, 4), ("beta_T", 0.05, 4),
         ("s", 0.1, 4), ("t_over_T", 0.9, 4)],
        strict=True,
    ):  # fmt: skip
        control.value = value
        expected[name] = value
        assert calls[-1] == (tuple(expected.values()), n_axes), name
    controls[0].value = "cosine"  # s matters now
    assert calls[-1][0][0] == "cosine" and calls[-1][0][4] == 0.1
    plt.close("all")


def test_static_twin_is_an_animation_over_T_with_both_schedules(digit, monkeypatch):
    calls, real = [], sv.draw_schedule_explorer

    def spy(fig, kind, T, *args, **kw):
        real(fig, kind, T, *args, **kw)
        calls.append((kind, T))

    monkeypatch.setattr(sv, "draw_schedule_explorer", spy)
    controls = dict(sv.CONTROLS) | {"T": (50, 200, 1000)}
    html = sv.explore_schedules(*digit, controls=controls, static=True).data
    assert "<script" in html and html.count("data:image/png") == 3  # one frame per T
    assert sorted({T for _, T in calls}) == [50, 200, 1000] and {k for k, _ in calls} == {"both"}


def test_explorer_picks_the_static_twin_under_the_book_profile(digit, monkeypatch):
    monkeypatch.setenv("DDPM_BOOK_PROFILE", "ci")
    controls = dict(sv.CONTROLS) | {"T": (10, 20)}
    out = sv.explore_schedules(*digit, controls=controls)
    assert hasattr(out, "data") and out.data.count("data:image/png") == 2


def test_explorer_refuses_incomplete_controls_and_bad_initial_values(digit):
    with pytest.raises(ValueError, match="exactly"):
        sv.explore_schedules(*digit, controls={"T": (10, 20)})
    with pytest.raises(ValueError, match="not one of"):
        sv.explore_schedules(*digit, initial={"T": 333}, static=True)
