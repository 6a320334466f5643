r"""The MNIST classifier behind the FID: the shipped weights, its predictions and accuracy.

The network, :class:`ddpm_lib.models.MNISTClassifier`, and its training,
:func:`ddpm_lib.train.classifier.train_classifier`, live with the other models and trainers; this
module evaluates. The Inception network of the usual FID (Heusel et al. 2017) was trained on ImageNet photographs and says
little about 28x28 digits; an MNIST classifier's penultimate layer is the standard stand-in. The network
is LeNet-shaped (LeCun et al. 1998): conv-pool-conv-pool-fc-fc,

.. math::
    x \in [-1, 1]^{1\times 28\times 28}
    \xrightarrow{\text{conv}5\times5,\ \text{ReLU},\ \text{pool}} 14\times14
    \xrightarrow{\text{conv}5\times5,\ \text{ReLU},\ \text{pool}} 7\times7
    \xrightarrow{\text{fc},\ \text{ReLU}} \phi(x) \in \mathbb{R}^{d}
    \xrightarrow{\text{fc}} \text{logits} \in \mathbb{R}^{10}

and :math:`\phi(x)` (``MNISTClassifier.features``) is what :mod:`ddpm_lib.metrics.fid` compares.
Inputs use the library-wide convention: float ``[N, 1, 28, 28]`` in ``[-1, 1]``."""

from __future__ import annotations

import torch

from ddpm_lib import hub
from ddpm_lib.models.classifier import ClassifierConfig, MNISTClassifier

SHIPPED = "mnist-classifier"


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
