"""Chapter 7's pictures: every image is the library's sampler from the shared starting noise and
every label the evaluator's; the tilted density is the exact one; masks hide what they say; the
explorers redraw live and have static animation twins."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import ddpm_lib  # noqa: E402
from ddpm_lib import metrics, sample, toy  # noqa: E402
from ddpm_lib.viz import guidance as V  # noqa: E402
from ddpm_lib.viz import tilted as T  # noqa: E402
from ddpm_lib.viz import to_display  # noqa: E402
from ddpm_lib.viz.common import grid_points  # noqa: E402

from .conftest import image_of, shown  # noqa: E402

pytestmark = pytest.mark.one_thread


@pytest.fixture(scope="module")
def nets():
    """The shipped unconditional U-Net, CFG U-Net, noisy classifier and their schedule (computed
    with one thread, as every sample in this file: conftest sets it before any fixture)."""
    unet, d = ddpm_lib.pretrained("mnist-unet")
    cfg, d_cfg = ddpm_lib.pretrained("mnist-unet-cfg")
    clf, d_clf = ddpm_lib.pretrained("mnist-noisy-classifier")
    assert torch.equal(d.betas, d_cfg.betas) and torch.equal(d.betas, d_clf.betas)
    return unet, cfg, clf, d


@pytest.fixture(scope="module")
def evaluator():
    return metrics.load_classifier()


@pytest.fixture(scope="module")
def grid(nets, evaluator):
    unet, cfg, clf, d = nets
    return V.guidance_grid(d, [3, 7], [2.0, 0.0], model=unet, classifier=clf, cfg_model=cfg,
                           steps=2, generator=torch.Generator().manual_seed(0),
                           evaluator=evaluator)  # fmt: skip


# ------------------------------------------------------------------------------ MNIST sweep
def test_grid_is_the_samplers_from_one_noise(nets, grid, evaluator):
    unet, cfg, clf, d = nets
    assert grid.methods == ("classifier", "cfg") and grid.scales.tolist() == [0.0, 2.0]
    assert grid.images.shape == (2, 2, 2, 1, 28, 28) and grid.predicted.shape == (2, 2, 2)
    x_T = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.equal(grid.x_T, x_T) and grid.labels.tolist() == [3, 7]
    y = torch.tensor([3, 7])
    guided = sample.ddim(
        unet,
        d,
        x_T=x_T,
        steps=2,
        labels=y,
        classifier=clf,
        classifier_scale=2.0,
        threshold="static",
    )
    # (float32 convolutions may differ in the last bit from call to call: a tight tolerance)
    assert torch.allclose(grid.images[0, 1], guided, atol=1e-5)
    assert torch.allclose(
        grid.images[0, 0], sample.ddim(unet, d, x_T=x_T, steps=2, threshold="static"), atol=1e-5
    )
    cfg_out = sample.ddim(
        cfg, d, x_T=x_T, steps=2, labels=y, guidance_scale=2.0, threshold="static"
    )
    assert torch.allclose(grid.images[1, 1], cfg_out, atol=1e-5)
    assert (grid.images[0, 1] - grid.images[0, 0]).abs().max() > 0.01  # the classifier acts
    flat = grid.images.reshape(-1, 1, 28, 28)
    assert torch.equal(grid.predicted.reshape(-1), metrics.predict(evaluator, flat))
    acc = grid.accuracy()
    assert acc.shape == (2, 2)
    assert torch.equal(acc, (grid.predicted == y).double().mean(-1))
    assert (grid.seconds > 0).all()


def test_grid_one_method_and_bad_input(nets, evaluator):
    unet, cfg, clf, d = nets
    one = V.guidance_grid(d, torch.tensor([1]), [1.0], cfg_model=cfg, steps=1, evaluator=evaluator)
    assert one.methods == ("cfg",) and one.images.shape == (1, 1, 1, 1, 28, 28)
    with pytest.raises(ValueError, match="both model"):
        V.guidance_grid(d, [1], [1.0], model=unet, steps=1)
    with pytest.raises(ValueError, match="cfg_model"):
        V.guidance_grid(d, [1], [1.0], steps=1)
    with pytest.raises(ValueError, match="distinct"):
        V.guidance_grid(d, [1], [1.0, 1], cfg_model=cfg, steps=1)
    with pytest.raises(ValueError, match="finite"):
        V.guidance_grid(d, [1], [float("nan")], cfg_model=cfg, steps=1)
    with pytest.raises(ValueError, match="labels"):
        V.guidance_grid(d, [], [1.0], cfg_model=cfg, steps=1)


def test_draw_guidance_rows_and_labels(fig, grid):
    V.draw_guidance(fig, 2.0, grid=grid)
    assert len(fig.axes) == 4  # two methods x two digits
    ax = fig.axes[0]
    want, got = int(grid.labels[0]), int(grid.predicted[0, 1, 0])
    assert ax.get_title() == f"{want}→{got}"
    assert (image_of(ax) == to_display(grid.images[0, 1, 0])[0].numpy()).all()
    assert "classifier γ = 2" in ax.get_ylabel()
    fig.clear()
    V.draw_guidance(fig, 0.0, "cfg", grid=grid, n_show=1)
    assert len(fig.axes) == 1 and "CFG s = 0" in fig.axes[0].get_ylabel()
    with pytest.raises(ValueError, match="scale"):
        V.draw_guidance(fig, 1.5, grid=grid)
    with pytest.raises(ValueError, match="method"):
        V.draw_guidance(fig, 2.0, "other", grid=grid)


def _spy(monkeypatch, name, module=V):
    calls, real = [], getattr(module, name)

    def spy(fig, *args, **kw):
        real(fig, *args, **kw)
        calls.append((args, kw))

    monkeypatch.setattr(module, name, spy)
    return calls


def test_explore_guidance_live_and_static(grid, monkeypatch):
    html = V.explore_guidance(grid, static=True).data
    assert "<script" in html and html.count("data:image/png") == 2  # one frame per scale
    calls = _spy(monkeypatch, "draw_guidance")
    w = shown(V.explore_guidance(grid, static=False))
    scale, method = w.children[0], w.children[1]
    assert list(scale.options) == [0.0, 2.0] and list(method.options) == ["both", "classifier",
                                                                          "cfg"]  # fmt: skip
    scale.value = 2.0
    method.value = "cfg"
    assert calls[-1][1]["scale"] == 2.0 and calls[-1][1]["method"] == "cfg"
    plt.close("all")


# --------------------------------------------------------------------- the tilted density
@pytest.fixture(scope="module")
def tilted(nets):
    d = nets[3]
    return V.tilted_frames(toy.two_d_mixture(), d, 3, [3.0, 0.0, 1.0], n=300, steps=20, grid=61,
                           generator=torch.Generator().manual_seed(5))  # fmt: skip


def test_tilted_density_is_exact(tilted):
    g = toy.two_d_mixture()
    c = tilted.coords
    cell = float(c[1] - c[0]) ** 2
    assert tilted.gammas.tolist() == [0.0, 1.0, 3.0] and tilted.label == 3
    assert tilted.density.shape == (3, 61, 61)
    assert torch.allclose(tilted.density.sum((1, 2)) * cell, torch.ones(3, dtype=torch.float64))
    pts = grid_points(c)
    p = g.log_prob(pts).exp().reshape(61, 61)
    post = g.class_log_prob(pts, 1.0)[:, 3].exp().reshape(61, 61)
    assert torch.allclose(tilted.density[0], p / (p.sum() * cell), rtol=1e-10)
    tilt3 = p * post**3
    assert torch.allclose(tilted.density[2], tilt3 / (tilt3.sum() * cell), rtol=1e-10)
    # the Bayes conditional is the component itself, exactly, and γ = 1 is it (on the grid)
    mean, std = g.means[3], g.stds[3]
    comp = torch.exp(-((pts - mean) ** 2).sum(1) / (2 * std**2)) / (2 * torch.pi * std**2)
    assert torch.allclose(tilted.conditional, comp.reshape(61, 61), rtol=1e-9, atol=1e-12)
    assert torch.allclose(tilted.density[1], tilted.conditional, rtol=1e-3, atol=1e-6)
    assert torch.allclose(tilted.tilted_mean[1], mean, atol=1e-4)
    # γ = 3 sharpens: the tilted mean moves away from the other components, beyond q(x | y)'s
    assert float(tilted.tilted_mean[2, 0]) > float(mean[0])


def test_tilted_samples_are_the_guided_sampler(nets, tilted):
    d = nets[3]
    g = toy.two_d_mixture()
    gen = torch.Generator().manual_seed(5)
    x_T = torch.randn(300, 2, generator=gen, dtype=torch.float64)
    out = sample.ddim(g.eps_model(d), d, x_T=x_T, steps=20, labels=3, guidance_scale=0.0,
                      classifier=toy.MixtureClassifier(g, d), classifier_scale=3.0,
                      clip_samples=False, threshold="none")  # fmt: skip
    assert torch.equal(tilted.samples[2], out)
    assert torch.allclose(tilted.sample_mean, tilted.samples.mean(1))
    # γ = 1 lands on the class (the component's mean), γ = 0 on the whole mixture
    assert torch.allclose(tilted.sample_mean[1], g.means[3], atol=0.05)
    assert float((tilted.sample_mean[0] - g.means[3]).norm()) > 0.3


def test_draw_and_explore_tilted(fig, tilted, monkeypatch):
    V.draw_tilted(fig, 3.0, frames=tilted)
    left, right = fig.axes[:2]
    assert left.collections and right.patches  # density fill/contours, histogram
    with pytest.raises(ValueError, match="gamma"):
        V.draw_tilted(fig, 2.0, frames=tilted)
    assert V.explore_tilted(tilted, static=True).data.count("data:image/png") == 3
    calls = _spy(monkeypatch, "draw_tilted", T)
    w = shown(V.explore_tilted(tilted, static=False))
    w.children[0].value = 1.0
    assert calls[-1][1]["gamma"] == 1.0
    with pytest.raises(ValueError, match="label"):
        V.tilted_frames(toy.two_d_mixture(), nets_d(), 4, [1.0])
    with pytest.raises(ValueError, match="2-D"):
        V.tilted_frames(toy.three_bumps(), nets_d(), 0, [1.0])


def nets_d():
    return ddpm_lib.Diffusion(ddpm_lib.schedule.linear_betas(10, 1e-3, 0.2))


# ------------------------------------------------------------------------------ inpainting
@pytest.mark.parametrize(
    "kind, fraction",
    [("bottom half", 0.5), ("top half", 0.5), ("box", 0.25), ("random pixels", 0.75)],
)
def test_make_mask(kind, fraction):
    m = V.make_mask(kind, torch.Generator().manual_seed(0))
    assert m.shape == (1, 1, 28, 28) and m.dtype == torch.float32
    assert set(m.unique().tolist()) == {0.0, 1.0}
    assert float(1 - m.mean()) == pytest.approx(fraction, abs=0.5 / 784)
    if kind == "bottom half":
        assert (m[..., 14:, :] == 0).all() and (m[..., :14, :] == 1).all()
    if kind == "top half":
        assert (m[..., :14, :] == 0).all() and (m[..., 14:, :] == 1).all()
    if kind == "box":
        assert (m[..., 7:21, 7:21] == 0).all() and m[..., 6, :].all() and m[..., :, 21].all()


def test_random_mask_is_reproducible_and_checked():
    a = V.make_mask("random pixels", torch.Generator().manual_seed(1))
    b = V.make_mask("random pixels", torch.Generator().manual_seed(1))
    c = V.make_mask("random pixels", torch.Generator().manual_seed(2), hidden_fraction=0.5)
    assert torch.equal(a, b) and float(c.mean()) == 0.5
    with pytest.raises(ValueError, match="kind"):
        V.make_mask("left half")
    with pytest.raises(ValueError, match="hidden_fraction"):
        V.make_mask("random pixels", hidden_fraction=1.5)


@pytest.fixture(scope="module")
def digits():
    gen = torch.Generator().manual_seed(9)
    return (torch.rand(2, 1, 28, 28, generator=gen) * 2 - 1).round()  # black/white blobs


@pytest.fixture(scope="module")
def inpainted(nets, digits, evaluator):
    unet, _, _, d = nets
    return V.inpaint_frames(unet, d, digits, ("bottom half", "random pixels"),
                            true_labels=[1, 2], steps=2,
                            generator=torch.Generator().manual_seed(4),
                            evaluator=evaluator)  # fmt: skip


def test_inpaint_frames_keep_known_pixels_and_are_the_library(nets, digits, inpainted, evaluator):
    unet, _, _, d = nets
    f = inpainted
    assert f.kinds == ("bottom half", "random pixels") and f.label is None
    assert f.completed.shape == (2, 2, 1, 28, 28) and f.predicted.shape == (2, 2)
    gen = torch.Generator().manual_seed(4)
    assert torch.equal(f.masks[0], V.make_mask("bottom half", gen))
    assert torch.equal(f.masks[1], V.make_mask("random pixels", gen))
    assert torch.equal(f.x_T, torch.randn(2, 1, 28, 28, generator=gen))
    for k in range(2):
        known = f.masks[k].expand_as(digits) > 0
        assert torch.equal(f.completed[k][known], digits[known])
    direct = sample.inpaint(unet, d, x_known=digits, mask=f.masks[1], steps=2, x_T=f.x_T,
                            generator=torch.Generator().manual_seed(0), threshold="static")  # fmt: skip
    assert torch.allclose(f.completed[1], direct, atol=1e-5)
    assert torch.equal(f.predicted.reshape(-1),
                       metrics.predict(evaluator, f.completed.reshape(-1, 1, 28, 28)))  # fmt: skip
    assert f.true_labels.tolist() == [1, 2]


def test_inpaint_with_a_label_uses_cfg(nets, digits, evaluator):
    _, cfg, _, d = nets
    f = V.inpaint_frames(cfg, d, digits, ["box"], label=3, guidance_scale=2.0, steps=2,
                         evaluator=evaluator)  # fmt: skip
    direct = sample.inpaint(cfg, d, x_known=digits, mask=V.make_mask("box"), steps=2, x_T=f.x_T, labels=3,
                            guidance_scale=2.0, generator=torch.Generator().manual_seed(0), threshold="static")  # fmt: skip
    assert torch.allclose(f.completed[0], direct, atol=1e-5) and f.label == 3
    with pytest.raises(ValueError, match="kinds"):
        V.inpaint_frames(cfg, d, digits, ["left"], steps=1)
    with pytest.raises(ValueError, match="x0"):
        V.inpaint_frames(cfg, d, digits[:, 0], steps=1)


def test_draw_inpainting(fig, inpainted):
    V.draw_inpainting(fig, "random pixels", frames=inpainted)
    assert len(fig.axes) == 6  # three rows x two digits
    completion = fig.axes[4]  # row 2, digit 0
    assert completion.get_title() == f"→ {int(inpainted.predicted[1, 0])}"
    masked = image_of(fig.axes[2])
    hidden = inpainted.masks[1, 0, 0].numpy() == 0
    assert masked.shape == (28, 28, 3) and (masked[hidden] == masked[hidden][0]).all()
    fig.clear()
    V.draw_inpainting(fig, "all", frames=inpainted, n_show=1)
    assert len(fig.axes) == 5  # original + (masked, completed) per kind
    with pytest.raises(ValueError, match="kind"):
        V.draw_inpainting(fig, "box", frames=inpainted)


def test_explore_inpainting_static_and_live(nets, inpainted, evaluator, monkeypatch):
    unet, cfg, _, d = nets
    html = V.explore_inpainting(inpainted, static=True).data
    assert "<script" in html and html.count("data:image/png") == 2  # one frame per mask kind
    calls = _spy(monkeypatch, "draw_inpainting")
    fixed = shown(V.explore_inpainting(inpainted, static=False))
    assert len(fixed.children) == 2  # the kind menu and the output: no label without models
    w = shown(V.explore_inpainting(inpainted, static=False, model=unet, cfg_model=cfg,
                                   diffusion=d, evaluator=evaluator))  # fmt: skip
    kind, label = w.children[0], w.children[1]
    assert label.value == "unconditional" and list(label.options)[1:] == list(range(10))
    label.value = 7  # computed on demand with the CFG model, same digits, mask and x_T
    shown_frames = calls[-1][1]["frames"]
    assert shown_frames.label == 7 and shown_frames.kinds == ("bottom half",)
    direct = sample.inpaint(cfg, d, x_known=inpainted.x0, mask=inpainted.masks[0], steps=2, labels=7,
                            guidance_scale=inpainted.guidance_scale, x_T=inpainted.x_T,
                            generator=torch.Generator().manual_seed(0), threshold="static")  # fmt: skip
    assert torch.allclose(shown_frames.completed[0], direct, atol=1e-5)
    kind.value = "random pixels"
    assert calls[-1][0] == ("random pixels",) and calls[-1][1]["frames"].label == 7
    plt.close("all")
