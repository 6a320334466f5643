"""Chapter 5's pictures: the score fields are the library's numbers (exact mixture score and
score_from_eps of the model), the Langevin and Tweedie drawings show what they are given, every
explorer redraws live on its slider and has a static animation twin."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ddpm_lib import sample, toy, viz  # noqa: E402
from ddpm_lib.viz import score as S  # noqa: E402

from .conftest import image_of, shown  # noqa: E402


@pytest.fixture(scope="module")
def mixture():
    return toy.two_d_mixture()


def _scaled(exact):
    return lambda x, t: 0.5 * exact(x, t)


@pytest.fixture(scope="module")
def fields(d, mixture):
    return S.score_fields(_scaled(mixture.eps_model(d)), d, mixture, [1, 10, 40], grid=5,
                          density_grid=11)  # fmt: skip


def _spy(monkeypatch, name: str, param: str = "t") -> list:
    """Wrap ``S.<name>`` so that every call records the value of its slider parameter."""
    calls, real = [], getattr(S, name)

    def spy(fig, **kw):
        real(fig, **kw)
        calls.append(kw[param])

    monkeypatch.setattr(S, name, spy)
    return calls


def test_score_fields_are_the_library_numbers(d, mixture, fields):
    assert fields.ts.tolist() == [1, 10, 40]
    assert fields.exact.shape == fields.network.shape == (3, 5, 5, 2)
    assert fields.density.shape == (3, 11, 11) and fields.coords.shape == (5,)
    # the point (x, y) = (coords[j], coords[i]) sits at [i, j]
    i, j = 1, 3
    p = torch.tensor([[fields.coords[j], fields.coords[i]]], dtype=torch.float64)
    q_t = mixture.noised(d.alpha_bars[10])
    assert torch.allclose(fields.exact[1, i, j], q_t.score(p)[0])
    assert torch.allclose(fields.network[1], 0.5 * fields.exact[1])  # eps halved = score halved
    assert torch.allclose(fields.density[1, 0, 0], q_t.log_prob(p.new_tensor([[-1.5, -1.5]])).exp())


def test_score_fields_bad_input(d, mixture):
    model = mixture.eps_model(d)
    with pytest.raises(ValueError, match="2-D"):
        S.score_fields(model, d, toy.three_bumps(), [1])
    with pytest.raises(ValueError, match="strictly increasing"):
        S.score_fields(model, d, mixture, [5, 1])
    with pytest.raises(ValueError, match="grid"):
        S.score_fields(model, d, mixture, [5], grid=1)
    with pytest.raises(ValueError, match="lim"):
        S.score_fields(model, d, mixture, [5], lim=0)


def test_draw_score_fields_and_explorer(fields, fig, monkeypatch):
    S.draw_score_fields(fig, 10, fields=fields)
    assert len(fig.axes) == 2
    q_exact, q_net = (next(c for c in ax.collections if hasattr(c, "U")) for ax in fig.axes)
    u_e, v_e, u_n, v_n = (np.asarray(a) for a in (q_exact.U, q_exact.V, q_net.U, q_net.V))
    cell = float(fields.coords[1] - fields.coords[0])
    assert np.hypot(u_e, v_e).max() <= 1.5 * cell + 1e-9  # long arrows are shortened
    # one arrow scale for both panels: where no arrow was shortened the network's are half
    short = np.hypot(u_e, v_e) < 1.5 * cell - 1e-9
    assert short.sum() > 5 and np.allclose(u_n[short], 0.5 * u_e[short])
    assert np.allclose(np.arctan2(v_n, u_n), np.arctan2(v_e, u_e))  # same directions everywhere
    with pytest.raises(ValueError, match=r"one of the steps \[1, 10, 40\], got 7"):
        S.draw_score_fields(fig, 7, fields=fields)
    html = S.explore_score_fields(fields, static=True).data
    assert "<script" in html and html.count("data:image/png") == 3
    calls = _spy(monkeypatch, "draw_score_fields")
    w = shown(S.explore_score_fields(fields, static=False))
    w.children[0].value = 40
    assert calls[-1] == 40


@pytest.fixture(scope="module")
def trajectory(mixture):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    rec = sample.Recorder()
    end = sample.langevin(mixture.score, x, step_size=0.01, steps=12, generator=gen, callback=rec)
    return torch.cat([rec.x_t, end[None]])


def test_draw_langevin_shows_the_chains_at_iteration_i(trajectory, mixture, fig):
    S.draw_langevin(fig, 7, trajectory=trajectory, mixture=mixture)
    dots = fig.axes[0].collections[-1].get_offsets()
    assert np.allclose(np.asarray(dots), trajectory[7].numpy())
    with pytest.raises(ValueError, match=r"i must be in \[0, 12\]"):
        S.draw_langevin(fig, 13, trajectory=trajectory, mixture=mixture)
    with pytest.raises(ValueError, match="trajectory"):
        S.draw_langevin(fig, 0, trajectory=trajectory[0], mixture=mixture)


def test_explore_langevin_live_and_static(trajectory, mixture, monkeypatch):
    html = S.explore_langevin(trajectory, mixture, n_frames=4, static=True).data
    assert "<script" in html and html.count("data:image/png") == 4
    calls = _spy(monkeypatch, "draw_langevin", "i")
    w = shown(S.explore_langevin(trajectory, mixture, n_frames=4, static=False))
    assert calls[-1] == 0
    w.children[0].value = 12  # the last iteration is always a frame
    assert calls[-1] == 12


def _model(x, t):
    return 0.5 * x * (t.to(x.dtype) / 40).reshape(-1, 1, 1, 1)


@pytest.fixture(scope="module")
def tweedie(d):
    g = torch.Generator().manual_seed(0)
    x0 = (torch.rand(3, 1, 8, 8, generator=g) > 0.7).float() * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    return x0, noise, S.tweedie_frames(d, _model, x0, noise, [1, 20, 40])


def test_tweedie_frames_are_the_library_formulas(d, tweedie):
    x0, noise, frames = tweedie
    assert frames.x_t.shape == frames.x0_pred.shape == frames.score_norm.shape == (3, 3, 1, 8, 8)
    x_t = d.q_sample(x0, 20, noise=noise)
    eps = _model(x_t, torch.full((3,), 20))
    assert torch.allclose(frames.x_t[1], x_t)
    assert torch.allclose(frames.score_norm[1], (eps / (1 - d.alpha_bars[20]).sqrt()).abs().float())
    # Tweedie's formula with that score is the eps-form x0_hat (before the display clamp)
    score = d.score_from_eps(eps, 20)
    x0_tweedie = toy.tweedie_x0(x_t, d.alpha_bars[20], score).clamp(-1, 1)
    assert torch.allclose(frames.x0_pred[1], x0_tweedie.float(), atol=1e-5)


def test_draw_and_explore_tweedie(tweedie, fig, monkeypatch):
    _, _, frames = tweedie
    S.draw_tweedie(fig, 20, frames=frames, n_show=2)
    assert len(fig.axes) == 6  # 3 rows x 2 digits, row by row
    assert np.allclose(image_of(fig.axes[3]), viz.to_display(frames.x0_pred[1, 1, 0]).numpy())
    assert np.allclose(image_of(fig.axes[4]), frames.score_norm[1, 0, 0].numpy())
    html = S.explore_tweedie(frames, n_show=2, static=True).data
    assert "<script" in html and html.count("data:image/png") == 3
    calls = _spy(monkeypatch, "draw_tweedie")
    w = shown(S.explore_tweedie(frames, static=False))
    w.children[0].value = 40
    assert calls[-1] == 40
    with pytest.raises(ValueError, match="n_show"):
        S.explore_tweedie(frames, n_show=0)
