"""Chapter 6's picture: the frames are the library's numbers (the exact marginal and score of the
noised mixture, the network's score, the paths of sample.reverse_sde and of the probability-flow
ODE from one x(1)); the drawing shows the paths up to the slider's time; the explorer redraws live
and has a static animation twin."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ddpm_lib import sample, toy  # noqa: E402
from ddpm_lib.models import CallCounter  # noqa: E402
from ddpm_lib.sde import VPSDE, solve_flow  # noqa: E402
from ddpm_lib.viz import sde as V  # noqa: E402

from .conftest import shown  # noqa: E402

TAUS = [0.0, 0.5, 1.0, 0.2]


@pytest.fixture(scope="module")
def mixture():
    return toy.two_d_mixture()


@pytest.fixture(scope="module")
def frames(d, mixture):
    gen = torch.Generator().manual_seed(3)
    return V.sde_frames(mixture.eps_model(d), d, mixture, TAUS, n_paths=3, grid=4,
                        density_grid=9, steps=8, rtol=1e-6, atol=1e-6, generator=gen)  # fmt: skip


def test_frames_are_the_exact_marginal_and_score(d, mixture, frames):
    sde = VPSDE(d)
    assert frames.taus.tolist() == [1.0, 0.5, 0.2, 0.0]  # the order the reverse processes run
    g, m = frames.coords.numel(), frames.density_coords.numel()
    assert frames.exact.shape == frames.network.shape == (4, g, g, 2)
    assert frames.density.shape == (4, m, m)
    k = 2  # tau = 0.2
    q = mixture.noised(sde.alpha_bar(0.2))
    assert float(frames.alpha_bars[k]) == pytest.approx(float(sde.alpha_bar(0.2)), rel=1e-12)
    pt = torch.stack([frames.coords[1], frames.coords[3]])[None]  # (x, y) -> [row 3, col 1]
    assert torch.allclose(frames.exact[k, 3, 1], q.score(pt)[0], rtol=1e-12)
    fpt = torch.stack([frames.density_coords[2], frames.density_coords[5]])[None]
    assert torch.allclose(frames.density[k, 5, 2], q.log_prob(fpt).exp(), rtol=1e-12)
    # the exact ε-model gives the exact score at every continuous time (tau = 0: undefined, NaN)
    assert torch.allclose(frames.network[:3], frames.exact[:3], rtol=1e-8, atol=1e-8)
    assert frames.network[3].isnan().all() and not frames.exact[3].isnan().any()
    assert torch.allclose(frames.density[3], mixture.log_prob(_grid(frames)).exp().reshape(m, m))


def _grid(frames):
    yy, xx = torch.meshgrid(frames.density_coords, frames.density_coords, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)


def test_paths_are_the_library_samplers_from_one_start(d, mixture, frames):
    model = mixture.eps_model(d)
    assert frames.path_taus.tolist() == [k / 8 for k in range(8, -1, -1)]
    assert frames.sde_paths.shape == frames.ode_paths.shape == (9, 3, 2)
    gen = torch.Generator().manual_seed(3)
    x1 = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    assert torch.equal(frames.sde_paths[0], x1) and torch.equal(frames.ode_paths[0], x1)
    sde_end = sample.reverse_sde(model, d, x_T=x1, steps=8, generator=gen, clip_samples=False)
    assert torch.equal(frames.sde_paths[-1], sde_end)
    counted = CallCounter(model)
    ode = sample.probability_flow(counted, d, x_T=x1, rtol=1e-6, atol=1e-6, clip_samples=False)
    assert torch.equal(frames.ode_paths[-1], ode) and frames.ode_nfe == counted.calls
    sde = VPSDE(d)
    mid = solve_flow(lambda x, tau: sde.eps(model, x, tau), sde, x1, 1.0, 0.5, 1e-6, 1e-6).x
    assert torch.allclose(frames.ode_paths[4], mid, atol=1e-4)  # interpolant vs a solve to 0.5
    # the SDE path moves by a noisy step each time, the ODE's are deterministic and differ
    assert not torch.allclose(frames.sde_paths[4], frames.ode_paths[4], atol=1e-3)


def test_sde_frames_bad_input(d, mixture):
    model = mixture.eps_model(d)
    with pytest.raises(ValueError, match="2-D toy.GaussianMixture"):
        V.sde_frames(model, d, toy.three_bumps(), [0.5])
    with pytest.raises(ValueError, match=r"in \[0, 1\], got 1.5"):
        V.sde_frames(model, d, mixture, [0.5, 1.5])
    with pytest.raises(ValueError, match="distinct"):
        V.sde_frames(model, d, mixture, [0.5, 0.5])
    with pytest.raises(ValueError, match="at least one"):
        V.sde_frames(model, d, mixture, [])
    with pytest.raises(ValueError, match="steps must be an int >= 2"):
        V.sde_frames(model, d, mixture, [0.5], steps=1)
    with pytest.raises(ValueError, match="lim must be a finite number > 0"):
        V.sde_frames(model, d, mixture, [0.5], lim=0)


def test_draw_sde_shows_the_paths_up_to_tau(frames, fig):
    V.draw_sde(fig, 0.5, frames=frames)
    left, right = fig.axes
    quivers = [c for c in left.collections if hasattr(c, "U")]
    assert len(quivers) == 2  # exact and network
    lines = right.get_lines()
    assert len(lines) == 6  # 3 SDE + 3 ODE paths
    sde_line = np.asarray(lines[0].get_xydata())
    assert np.allclose(sde_line, frames.sde_paths[:5, 0].numpy())  # tau = 1, 7/8, ..., 4/8
    assert "0.5" in right.get_title()
    plt.close("all")
    fig = plt.figure()
    V.draw_sde(fig, 0.0, frames=frames)  # the network's field is undefined: exact arrows only
    left, right = fig.axes
    assert len([c for c in left.collections if hasattr(c, "U")]) == 1
    assert "undefined" in left.get_title()
    assert np.allclose(np.asarray(right.get_lines()[3].get_xydata())[-1], frames.ode_paths[-1, 0])
    with pytest.raises(ValueError, match=r"one of the frames' times .* got 0.3"):
        V.draw_sde(fig, 0.3, frames=frames)
    with pytest.raises(ValueError, match="field must be"):
        V.draw_sde(fig, 0.5, frames=frames, field="both!")


def test_explore_sde_live_and_static(frames, monkeypatch):
    html = V.explore_sde(frames, static=True).data
    assert "<script" in html and html.count("data:image/png") == 4
    calls, real = [], V.draw_sde

    def spy(fig, **kw):
        real(fig, **kw)
        calls.append(kw["tau"])

    monkeypatch.setattr(V, "draw_sde", spy)
    w = shown(V.explore_sde(frames, static=False))
    w.children[0].value = 0.2
    assert calls[-1] == 0.2
    plt.close("all")
