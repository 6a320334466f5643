r"""Train the book's two classifiers with one training loop (:func:`fit_classifier`):

* the clean MNIST classifier behind the FID (:class:`ddpm_lib.models.MNISTClassifier`), trained
  by :func:`train_classifier` (``python -m ddpm_lib.metrics train-classifier --out DIR``);
* the noise-conditional classifier :math:`p_\phi(y \mid x_t, t)` of classifier guidance
  (:class:`ddpm_lib.models.classifier.NoisyClassifier`), trained by
  :func:`train_noisy_classifier`::

    python -m ddpm_lib.train.classifier --out runs/mnist-noisy-classifier --epochs 6 --seed 0

For the noisy one every minibatch draws :math:`t \sim \mathcal U\{1..T\}` and
:math:`\epsilon \sim \mathcal N(0, I)` per image and trains on
:math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon` (Ho et al. 2020, Eq. 4,
:meth:`ddpm_lib.Diffusion.q_sample`) with the cross-entropy of the true label (Dhariwal & Nichol
2021, Sec. 4), the same schedule as the shipped U-Nets. Each trainer writes float32 safetensors
and a json record (settings, command line, wall time, machine, test accuracy on the official 10k
test set; for the noisy one at several ``t``, each with fixed noise). A run takes minutes on a
CPU, so there are no checkpoints: a killed run is started again."""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ddpm_lib import io
from ddpm_lib._validate import check_int, check_number
from ddpm_lib.diffusion import Diffusion
from ddpm_lib.models.classifier import (
    ClassifierConfig,
    MNISTClassifier,
    NoisyClassifier,
    NoisyClassifierConfig,
)
from ddpm_lib.train.lr import lr_cosine

CLASSIFIER_FORMAT = "ddpm_lib.classifier/1"
WEIGHTS_FILE = "noisy-classifier.safetensors"
META_FILE = "noisy-classifier.json"
NOISY_CLASSIFIER_FORMAT = "ddpm_lib.noisy_classifier/1"
#: The steps at which the accuracy curve is measured.
EVAL_TS = (1, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000)


class ClassifierResult(NamedTuple):
    """What :func:`train_classifier` returns."""

    model: MNISTClassifier
    test_accuracy: float
    wall_time_s: float
    weights_path: Path
    meta_path: Path


class NoisyClassifierResult(NamedTuple):
    """What :func:`train_noisy_classifier` returns; ``accuracy`` maps ``t`` to test accuracy."""

    model: NoisyClassifier
    accuracy: dict[int, float]
    wall_time_s: float
    weights_path: Path
    meta_path: Path


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by an integer (dy, dx) drawn uniformly from ``[-max_shift, max_shift]``,
    filling with the background value -1. ``[B, 1, 28, 28]`` -> ``[B, 1, 28, 28]``."""
    if max_shift == 0:
        return x
    B, _, H, W = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    d = torch.randint(0, 2 * max_shift + 1, (2, B), generator=generator)
    rows = (d[0][:, None] + torch.arange(H))[:, :, None]  # [B, H, 1]
    cols = (d[1][:, None] + torch.arange(W))[:, None, :]  # [B, 1, W]
    return padded[torch.arange(B)[:, None, None], 0, rows, cols].unsqueeze(1)


def fit_classifier(
    model: nn.Module,
    x0: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    max_shift: int,
    diffusion: Diffusion | None = None,
    report: Callable[[], str] = lambda: "",
    log=print,
) -> None:
    r"""The epoch loop of both classifier trainers: AdamW with a cosine decay to 0 (torch's
    ``LambdaLR`` with :func:`ddpm_lib.train.lr.lr_cosine`), cross-entropy loss, random
    translations of up to ``max_shift`` pixels as the only augmentation. ``x0`` ``[N, 1, 28, 28]``
    in [-1, 1], ``labels`` ``[N]``. With a ``diffusion`` the model is noise-conditional: each
    minibatch draws :math:`t \sim \mathcal U\{1..T\}` and :math:`\epsilon`, and the model sees
    ``model(diffusion.q_sample(x, t, eps), t)``; without one, ``model(x)``. Every draw comes from
    ``generator`` (per epoch a permutation; per minibatch the shifts, then ``t``, then
    :math:`\epsilon`). After each epoch ``log`` gets the epoch's loss and training accuracy and
    what ``report()`` returns (e.g. the test accuracy). Leaves ``model`` in eval mode."""
    n = x0.shape[0]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * ((n + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_cosine(steps))
    start = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=generator)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            x = random_shift(x0[idx], max_shift, generator)
            if diffusion is None:
                logits = model(x)
            else:
                t = torch.randint(1, diffusion.T + 1, (idx.numel(),), generator=generator)
                eps = torch.randn(x.shape, generator=generator)
                logits = model(diffusion.q_sample(x, t, eps), t)
            loss = F.cross_entropy(logits, labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * idx.numel()
            correct += int((logits.argmax(1) == labels[idx]).sum())
            total += idx.numel()
        which = "" if diffusion is None else " (all t)"
        log(f"epoch {epoch + 1}/{epochs}: loss {loss_sum / total:.4f}, train acc{which} "
            f"{correct / total:.4f}, {report()}, {time.perf_counter() - start:.0f} s")  # fmt: skip
    model.eval()


def _check_settings(epochs, seed, batch_size, lr, max_shift) -> None:
    check_int("epochs", epochs, 1)
    check_int("batch_size", batch_size, 1)
    check_int("seed", seed, 0)
    check_number("lr", lr, 0, lo_open=True)
    check_int("max_shift", max_shift, 0, 4)


def add_training_arguments(parser, epochs: int) -> None:
    """The command-line options both classifier trainers share (``--out``, ``--epochs``,
    ``--seed``, ``--batch-size``, ``--lr``, ``--max-shift``)."""
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--max-shift", type=int, default=2, help="random translation, pixels")


def save_training_run(
    weights_path: Path,
    meta_path: Path,
    model: nn.Module,
    config: dict,
    fmt: str,
    settings: dict,
    wall: float,
    command: str | None,
    results: dict,
) -> None:
    """Write a trained classifier (float32 safetensors tagged ``fmt``, its ``config`` and seed in
    the metadata) and its json record: architecture, config, parameter count, the training
    ``settings``, command line, wall time, machine and ``results``."""
    io.save_safetensors(
        weights_path,
        model.state_dict(),
        {io.CONFIG_KEY: json.dumps(config), "seed": str(settings["seed"])},
        fmt,
    )
    meta = {
        "architecture": type(model).__name__,
        "config": config,
        "n_params": sum(p.numel() for p in model.parameters()),
        **settings,
        "command": command if command is not None else " ".join(sys.argv),
        "wall_time_s": round(wall, 1),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip()
        + f", {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        **results,
        "dtype": "float32",
    }
    io.write_json(meta_path, meta)


def train_classifier(
    out_dir: str | Path,
    epochs: int = 4,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    max_shift: int = 2,
    config: ClassifierConfig | None = None,
    command: str | None = None,
    log=print,
) -> ClassifierResult:
    r"""Train :class:`~ddpm_lib.models.MNISTClassifier` on the 60k MNIST training images
    (:func:`fit_classifier`) and write ``out_dir/classifier.safetensors`` (fp32, tagged
    ``ddpm_lib.classifier/1`` and digested by :func:`ddpm_lib.io.save_safetensors`, like every
    file the library writes) and ``out_dir/classifier.json`` (config, seed, epochs, command line,
    wall time, machine, test accuracy on the official 10k test set).

    Every random draw (initialisation, dropout, shuffle, shifts) comes from ``seed``; the global
    RNG state is restored afterwards. On one CPU with a fixed thread count the run is
    bit-reproducible; the thread count is recorded in the json."""
    from ddpm_lib.data import images_to_model, load_mnist
    from ddpm_lib.metrics.classifier import evaluate_accuracy

    _check_settings(epochs, seed, batch_size, lr, max_shift)
    config = config if config is not None else ClassifierConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train, test = load_mnist("train"), load_mnist("test")
    x_train, y_train = images_to_model(train.images), torch.as_tensor(train.labels)
    x_test, y_test = images_to_model(test.images), torch.as_tensor(test.labels)
    accuracy: list[float] = []

    def report() -> str:
        accuracy.append(evaluate_accuracy(model, x_test, y_test))
        return f"test acc {accuracy[-1]:.4f}"

    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = MNISTClassifier(config)
        fit_classifier(model, x_train, y_train, gen, epochs=epochs, batch_size=batch_size, lr=lr,
                       weight_decay=weight_decay, max_shift=max_shift, report=report, log=log)  # fmt: skip
    wall = time.perf_counter() - start
    weights_path, meta_path = out_dir / "classifier.safetensors", out_dir / "classifier.json"
    settings = {"seed": seed, "epochs": epochs, "batch_size": batch_size, "lr": lr,
                "weight_decay": weight_decay, "max_shift": max_shift}  # fmt: skip
    save_training_run(weights_path, meta_path, model, config.to_dict(), CLASSIFIER_FORMAT,
                      settings, wall, command, {"test_accuracy": accuracy[-1]})  # fmt: skip
    return ClassifierResult(model, accuracy[-1], wall, weights_path, meta_path)


@torch.no_grad()
def accuracy_by_t(
    model: NoisyClassifier,
    x0: torch.Tensor,
    labels: torch.Tensor,
    ts: tuple[int, ...] = EVAL_TS,
    seed: int = 1234,
    batch_size: int = 1000,
) -> dict[int, float]:
    r"""Accuracy of ``model`` on :math:`x_t` drawn from clean images ``x0`` ``[N, 1, 28, 28]`` with
    true ``labels`` ``[N]``, at every ``t`` in ``ts`` (noise drawn from ``seed``): ``{t: acc}``."""
    d = model.config.diffusion()
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for t in ts:
        correct = 0
        for i in range(0, x0.shape[0], batch_size):
            xb = x0[i : i + batch_size]
            x_t = d.q_sample(xb.double(), int(t), generator=gen).float()
            correct += int((model(x_t, int(t)).argmax(1) == labels[i : i + batch_size]).sum())
        out[int(t)] = correct / x0.shape[0]
    model.train(was_training)
    return out


def train_noisy_classifier(
    out_dir: str | Path,
    epochs: int = 6,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    max_shift: int = 2,
    config: NoisyClassifierConfig | None = None,
    command: str | None = None,
    log=print,
    n_train: int | None = None,
    n_test: int | None = None,
) -> NoisyClassifierResult:
    r"""Train :class:`NoisyClassifier` on noised 60k MNIST training images
    (:func:`fit_classifier` with the classifier's diffusion). Every random draw comes from
    ``seed`` (the global RNG is restored afterwards). ``n_train`` / ``n_test`` use only the first
    images of each set (smoke tests; None = all). See the module docstring for the files
    written."""
    from ddpm_lib.data import images_to_model, load_mnist

    _check_settings(epochs, seed, batch_size, lr, max_shift)
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if value is not None:
            check_int(name, value, 1)
    config = config if config is not None else NoisyClassifierConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train, test = load_mnist("train"), load_mnist("test")
    x_train = images_to_model(train.images)[:n_train]
    y_train = torch.as_tensor(train.labels)[:n_train]
    x_test = images_to_model(test.images)[:n_test]
    y_test = torch.as_tensor(test.labels)[:n_test]

    def report() -> str:
        acc = accuracy_by_t(model, x_test, y_test, ts=(1, 500))
        return f"test acc t=1 {acc[1]:.4f}, t=500 {acc[500]:.4f}"

    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = NoisyClassifier(config)
        fit_classifier(model, x_train, y_train, gen, epochs=epochs, batch_size=batch_size, lr=lr,
                       weight_decay=weight_decay, max_shift=max_shift,
                       diffusion=config.diffusion(), report=report, log=log)  # fmt: skip
    wall = time.perf_counter() - start
    accuracy = accuracy_by_t(model, x_test, y_test)
    log("test accuracy by t: " + ", ".join(f"{t}: {a:.4f}" for t, a in accuracy.items()))

    weights_path, meta_path = out_dir / WEIGHTS_FILE, out_dir / META_FILE
    settings = {"seed": seed, "epochs": epochs, "batch_size": batch_size, "lr": lr,
                "weight_decay": weight_decay, "max_shift": max_shift}  # fmt: skip
    results = {
        "test_accuracy_by_t": {str(t): a for t, a in accuracy.items()},
        "n_train": x_train.shape[0],
        "n_test": x_test.shape[0],
    }
    command = command if command is not None else shlex.join(sys.argv)
    save_training_run(weights_path, meta_path, model, config.to_dict(), NOISY_CLASSIFIER_FORMAT,
                      settings, wall, command, results)  # fmt: skip
    return NoisyClassifierResult(model, accuracy, wall, weights_path, meta_path)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m ddpm_lib.train.classifier", description=__doc__.split("\n")[0]
    )
    add_training_arguments(parser, epochs=6)
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "ddpm_lib.train.classifier", *argv])
    r = train_noisy_classifier(
        args.out,
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        lr=args.lr,
        max_shift=args.max_shift,
        command=command,
    )
    print(f"{r.wall_time_s:.0f} s -> {r.weights_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
