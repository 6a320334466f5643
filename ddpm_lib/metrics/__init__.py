"""Evaluation of MNIST generators: a small classifier, its accuracy, an MNIST FID with a floor, and the
within-class spread.

>>> from ddpm_lib.metrics import mnist_fid, class_accuracy
>>> r = mnist_fid(samples)   # samples float [N, 1, 28, 28] in [-1, 1]
>>> print(f"FID {r.fid:.2f} (real-data floor at n={r.n}: {r.floor:.2f})")

Modules: :mod:`.classifier` (:func:`load_classifier` for the shipped
:class:`ddpm_lib.models.MNISTClassifier`, checksum verified through :mod:`ddpm_lib.hub`, its
predictions and accuracy; the network is trained by :mod:`ddpm_lib.train.classifier`),
:mod:`.fid` (Fréchet distance, feature statistics, cached reference statistics).
CLI: ``python -m ddpm_lib.metrics --help``."""

from .classifier import evaluate_accuracy, load_classifier, predict
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
    "FIDResult",
    "FeatureStats",
    "class_accuracy",
    "evaluate_accuracy",
    "feature_stats",
    "fid_floor",
    "frechet_distance",
    "load_classifier",
    "mnist_fid",
    "predict",
    "reference_stats",
    "within_class_spread",
]
