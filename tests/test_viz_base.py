"""The live/static pattern every chapter uses, and the exercise harness."""

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from ddpm_lib import book, viz  # noqa: E402
from ddpm_lib.exercises._check import Case, run_check  # noqa: E402

from .conftest import shown  # noqa: E402


def _spy():
    calls = []

    def draw(fig, t, schedule):
        calls.append((t, schedule))
        ax = fig.add_subplot(1, 1, 1)
        ax.plot([0, t], [0, 1])
        ax.set_title(schedule)

    return draw, calls


def test_live_widget_calls_draw_with_the_new_value():
    draw, calls = _spy()
    controls = {"t": [1, 10, 100], "schedule": ["linear", "cosine"]}
    w = shown(viz.explore(draw, controls, static=False))
    assert calls[-1] == (1, "linear")  # interactive draws once when shown
    w.children[0].value = 100
    assert calls[-1] == (100, "linear")
    w.children[1].value = "cosine"
    assert calls[-1] == (100, "cosine")


def test_static_twin_is_a_js_animation_over_one_parameter():
    draw, calls = _spy()
    html = viz.explore(
        draw, {"t": [1, 10, 100], "schedule": ["linear"]}, animate_over="t", static=True
    )
    text = html.data
    assert "<script" in text and "anim" in text.lower() and text.count("data:image/png") >= 3
    assert sorted({c[0] for c in calls}) == [1, 10, 100]


def test_explore_picks_the_front_end_from_the_profile(monkeypatch):
    draw, _ = _spy()
    monkeypatch.setenv("DDPM_BOOK_PROFILE", "ci")
    assert hasattr(viz.explore(draw, {"t": [1, 2], "schedule": ["a"]}), "data")
    monkeypatch.delenv("DDPM_BOOK_PROFILE")
    assert hasattr(viz.explore(draw, {"t": [1, 2], "schedule": ["a"]}), "children")


def test_explore_refuses_bad_controls():
    draw, _ = _spy()
    with pytest.raises(ValueError, match="animate_over must be one of"):
        viz.explore(draw, {"t": [1]}, animate_over="s")
    with pytest.raises(ValueError, match="has no values"):
        viz.explore(draw, {"t": []})


def test_profile(monkeypatch):
    monkeypatch.delenv("DDPM_BOOK_PROFILE", raising=False)
    assert book.profile() == "default" and book.pick(100, 10) == 100 and not book.static_output()
    monkeypatch.setenv("DDPM_BOOK_PROFILE", "ci")
    assert book.pick(100, 10) == 10 and book.static_output()
    monkeypatch.setenv("DDPM_BOOK_PROFILE", "fast")
    with pytest.raises(ValueError, match="must be one of"):
        book.profile()


def test_image_grid():
    x = torch.linspace(-1, 1, 5 * 28 * 28).reshape(5, 1, 28, 28)
    g = viz.image_grid(x, nrow=3, pad=1)
    assert g.shape == (2 * 29 - 1, 3 * 29 - 1) and float(g.min()) == 0 and float(g.max()) == 1
    assert torch.allclose(g[:28, :28], (x[0, 0] + 1) / 2)
    with pytest.raises(ValueError, match="shape"):
        viz.image_grid(torch.zeros(28, 28))


def test_run_check_reports_wrong_and_unimplemented_functions():
    cases = [Case((torch.arange(4.0),), "a ramp")]
    assert run_check("double", lambda x: 2 * x, lambda x: 2 * x, cases, "multiply").passed
    wrong = run_check("double", lambda x: x + 2, lambda x: 2 * x, cases, "multiply by two")
    assert not wrong and "a ramp" in wrong.message and "multiply by two" in wrong.message

    def todo(x):
        raise NotImplementedError

    assert "not implemented" in run_check("double", todo, lambda x: 2 * x, cases, "").message
    assert "raised" in run_check("double", lambda x: x[9], lambda x: 2 * x, cases, "").message
    shape = run_check("double", lambda x: x[:2], lambda x: 2 * x, cases, "")
    assert not shape and "shape" in shape.message
    assert "✘" in wrong._repr_html_()


def test_run_check_compares_plain_numbers():
    cases = [Case((3,), "three")]
    assert run_check("sq", lambda n: torch.tensor(n * n), lambda n: n * n, cases, "").passed
    bad = run_check("sq", lambda n: torch.ones(2), lambda n: n * n, cases, "")
    assert not bad and "single number" in bad.message
    assert not run_check("half", lambda n: n / 3, lambda n: n / 2, cases, "")
