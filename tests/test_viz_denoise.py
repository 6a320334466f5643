"""Chapter 4's denoising widgets: the frames are the library's q_sample and predict_x0_from_eps,
the drawings show them, the live widget redraws on a new t, the static twin is an animation."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ddpm_lib import sample, viz  # noqa: E402
from ddpm_lib.viz import denoise as D  # noqa: E402

from .conftest import image_of, shown  # noqa: E402


def _model(x, t):
    """A stand-in eps-model that depends on x_t and t."""
    return 0.5 * x * (t.to(x.dtype) / 40).reshape(-1, 1, 1, 1)


@pytest.fixture(scope="module")
def digits():
    g = torch.Generator().manual_seed(0)
    x0 = (torch.rand(5, 1, 8, 8, generator=g) > 0.7).float() * 2 - 1
    return x0, torch.randn(x0.shape, generator=g)


@pytest.fixture(scope="module")
def frames(d, digits):
    return D.denoise_steps(d, _model, *digits, ts=[1, 10, 25, 40])


@pytest.fixture(scope="module")
def trajectory(d):
    g = torch.Generator().manual_seed(3)
    rec = sample.Recorder(keep=[40, 20, 5, 1])
    out = sample.ancestral(_model, d, n=3, shape=(1, 8, 8), generator=g, callback=rec)
    return rec, out


def test_denoise_steps_are_the_library_formulas(d, digits, frames):
    x0, noise = digits
    assert frames.steps.tolist() == [1, 10, 25, 40]
    assert frames.x_t.shape == frames.x0_pred.shape == (4, 5, 1, 8, 8)
    x_t = d.q_sample(x0, 25, noise=noise)
    assert torch.allclose(frames.x_t[2], x_t)
    eps = _model(x_t, torch.full((5,), 25))
    assert torch.allclose(frames.x0_pred[2], d.predict_x0_from_eps(x_t, 25, eps).clamp(-1, 1))
    # an oracle that knows the noise recovers x0 exactly at every step
    exact = D.denoise_steps(d, lambda x, t: noise, x0, noise, [3, 40])
    assert torch.allclose(exact.x0_pred, x0.expand(2, -1, -1, -1, -1), atol=1e-4)


def test_denoise_steps_bad_input(d, digits):
    x0, noise = digits
    with pytest.raises(ValueError, match="strictly increasing"):
        D.denoise_steps(d, _model, x0, noise, [10, 5])
    with pytest.raises(ValueError, match=r"in \[1, 40\], got 0"):
        D.denoise_steps(d, _model, x0, noise, [0, 5])
    with pytest.raises(ValueError, match="noise must have x0's shape"):
        D.denoise_steps(d, _model, x0, noise[:2], [5])
    with pytest.raises(ValueError, match=r"batch of images \[B, C, H, W\]"):
        D.denoise_steps(d, _model, x0[:, 0], noise[:, 0], [5])


def test_draw_denoising_shows_x_t_over_x0_hat(frames, fig):
    D.draw_denoising(fig, 25, frames=frames, n_show=3)
    assert len(fig.axes) == 6  # 2 rows x 3 digits
    assert np.allclose(image_of(fig.axes[1]), viz.to_display(frames.x_t[2, 1, 0]).numpy())
    assert np.allclose(image_of(fig.axes[4]), viz.to_display(frames.x0_pred[2, 1, 0]).numpy())
    with pytest.raises(ValueError, match=r"one of the kept steps \[1, 10, 25, 40\], got 7"):
        D.draw_denoising(fig, 7, frames=frames)
    with pytest.raises(ValueError, match="n_show must be an int >= 1"):
        D.explore_denoising(frames, n_show=0)


def test_live_denoising_widget_redraws_on_t(frames, monkeypatch):
    calls = []
    real = D.draw_denoising

    def spy(fig, t, **kw):
        real(fig, t, **kw)
        calls.append((t, image_of(fig.axes[len(fig.axes) // 2])))

    monkeypatch.setattr(D, "draw_denoising", spy)
    w = shown(D.explore_denoising(frames, n_show=2, static=False))
    assert calls[-1][0] == 1
    w.children[0].value = 40
    assert calls[-1][0] == 40
    assert np.allclose(calls[-1][1], viz.to_display(frames.x0_pred[3, 0, 0]).numpy())


def test_static_denoising_is_an_animation_over_t(frames):
    html = D.explore_denoising(frames, n_show=2, static=True).data
    assert "<script" in html and html.count("data:image/png") == 4


def test_trajectory_widget_live_and_static(trajectory, monkeypatch, fig):
    rec, samples = trajectory
    D.draw_trajectory(fig, 20, trajectory=rec, samples=samples, index=2)
    k = rec.t.tolist().index(20)
    x0_shown = rec.x0_hat[k, 2, 0].clamp(-1, 1)  # the prediction, clamped for display
    assert np.allclose(image_of(fig.axes[0]), viz.to_display(rec.x_t[k, 2, 0]).numpy())
    assert np.allclose(image_of(fig.axes[1]), viz.to_display(x0_shown).numpy())
    assert np.allclose(image_of(fig.axes[2]), viz.to_display(samples[2, 0]).numpy())
    html = D.explore_trajectory(rec, samples, static=True).data
    assert "<script" in html and html.count("data:image/png") == 4
    calls = []
    real = D.draw_trajectory
    monkeypatch.setattr(D, "draw_trajectory", lambda fig, t, **kw: (real(fig, t, **kw),
                                                                    calls.append(t)))  # fmt: skip
    w = shown(D.explore_trajectory(rec, samples, index=1, static=False))
    assert calls[-1] == 40  # starts at x_T: the way down
    w.children[0].value = 5
    assert calls[-1] == 5
    with pytest.raises(ValueError, match=r"index must be an int in \[0, 2\], got 3"):
        D.explore_trajectory(rec, samples, index=3)
    with pytest.raises(ValueError, match="one of the kept steps"):
        D.draw_trajectory(fig, 7, trajectory=rec, samples=samples)
