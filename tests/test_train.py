"""The trainer: Algorithm 1's loss, warm-up, EMA, exact resume, stop rules, NaN handling, learning."""

from __future__ import annotations

import json

import pytest
import torch

from ddpm_lib import bound, io
from ddpm_lib.config import get_config
from ddpm_lib.data import load_mnist
from ddpm_lib.train import (
    EMA,
    NonFiniteLossError,
    TrainProgress,
    algorithm1_loss,
    ema_decay_at,
    load_checkpoint,
    lr_warmup,
    train,
)
from ddpm_lib.train import loop as loop_mod
from ddpm_lib.viz import training as V

pytestmark = pytest.mark.one_thread

SMALL = get_config("tiny", base_channels=8, norm_groups=8, batch_size=8, warmup_steps=4)
COND = get_config(
    "tiny",
    base_channels=8,
    norm_groups=8,
    batch_size=8,
    num_classes=10,
    label_dropout=0.3,
    dropout=0.2,
)


@pytest.fixture(scope="module")
def data():
    """48 images (6 batches of 8: checkpoints at 5 fall mid-epoch) with labels."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (48, 28, 28), generator=g, dtype=torch.uint8)
    return images, torch.randint(0, 10, (48,), generator=g)


def _tensors(path):
    return io.load_safetensors(path).tensors


def _assert_same_tensors(a, b):
    assert a.keys() == b.keys()
    unequal = [k for k in a if not torch.equal(a[k], b[k])]
    assert not unequal, f"tensors differ: {unequal[:5]}"


def test_algorithm1_loss_equals_diffusion_loss_simple():
    model = io.build_model(SMALL, 1)
    torch.nn.init.normal_(model.conv_out.weight, std=0.1)  # a model that predicts eps != 0
    d = SMALL.diffusion()
    x0 = torch.rand(4, 1, 28, 28) * 2 - 1
    a = algorithm1_loss(
        model,
        x0,
        None,
        d,
        torch.Generator().manual_seed(5),
    )
    b = bound.loss_simple(d, model, x0, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # same draws, same q_sample
    assert abs(a.item() - 1.0) > 1e-3  # not the trivial eps_theta = 0 value


def test_warmup_is_linear_then_constant():
    cfg = get_config("tiny", lr=1e-3, warmup_steps=4)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_warmup(cfg.warmup_steps))
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    assert lrs[0] == cfg.lr * min(1.0, 1 / 4)  # the same float ops as the formula
    assert all(lr_warmup(0)(s) == 1.0 for s in range(3))


def test_ema_follows_its_formula():
    assert ema_decay_at(0.9999, 1) == pytest.approx(2 / 11)
    assert ema_decay_at(0.9, 10_000) == 0.9
    lin = torch.nn.Linear(2, 2)
    ema = EMA(lin, 0.5)
    start = lin.weight.detach().clone()
    with torch.no_grad():
        lin.weight.add_(1.0)
    ema.update(lin, num_updates=100)  # decay min(0.5, 101/110) = 0.5
    torch.testing.assert_close(ema.model.weight, start + 0.5)
    assert not ema.model.weight.requires_grad and not ema.model.training


@pytest.mark.parametrize("config", [SMALL, COND], ids=["unconditional", "cfg-dropout"])
def test_resume_at_a_checkpoint_is_bitwise_exact(tmp_path, data, config):
    kw = dict(seed=3, checkpoint_every=5, progress=False, data=data)
    # 8 steps of 6 per epoch (48 images, batch 8): the resumed part crosses an epoch boundary
    full = train(config, tmp_path / "full", steps=8, **kw)
    part = train(config, tmp_path / "part", steps=5, **kw)
    assert part.steps == 5 and part.stopped_by == "steps"
    resumed = train(config, tmp_path / "part", steps=8, resume=True, **kw)
    assert resumed.resumed_from == 5 and resumed.steps == 8
    for name in (io.MODEL_FILE, io.CHECKPOINT_FILE):
        _assert_same_tensors(_tensors(tmp_path / "full" / name), _tensors(tmp_path / "part" / name))
    assert torch.equal(full.losses, resumed.losses) and len(full.losses) == 8
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k])
    # a different seed gives a different run (the comparison above can fail)
    other = train(config, tmp_path / "other", steps=2, **{**kw, "seed": 4})
    assert not torch.equal(other.losses, part.losses[:2])


def test_time_budget_stop_then_resume_is_exact(tmp_path, data):
    kw = dict(seed=0, checkpoint_every=100, progress=False, data=data)
    full = train(SMALL, tmp_path / "full", steps=7, **kw)
    cut = train(SMALL, tmp_path / "cut", steps=7, max_seconds=1e-9, **kw)
    assert cut.stopped_by == "max_seconds" and cut.steps == 0 and len(cut.losses) == 0
    assert (tmp_path / "cut" / io.MODEL_FILE).is_file()
    done = train(SMALL, tmp_path / "cut", steps=7, resume=True, **kw)
    _assert_same_tensors(
        _tensors(tmp_path / "full" / io.MODEL_FILE), _tensors(tmp_path / "cut" / io.MODEL_FILE)
    )
    assert done.steps == 7 and torch.equal(done.losses, full.losses)
    metrics = json.loads((tmp_path / "cut" / io.METRICS_FILE).read_text())
    assert [s["stopped_by"] for s in metrics["segments"]] == ["max_seconds", "steps"]
    assert metrics["steps"] == 7 and metrics["epochs"] == pytest.approx(7 * 8 / 48)


def test_epochs_stop_and_finished_resume_is_a_no_op(tmp_path, data):
    kw = dict(seed=0, progress=False, data=data)
    res = train(SMALL, tmp_path, epochs=1, steps=100, **kw)
    assert res.stopped_by == "epochs" and res.steps == 48 // 8
    before = io.load_safetensors(tmp_path / io.MODEL_FILE)
    (tmp_path / io.MODEL_FILE).unlink()  # e.g. killed between the final checkpoint and this file
    again = train(SMALL, tmp_path, epochs=1, resume=True, **kw)
    assert again.stopped_by == "already_finished" and again.steps == 6
    after = io.load_safetensors(tmp_path / io.MODEL_FILE)  # same tensors and metadata
    _assert_same_tensors(before.tensors, after.tensors)
    assert before.metadata == after.metadata
    assert torch.equal(again.losses, res.losses)
    model, diffusion = io.load(tmp_path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, res.model.state_dict()[k])


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, data, monkeypatch):
    real = loop_mod.algorithm1_loss
    calls = []

    def poisoned(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * float("nan") if len(calls) == 8 else loss

    monkeypatch.setattr(loop_mod, "algorithm1_loss", poisoned)
    with pytest.raises(
        NonFiniteLossError, match=r"at step 8.*checkpoint.safetensors \(step 6\) is kept"
    ):
        train(SMALL, tmp_path, steps=20, checkpoint_every=3, progress=False, data=data)
    saved = load_checkpoint(tmp_path / io.CHECKPOINT_FILE)
    assert saved.step == 6 and bool(torch.isfinite(saved.losses).all())
    assert all(bool(torch.isfinite(v).all()) for v in (*saved.model.values(), *saved.ema.values()))
    assert not (tmp_path / io.MODEL_FILE).exists()


def test_label_dropout_uses_the_null_label_at_its_rate(tmp_path, data, monkeypatch):
    seen = []
    real = loop_mod.algorithm1_loss

    def spy(model, x0, labels, *args, **kwargs):
        seen.append(labels.clone())
        return real(model, x0, labels, *args, **kwargs)

    monkeypatch.setattr(loop_mod, "algorithm1_loss", spy)
    cfg = get_config(
        "tiny",
        base_channels=8,
        norm_groups=8,
        batch_size=8,
        num_classes=10,
        label_dropout=0.5,
        T=50,
    )
    train(cfg, tmp_path, steps=12, progress=False, data=data)
    labels = torch.cat(seen)
    null = labels == 10
    assert 0.3 < float(null.float().mean()) < 0.7  # 96 Bernoulli(0.5) draws
    assert set(labels[~null].tolist()) <= set(data[1].tolist())


def test_existing_runs_are_never_overwritten_and_configs_must_match(tmp_path, data):
    kw = dict(progress=False, data=data)
    with pytest.raises(ValueError, match="no checkpoint"):
        train(SMALL, tmp_path, steps=2, resume=True, **kw)
    train(SMALL, tmp_path, steps=2, **kw)
    with pytest.raises(ValueError, match="already holds a run"):
        train(SMALL, tmp_path, steps=2, **kw)
    changed = get_config(
        "tiny", base_channels=8, norm_groups=8, batch_size=8, warmup_steps=4, lr=1e-2, ema_decay=0.5
    )
    with pytest.raises(ValueError, match=r"lr \(given 0.01, checkpoint 0.002\), ema_decay"):
        train(changed, tmp_path, steps=4, resume=True, **kw)
    with pytest.raises(ValueError, match="seed"):
        train(SMALL, tmp_path, steps=4, resume=True, seed=9, **kw)
    with pytest.raises(ValueError, match="training data differs"):
        train(SMALL, tmp_path, steps=4, resume=True, progress=False, data=data, limit_data=40)
    assert train(None, tmp_path, steps=4, resume=True, **kw).steps == 4  # the checkpoint's config


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=0), "steps must be an int >= 1, got 0"),
        (dict(steps=2.5), "steps must be"),
        (dict(epochs=-1), "epochs must be"),
        (dict(max_seconds=float("nan")), "max_seconds must be"),
        (dict(checkpoint_every=0), "checkpoint_every must be"),
        (dict(seed=-1), "seed must be an int in"),
        (dict(limit_data=49), r"limit_data must be in \[1, 48\]"),
        (dict(limit_data=4), "fewer than batch_size=8"),
        (dict(device="gpu0"), "not a torch device"),
        (dict(config=get_config("tiny", precision="fp16")), "fp16.*needs a CUDA GPU"),
        (dict(config=COND, data=torch.zeros(48, 28, 28, dtype=torch.uint8)), "needs labels"),
        (dict(data=torch.full((48, 1, 28, 28), 1.5)), r"in \[-1, 1\]"),
    ],
)
def test_bad_arguments_raise_value_errors(tmp_path, data, kwargs, match):
    args = dict(config=SMALL, out_dir=tmp_path / "run", progress=False, data=data, steps=2)
    args.update(kwargs)
    config = args.pop("config")
    with pytest.raises(ValueError, match=match):
        train(config, **args)
    assert not (tmp_path / "run" / io.CHECKPOINT_FILE).exists()


def test_out_dir_that_is_a_file_is_refused(tmp_path, data):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        train(SMALL, tmp_path / "f", steps=1, progress=False, data=data)


@pytest.mark.slow
def test_tiny_preset_learns_on_real_mnist(tmp_path):
    """The tiny preset on the real MNIST: L_simple of the last 10% of steps is well below the first."""
    split = load_mnist("train")
    res = train(get_config("tiny"), tmp_path, steps=36, progress=False, data=split, limit_data=4096)
    tenth = res.steps // 10
    first, last = float(res.losses[:tenth].mean()), float(res.losses[-tenth:].mean())
    assert first > 0.6 and last < 0.6 * first, (first, last)
    metrics = json.loads((tmp_path / io.METRICS_FILE).read_text())
    assert metrics["loss_first_10pct"] == pytest.approx(first, rel=1e-6)
    assert metrics["loss_last_10pct"] == pytest.approx(last, rel=1e-6)
    assert metrics["device"] == "cpu" and metrics["precision"] == "fp32"


# ------------------------------------------------- the progress callback (chapter 4's live view)
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
    with pytest.raises(ValueError, match="callback_every must be an int >= 1, got 0"):
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
