"""train()'s progress callback and the live training view built on it (chapter 4's "train it
yourself"): reports at the promised steps, no effect on the run, live and static drawing."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from ddpm_lib.config import get_config  # noqa: E402
from ddpm_lib.train import TrainProgress, train  # noqa: E402
from ddpm_lib.viz import training as V  # noqa: E402

SMALL = get_config("tiny", base_channels=8, norm_groups=8, batch_size=8, warmup_steps=4)


@pytest.fixture(autouse=True)
def _one_thread(_two_threads):
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(2)


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (48, 28, 28), generator=g, dtype=torch.uint8)


def test_callback_reports_and_changes_nothing(tmp_path, data):
    kw = dict(seed=3, checkpoint_every=4, progress=False, data=data)
    plain = train(SMALL, tmp_path / "plain", steps=7, **kw)
    seen: list[TrainProgress] = []

    def callback(p: TrainProgress) -> None:
        seen.append(p)
        torch.rand(5)  # global RNG use and sampling with the EMA model must not touch the run
        with torch.no_grad():
            p.ema_model(torch.randn(2, 1, 28, 28), torch.tensor([1, 500]))

    watched = train(SMALL, tmp_path / "watched", steps=7, callback=callback, callback_every=3, **kw)
    assert [p.step for p in seen] == [3, 6, 7] and [p.final for p in seen] == [False, False, True]
    assert all(len(p.losses) == p.step and p.step_limit == 7 for p in seen)
    assert torch.equal(seen[-1].losses, watched.losses)
    assert seen[-1].diffusion.T == SMALL.T and not seen[-1].ema_model.training
    assert torch.equal(plain.losses, watched.losses)
    for k, v in plain.model.state_dict().items():
        assert torch.equal(v, watched.model.state_dict()[k])
    with pytest.raises(ValueError, match="callback_every must be a finite integer > 0"):
        train(SMALL, tmp_path / "bad", steps=2, callback=callback, callback_every=0, **kw)
    with pytest.raises(ValueError, match="callback must be callable"):
        train(SMALL, tmp_path / "bad", steps=2, callback="plot", **kw)


def test_live_training_static_and_live(tmp_path, data, monkeypatch):
    static = V.LiveTraining(n=4, steps=2, static=True)
    with pytest.raises(ValueError, match="nothing to draw yet"):
        static.figure()
    result = train(SMALL, tmp_path / "s", steps=4, progress=False, data=data, seed=1,
                   callback=static, callback_every=2)  # fmt: skip
    assert static.reports == [2, 4] and static.samples.shape == (4, 1, 28, 28)
    fig = static.figure()
    ax_loss, ax_grid = fig.axes
    assert list(ax_loss.lines[0].get_ydata()) == pytest.approx(result.losses.tolist())
    assert ax_grid.images[0].get_array().shape == (2 * 29 - 1, 2 * 29 - 1)
    # live: one display, then updates of the same output
    shown = []

    class Handle:
        def update(self, fig):
            shown.append(("update", fig))

    def fake_display(fig, display_id=False):
        shown.append(("display", fig))
        return Handle()

    monkeypatch.setattr("IPython.display.display", fake_display)
    live = V.LiveTraining(n=0, static=False)
    train(SMALL, tmp_path / "l", steps=4, progress=False, data=data, callback=live,
          callback_every=1)  # fmt: skip
    assert [kind for kind, _ in shown] == ["display", "update", "update", "update"]
    assert live.samples is None and len(shown[-1][1].axes) == 1  # n=0: the loss curve only
    with pytest.raises(ValueError, match="n must be an int >= 0"):
        V.LiveTraining(n=-1)
    with pytest.raises(TypeError, match="progress must be a TrainProgress"):
        live({"step": 1})
