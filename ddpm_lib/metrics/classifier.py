r"""A small LeNet-style MNIST classifier: the feature extractor behind the MNIST FID.

The Inception network of the usual FID (Heusel et al. 2017) was trained on ImageNet photographs and says
little about 28x28 digits; an MNIST classifier's penultimate layer is the standard stand-in. The network
is LeNet-shaped (LeCun et al. 1998): conv-pool-conv-pool-fc-fc,

.. math::
    x \in [-1, 1]^{1\times 28\times 28}
    \xrightarrow{\text{conv}5\times5,\ \text{ReLU},\ \text{pool}} 14\times14
    \xrightarrow{\text{conv}5\times5,\ \text{ReLU},\ \text{pool}} 7\times7
    \xrightarrow{\text{fc},\ \text{ReLU}} \phi(x) \in \mathbb{R}^{d}
    \xrightarrow{\text{fc}} \text{logits} \in \mathbb{R}^{10}

and :math:`\phi(x)` (``MNISTClassifier.features``) is what ``ddpm_lib.metrics.fid`` compares.
Inputs use the library-wide convention: float ``[N, 1, 28, 28]`` in ``[-1, 1]``.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ddpm_lib import hub, io

__all__ = [
    "ClassifierConfig",
    "MNISTClassifier",
    "ClassifierResult",
    "load_classifier",
    "train_classifier",
    "evaluate_accuracy",
    "predict",
    "check_images",
    "save_training_run",
    "add_training_arguments",
]

WEIGHTS_FILE = "classifier.safetensors"
META_FILE = "classifier.json"
CLASSIFIER_FORMAT = "ddpm_lib.classifier/1"
SHIPPED = "mnist-classifier"


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture hyper-parameters, saved next to the weights and checked on load.

    Args:
        channels: output channels of the two conv layers.
        feature_dim: width :math:`d` of the penultimate layer :math:`\\phi(x)` used by the FID.
        dropout: dropout probability before the last layer (training only).
        num_classes: number of classes (10 digits).
    """

    channels: tuple[int, int] = (32, 64)
    feature_dim: int = 128
    dropout: float = 0.25
    num_classes: int = 10

    def __post_init__(self) -> None:
        if len(self.channels) != 2 or any(int(c) < 1 for c in self.channels):
            raise ValueError(f"channels must be two positive ints, got {self.channels!r}")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if int(self.feature_dim) < 1:
            raise ValueError(f"feature_dim must be >= 1, got {self.feature_dim}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if int(self.num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, d: dict) -> ClassifierConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(
                f"unknown ClassifierConfig fields {sorted(unknown)}; known: {sorted(names)}"
            )
        return cls(**{**d, "channels": tuple(d.get("channels", cls.channels))})


def check_images(name: str, x: object, min_n: int = 1, tol: float = 0.05) -> torch.Tensor:
    """Validate model-space images: a float tensor ``[N, 1, 28, 28]``, ``N >= min_n``, values in
    ``[-1 - tol, 1 + tol]`` (a little slack for samplers that overshoot; data in ``[0, 1]`` or
    ``[0, 255]`` is caught only if it leaves that band, so the range check is a guard, not a proof).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(
            f"{name} must be a floating-point tensor in [-1, 1] (use ddpm_lib.data.images_to_model "
            f"for uint8 images), got dtype {x.dtype}"
        )
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"{name} must have shape [N, 1, 28, 28], got {list(x.shape)}")
    if x.shape[0] < min_n:
        raise ValueError(f"{name} must hold at least {min_n} images, got N = {x.shape[0]}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf values")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1.0 - tol or hi > 1.0 + tol:
        raise ValueError(
            f"{name} must lie in [-1, 1] (tolerance {tol}), got values in [{lo:.4g}, {hi:.4g}]"
        )
    return x


class MNISTClassifier(nn.Module):
    """LeNet-style CNN. ``forward(x)``: ``[N, 1, 28, 28]`` in ``[-1, 1]`` -> logits ``[N, 10]``;
    ``features(x)`` -> penultimate activations :math:`\\phi(x)`, ``[N, feature_dim]`` (after ReLU)."""

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else ClassifierConfig()
        c1, c2 = self.config.channels
        self.conv1 = nn.Conv2d(1, c1, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=5, padding=2)
        self.fc1 = nn.Linear(c2 * 7 * 7, self.config.feature_dim)
        self.dropout = nn.Dropout(self.config.dropout)
        self.fc2 = nn.Linear(self.config.feature_dim, self.config.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        r"""Penultimate-layer features :math:`\phi(x)`: ``[N, 1, 28, 28]`` -> ``[N, feature_dim]``."""
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc1(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.features(x)))


def load_classifier(device: str | torch.device = "cpu") -> MNISTClassifier:
    """The shipped classifier (``weights/mnist-classifier.safetensors``, checksum verified through
    :mod:`ddpm_lib.hub`) in eval mode on ``device``, with float32 parameters."""
    entry = hub.load_manifest().get(SHIPPED)
    if entry is None or "config" not in entry.info:
        raise hub.WeightsError(
            f"no manifest entry {SHIPPED!r} with a 'config' in {hub.weights_dir()}"
        )
    config = ClassifierConfig.from_dict(entry.info["config"])
    model = hub.load_module(SHIPPED, MNISTClassifier(config), config.to_dict())
    return model.to(device).eval()


@torch.no_grad()
def predict(model: MNISTClassifier, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted labels ``[N]`` (int64) for images ``[N, 1, 28, 28]`` in ``[-1, 1]``, in eval mode."""
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    out = [
        model(x[i : i + batch_size].to(param.device, param.dtype)).argmax(1).cpu()
        for i in range(0, x.shape[0], batch_size)
    ]
    model.train(was_training)
    return torch.cat(out)


def evaluate_accuracy(
    model: MNISTClassifier, x: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000
) -> float:
    """Fraction of ``x`` ([N, 1, 28, 28] in [-1, 1]) whose predicted label equals ``labels`` ([N])."""
    check_images("x", x)
    if labels.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape [{x.shape[0]}], got {list(labels.shape)}")
    return float((predict(model, x, batch_size) == labels.cpu()).double().mean())


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
    ``settings``, command line, wall time, machine and ``results``. Shared by this module's
    trainer and :mod:`ddpm_lib.train.classifier`'s."""
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


class ClassifierResult(NamedTuple):
    """What :func:`train_classifier` returns."""

    model: MNISTClassifier
    test_accuracy: float
    wall_time_s: float
    weights_path: Path
    meta_path: Path


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
    r"""Train ``MNISTClassifier`` on the 60k MNIST training images and write
    ``out_dir/classifier.safetensors`` (fp32, tagged ``ddpm_lib.classifier/1`` and digested by
    :func:`ddpm_lib.io.save_safetensors`, like every file the library writes) and
    ``out_dir/classifier.json`` (config, seed, epochs, command line, wall time, machine, test
    accuracy on the official 10k test set).

    AdamW with a cosine learning-rate decay to 0, cross-entropy loss, random translations of up to
    ``max_shift`` pixels as the only augmentation. Every random draw (initialisation, dropout, shuffle,
    shifts) comes from ``seed``; the global RNG state is restored afterwards. On one CPU with a fixed
    thread count the run is bit-reproducible; the thread count is recorded in the json.
    """
    from ddpm_lib.data import images_to_model, load_mnist

    for name, value, lo in (
        ("epochs", epochs, 1),
        ("batch_size", batch_size, 1),
        ("seed", seed, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if not 0 <= max_shift <= 4:
        raise ValueError(f"max_shift must be in [0, 4], got {max_shift}")
    config = config if config is not None else ClassifierConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    train, test = load_mnist("train"), load_mnist("test")
    x_train, y_train = images_to_model(train.images), torch.as_tensor(train.labels)
    x_test, y_test = images_to_model(test.images), torch.as_tensor(test.labels)
    n = x_train.shape[0]
    steps_per_epoch = (n + batch_size - 1) // batch_size

    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = MNISTClassifier(config)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
        model.train()
        for epoch in range(epochs):
            perm = torch.randperm(n, generator=gen)
            total, correct, loss_sum = 0, 0, 0.0
            for i in range(0, n, batch_size):
                idx = perm[i : i + batch_size]
                xb = random_shift(x_train[idx], max_shift, gen)
                logits = model(xb)
                loss = F.cross_entropy(logits, y_train[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                loss_sum += float(loss.detach()) * idx.numel()
                correct += int((logits.argmax(1) == y_train[idx]).sum())
                total += idx.numel()
            test_acc = evaluate_accuracy(model, x_test, y_test)
            log(
                f"epoch {epoch + 1}/{epochs}: loss {loss_sum / total:.4f}, train acc "
                f"{correct / total:.4f}, test acc {test_acc:.4f}, {time.perf_counter() - start:.0f} s"
            )
    wall = time.perf_counter() - start
    model.eval()

    weights_path, meta_path = out_dir / WEIGHTS_FILE, out_dir / META_FILE
    settings = {
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "max_shift": max_shift,
    }
    save_training_run(
        weights_path,
        meta_path,
        model,
        config.to_dict(),
        CLASSIFIER_FORMAT,
        settings,
        wall,
        command,
        {"test_accuracy": test_acc},
    )
    return ClassifierResult(model, test_acc, wall, weights_path, meta_path)
