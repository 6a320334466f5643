r"""Train the noise-conditional classifier :math:`p_\phi(y \mid x_t, t)` of classifier guidance
(:class:`ddpm_lib.models.NoisyClassifier`) on noised MNIST::

    python -m ddpm_lib.train.classifier --out runs/mnist-noisy-classifier --epochs 6 --seed 0

Every minibatch draws :math:`t \sim \mathcal U\{1..T\}` and :math:`\epsilon \sim \mathcal N(0, I)`
per image and trains on :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon`
(Ho et al. 2020, Eq. 4) with the cross-entropy of the true label (Dhariwal & Nichol 2021, Sec. 4),
the same schedule as the shipped U-Nets. Writes ``OUT/noisy-classifier.safetensors`` (float32) and
``OUT/noisy-classifier.json``: settings, command line, wall time, machine and the test accuracy at
several ``t`` (each on the official 10k test set with fixed noise). A run takes minutes on a
CPU, so it has no checkpoints: a killed run is started again.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ddpm_lib.models.classifier import NoisyClassifier, NoisyClassifierConfig

__all__ = ["NoisyClassifierResult", "train_noisy_classifier", "accuracy_by_t", "EVAL_TS"]

WEIGHTS_FILE = "noisy-classifier.safetensors"
META_FILE = "noisy-classifier.json"
NOISY_CLASSIFIER_FORMAT = "ddpm_lib.noisy_classifier/1"
#: The steps at which the accuracy curve is measured.
EVAL_TS = (1, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000)


class NoisyClassifierResult(NamedTuple):
    """What :func:`train_noisy_classifier` returns; ``accuracy`` maps ``t`` to test accuracy."""

    model: NoisyClassifier
    accuracy: dict[int, float]
    wall_time_s: float
    weights_path: Path
    meta_path: Path


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
    r"""Train :class:`NoisyClassifier` on noised 60k MNIST training images (AdamW, cosine decay
    to 0, random shifts of up to ``max_shift`` pixels, :math:`t \sim \mathcal U\{1..T\}`). Every
    random draw comes from ``seed`` (the global RNG is restored afterwards). ``n_train`` /
    ``n_test`` use only the first images of each set (smoke tests; None = all). See the module
    docstring for the files written."""
    from ddpm_lib.data import images_to_model, load_mnist
    from ddpm_lib.metrics.classifier import random_shift, save_training_run

    for name, value, lo in (
        ("epochs", epochs, 1),
        ("batch_size", batch_size, 1),
        ("seed", seed, 0),
        ("n_train", 1 if n_train is None else n_train, 1),
        ("n_test", 1 if n_test is None else n_test, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if not 0 <= max_shift <= 4:
        raise ValueError(f"max_shift must be in [0, 4], got {max_shift}")
    config = config if config is not None else NoisyClassifierConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    train, test = load_mnist("train"), load_mnist("test")
    x_train, y_train = images_to_model(train.images), torch.as_tensor(train.labels)
    x_test, y_test = images_to_model(test.images), torch.as_tensor(test.labels)
    x_train, y_train = x_train[:n_train], y_train[:n_train]
    x_test, y_test = x_test[:n_test], y_test[:n_test]
    n, T = x_train.shape[0], config.T
    sqrt_ab = config.diffusion().alpha_bars.float().sqrt()
    sqrt_1m = (1 - config.diffusion().alpha_bars.float()).sqrt()
    steps_per_epoch = (n + batch_size - 1) // batch_size

    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = NoisyClassifier(config)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
        model.train()
        for epoch in range(epochs):
            perm = torch.randperm(n, generator=gen)
            total, correct, loss_sum = 0, 0, 0.0
            for i in range(0, n, batch_size):
                idx = perm[i : i + batch_size]
                x0 = random_shift(x_train[idx], max_shift, gen)
                t = torch.randint(1, T + 1, (idx.numel(),), generator=gen)
                eps = torch.randn(x0.shape, generator=gen)
                shape = (-1, 1, 1, 1)
                x_t = sqrt_ab[t].reshape(shape) * x0 + sqrt_1m[t].reshape(shape) * eps
                logits = model(x_t, t)
                loss = F.cross_entropy(logits, y_train[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                loss_sum += float(loss.detach()) * idx.numel()
                correct += int((logits.argmax(1) == y_train[idx]).sum())
                total += idx.numel()
            acc = accuracy_by_t(model, x_test, y_test, ts=(1, 500))
            log(
                f"epoch {epoch + 1}/{epochs}: loss {loss_sum / total:.4f}, train acc (all t) "
                f"{correct / total:.4f}, test acc t=1 {acc[1]:.4f}, t=500 {acc[500]:.4f}, "
                f"{time.perf_counter() - start:.0f} s"
            )
    wall = time.perf_counter() - start
    model.eval()
    accuracy = accuracy_by_t(model, x_test, y_test)
    log("test accuracy by t: " + ", ".join(f"{t}: {a:.4f}" for t, a in accuracy.items()))

    weights_path, meta_path = out_dir / WEIGHTS_FILE, out_dir / META_FILE
    settings = {
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "max_shift": max_shift,
    }
    results = {
        "test_accuracy_by_t": {str(t): a for t, a in accuracy.items()},
        "n_train": n,
        "n_test": x_test.shape[0],
    }
    command = command if command is not None else shlex.join(sys.argv)
    save_training_run(
        weights_path,
        meta_path,
        model,
        config.to_dict(),
        NOISY_CLASSIFIER_FORMAT,
        settings,
        wall,
        command,
        results,
    )
    return NoisyClassifierResult(model, accuracy, wall, weights_path, meta_path)


def main(argv: list[str] | None = None) -> int:
    from ddpm_lib.metrics.classifier import add_training_arguments

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
