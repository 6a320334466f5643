"""The live/static pattern every chapter uses, and the layering: the exercises grade without
drawing."""

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ddpm_lib import book, viz  # noqa: E402

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


def test_draw_images_draws_one_row_with_titles():
    x = torch.linspace(-1, 1, 3 * 28 * 28).reshape(3, 1, 28, 28)
    fig = plt.figure()
    viz.draw_images(fig, x, titles=["a", "b", "c"])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]
    assert torch.allclose(torch.as_tensor(fig.axes[2].images[0].get_array()), (x[2, 0] + 1) / 2)
    with pytest.raises(ValueError, match="3 images but 2 titles"):
        viz.draw_images(fig, x, titles=["a", "b"])
    plt.close(fig)


@pytest.mark.slow  # a fresh interpreter importing torch: ~2.5 s of CPU
def test_exercises_import_neither_matplotlib_nor_viz():
    """In a fresh interpreter (this one has matplotlib loaded already): grading a learner's
    function needs no plotting library, so the self-checks work where matplotlib is missing.
    The fast suite reads the same from the source (test_architecture.py, by import statements
    at module level); this run also catches a third-party package that imports matplotlib."""
    code = (
        "import sys, ddpm_lib.exercises\n"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'matplotlib' or m.startswith('ddpm_lib.viz')]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_control_with_one_value_is_held_fixed_and_not_shown():
    from ddpm_lib.viz import make_widget

    seen = []
    w = make_widget(lambda fig, t, schedule: seen.append((t, schedule)),
                    {"t": [0, 5, 10], "schedule": ["linear"]})  # fmt: skip
    assert [c.description for c in w.children[:-1]] == ["t"]
    w.children[0].value = 5
    assert seen[-1] == (5, "linear")
