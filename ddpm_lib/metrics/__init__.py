"""Evaluation of MNIST generators: a small classifier, its accuracy, an MNIST FID with a floor, and the
within-class spread.

>>> from ddpm_lib.metrics import mnist_fid, class_accuracy
>>> r = mnist_fid(samples)   # samples float [N, 1, 28, 28] in [-1, 1]
>>> print(f"FID {r.fid:.2f} (real-data floor at n={r.n}: {r.floor:.2f})")

Modules: :mod:`.classifier` (the LeNet-style network, its training loop, and
:func:`load_classifier` for the shipped weights, checksum verified through :mod:`ddpm_lib.hub`),
:mod:`.fid` (Fréchet distance, feature statistics, cached reference statistics).
CLI: ``python -m ddpm_lib.metrics --help``.
"""

from .classifier import (
    ClassifierConfig,
    ClassifierResult,
    MNISTClassifier,
    evaluate_accuracy,
    load_classifier,
    predict,
    train_classifier,
)
from .fid import (
    FeatureStats,
    FIDResult,
    class_accuracy,
    feature_stats,
    fid_floor,
    frechet_distance,
    mnist_fid,
    reference_stats,
    within_class_spread,
)

__all__ = [
    "ClassifierConfig",
    "ClassifierResult",
    "FIDResult",
    "FeatureStats",
    "MNISTClassifier",
    "class_accuracy",
    "evaluate_accuracy",
    "feature_stats",
    "fid_floor",
    "frechet_distance",
    "load_classifier",
    "mnist_fid",
    "predict",
    "reference_stats",
    "train_classifier",
    "within_class_spread",
]
