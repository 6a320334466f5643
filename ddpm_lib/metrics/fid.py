r"""The Fréchet distance between feature Gaussians (FID), measured with the MNIST classifier.

FID (Heusel et al. 2017, Sec. 3 / App. "FID") fits a Gaussian to the features of each image set and
reports the Fréchet (2-Wasserstein) distance between the two Gaussians:

.. math::
    d^2\big(\mathcal N(\mu_1, \Sigma_1), \mathcal N(\mu_2, \Sigma_2)\big)
    = \lVert \mu_1 - \mu_2 \rVert_2^2
      + \operatorname{Tr}\!\big(\Sigma_1 + \Sigma_2 - 2\,(\Sigma_1 \Sigma_2)^{1/2}\big)

Here the features are the penultimate layer :math:`\phi(x) \in \mathbb{R}^{128}` of the shipped
:class:`~ddpm_lib.models.MNISTClassifier` rather than Inception-v3 pool features, so the
numbers are **not** comparable with ImageNet/CIFAR FIDs in papers. To make them interpretable,
:func:`mnist_fid` always returns a *floor* next to the FID: the FID of ``n`` real training images
against the test set, i.e. what a perfect generator would score with the same number of samples
(FID is biased upward at small ``n``).

With it, the other two columns of chapter 7's guidance tables: :func:`class_accuracy` (does a
sample show its class?) and :func:`within_class_spread` (how different are two samples of one class?).
"""

from __future__ import annotations

import hashlib
import warnings
from typing import NamedTuple

import numpy as np
import scipy.linalg
import torch

from .._validate import check_int
from ..models.classifier import MNISTClassifier
from .classifier import check_images, load_classifier, predict

#: Seed of the fixed random subset of training images used for the real-data floor.
FLOOR_SEED = 0
#: Offset added to both covariance diagonals when :math:`(\Sigma_1\Sigma_2)^{1/2}` is not finite.
SQRTM_EPS = 1e-6
#: Largest |imaginary part| on the diagonal of the matrix square root accepted as rounding noise.
IMAG_TOL = 1e-3


class FeatureStats(NamedTuple):
    """Gaussian fit of a feature set: ``mu`` float64 ``[d]``, ``sigma`` float64 ``[d, d]``
    (unbiased covariance, divisor ``n - 1``), and the number of images ``n``."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int


class FIDResult(NamedTuple):
    """``fid`` of the samples against the test set, the real-data ``floor`` at the same sample count
    (``n`` real training images against the test set), and ``n``."""

    fid: float
    floor: float
    n: int


def _as_float64(name: str, a: object, ndim: int) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().double().numpy()
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {list(a.shape)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf values")
    return a


def _sqrtm(a: np.ndarray) -> np.ndarray:
    # Singular products are the normal case here (dead ReLU features have zero variance), and scipy
    # warns about each of them; the caller checks the result for finiteness and imaginary parts.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        return scipy.linalg.sqrtm(a)


def frechet_distance(
    mu1: np.ndarray | torch.Tensor,
    sigma1: np.ndarray | torch.Tensor,
    mu2: np.ndarray | torch.Tensor,
    sigma2: np.ndarray | torch.Tensor,
    eps: float = SQRTM_EPS,
) -> float:
    r"""Squared Fréchet distance between :math:`\mathcal N(\mu_1, \Sigma_1)` and
    :math:`\mathcal N(\mu_2, \Sigma_2)` (Heusel et al. 2017; Dowson & Landau 1982):

    .. math:: d^2 = \lVert \mu_1 - \mu_2 \rVert^2
        + \operatorname{Tr}\Sigma_1 + \operatorname{Tr}\Sigma_2
        - 2 \operatorname{Tr}(\Sigma_1 \Sigma_2)^{1/2}

    In one dimension this is :math:`(\mu_1 - \mu_2)^2 + (\sigma_1 - \sigma_2)^2`.

    Numerics: :math:`(\Sigma_1\Sigma_2)^{1/2}` comes from ``scipy.linalg.sqrtm``. If it is not finite
    (singular covariances, e.g. dead ReLU features), both covariances get ``eps * I`` added and the
    root is recomputed (singular but finite products are used as they are; scipy's warning about
    them is silenced). Rounding can leave small imaginary parts: they are dropped if every diagonal
    entry's imaginary part is below ``IMAG_TOL`` (1e-3), otherwise a ValueError is raised. The result
    is not clipped at 0, so identical inputs can give a value of order ``-1e-10``.

    Args:
        mu1, mu2: means ``[d]``. sigma1, sigma2: covariances ``[d, d]`` (symmetric PSD).
        eps: diagonal offset used only when the first square root is not finite, ``> 0``.

    Returns:
        :math:`d^2` as a Python float (the quantity called "FID").
    """
    mu1, mu2 = _as_float64("mu1", mu1, 1), _as_float64("mu2", mu2, 1)
    sigma1, sigma2 = _as_float64("sigma1", sigma1, 2), _as_float64("sigma2", sigma2, 2)
    d = mu1.shape[0]
    for name, s in (("sigma1", sigma1), ("sigma2", sigma2)):
        if s.shape != (d, d):
            raise ValueError(f"{name} must have shape [{d}, {d}] to match mu1, got {list(s.shape)}")
    if mu2.shape != (d,):
        raise ValueError(f"mu2 must have shape [{d}] to match mu1, got {list(mu2.shape)}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")

    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = eps * np.eye(d)
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        max_imag = float(np.abs(np.diagonal(covmean).imag).max())
        if max_imag > IMAG_TOL:
            raise ValueError(
                f"the matrix square root has imaginary diagonal entries up to {max_imag:.3g} "
                f"(allowed {IMAG_TOL}); the covariances are probably not PSD or far too few samples"
            )
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


@torch.no_grad()
def _features(images: torch.Tensor, classifier: MNISTClassifier, batch_size: int) -> np.ndarray:
    was_training = classifier.training
    classifier.eval()
    param = next(classifier.parameters())
    chunks = [
        classifier.features(images[i : i + batch_size].to(param.device, param.dtype)).double().cpu()
        for i in range(0, images.shape[0], batch_size)
    ]
    classifier.train(was_training)
    return torch.cat(chunks).numpy()


def feature_stats(
    images: torch.Tensor, classifier: MNISTClassifier | None = None, batch_size: int = 500
) -> FeatureStats:
    r"""Mean and covariance of :math:`\phi(x)` over ``images``.

    .. math:: \mu = \frac1n \sum_i \phi(x_i), \qquad
        \Sigma = \frac{1}{n - 1} \sum_i (\phi(x_i) - \mu)(\phi(x_i) - \mu)^\top

    Args:
        images: float ``[N, 1, 28, 28]`` in ``[-1, 1]``, ``N >= 2``.
        classifier: feature extractor; ``None`` loads the shipped, checksum-verified one.
        batch_size: images per forward pass, ``>= 1``.

    Returns:
        :class:`FeatureStats` with ``mu [d]`` and ``sigma [d, d]`` in float64.
    """
    check_images("images", images, min_n=2)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    classifier = classifier if classifier is not None else _default_classifier()
    feats = _features(images, classifier, batch_size)
    return FeatureStats(feats.mean(axis=0), np.cov(feats, rowvar=False), feats.shape[0])


# --- cached reference statistics ------------------------------------------------------------------

_DEFAULT: list[MNISTClassifier] = []
_TEST_STATS: dict[str, FeatureStats] = {}
_FLOORS: dict[tuple[str, int, int], float] = {}


def _default_classifier() -> MNISTClassifier:
    if not _DEFAULT:
        _DEFAULT.append(load_classifier())
    return _DEFAULT[0]


def _fingerprint(classifier: MNISTClassifier) -> str:
    """Hash of the weights: the cache key, so retraining or editing a classifier invalidates it."""
    h = hashlib.sha256()
    for name, t in classifier.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def reference_stats(classifier: MNISTClassifier | None = None) -> FeatureStats:
    """Feature statistics of the 10,000 official MNIST test images (cached per classifier weights)."""
    from ddpm_lib.data import images_to_model, load_mnist

    classifier = classifier if classifier is not None else _default_classifier()
    key = _fingerprint(classifier)
    if key not in _TEST_STATS:
        _TEST_STATS[key] = feature_stats(images_to_model(load_mnist("test").images), classifier)
    return _TEST_STATS[key]


def fid_floor(n: int, classifier: MNISTClassifier | None = None, seed: int = FLOOR_SEED) -> float:
    """FID of ``n`` real training images (a fixed subset drawn with ``seed``) against the test set:
    the score of a perfect generator with ``n`` samples. Cached per (weights, n, seed)."""
    from ddpm_lib.data import images_to_model, load_mnist

    check_int("n", n, 2, 60000)
    classifier = classifier if classifier is not None else _default_classifier()
    key = (_fingerprint(classifier), n, seed)
    if key not in _FLOORS:
        train = load_mnist("train").images
        idx = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
        real = feature_stats(images_to_model(train[idx]), classifier)
        ref = reference_stats(classifier)
        _FLOORS[key] = frechet_distance(real.mu, real.sigma, ref.mu, ref.sigma)
    return _FLOORS[key]


def mnist_fid(
    samples: torch.Tensor, n_ref: int | None = None, classifier: MNISTClassifier | None = None
) -> FIDResult:
    """FID of generated ``samples`` against the MNIST test set, with the real-data floor.

    Args:
        samples: float ``[N, 1, 28, 28]`` in ``[-1, 1]``, ``N >= 2`` (values further than 0.05
            outside are refused, not clipped: clip the sampler's output yourself if you mean to).
        n_ref: number of real training images for the floor; default ``N``, the fair comparison
            because FID grows as the sample count shrinks.
        classifier: feature extractor; ``None`` loads the shipped, checksum-verified one.

    Returns:
        :class:`FIDResult` ``(fid, floor, n)``; report ``fid`` next to ``floor``.
    """
    check_images("samples", samples, min_n=2)
    n = samples.shape[0]
    classifier = classifier if classifier is not None else _default_classifier()
    ref = reference_stats(classifier)
    gen = feature_stats(samples, classifier)
    fid = frechet_distance(gen.mu, gen.sigma, ref.mu, ref.sigma)
    floor = fid_floor(n if n_ref is None else n_ref, classifier)
    return FIDResult(fid, floor, n)


def class_accuracy(
    samples: torch.Tensor, labels: torch.Tensor, classifier: MNISTClassifier | None = None
) -> float:
    """Fraction of ``samples`` (``[N, 1, 28, 28]`` in ``[-1, 1]``) that the classifier assigns to the
    intended class ``labels`` (integer ``[N]`` in 0..9), e.g. for class-conditional sampling."""
    check_images("samples", samples, min_n=1)
    if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point:
        raise TypeError(f"labels must be an integer tensor, got {labels!r:.80}")
    if labels.shape != (samples.shape[0],):
        raise ValueError(f"labels must have shape [{samples.shape[0]}], got {list(labels.shape)}")
    classifier = classifier if classifier is not None else _default_classifier()
    k = classifier.config.num_classes
    if int(labels.min()) < 0 or int(labels.max()) >= k:
        raise ValueError(
            f"labels must lie in [0, {k - 1}], got [{int(labels.min())}, {int(labels.max())}]"
        )
    return float((predict(classifier, samples) == labels.cpu()).double().mean())


def within_class_spread(x: torch.Tensor, labels: torch.Tensor) -> float:
    r"""The mean distance between two different samples of the same label, averaged over the
    labels with at least two samples (chapter 7's "within-class spread", the diversity column of
    ``benchmarks/guidance.py``; it shrinks as guidance trades variety for class fidelity):

    .. math:: \frac{1}{|\mathcal K|} \sum_{k \in \mathcal K} \frac{1}{n_k (n_k - 1)}
        \sum_{i \ne j,\ y_i = y_j = k} \lVert x_i - x_j \rVert_2

    over the set :math:`\mathcal K` of labels with :math:`n_k \ge 2`. ``x`` ``[N, ...]`` (e.g.
    images ``[N, 1, 28, 28]``, flattened per sample), ``labels`` integer ``[N]``; returns a float,
    NaN when no label has two samples."""
    if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point or x.dim() < 2:
        raise TypeError(f"x must be a floating-point torch.Tensor [N, ...], got {x!r:.80}")
    if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point:
        raise TypeError(f"labels must be an integer tensor, got {labels!r:.80}")
    if labels.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape [{x.shape[0]}], got {list(labels.shape)}")
    values = []
    for k in labels.unique():
        xs = x[labels == k].flatten(1)
        m = xs.shape[0]
        if m >= 2:  # the diagonal of cdist is 0: the sum covers the m (m - 1) ordered pairs
            values.append(float(torch.cdist(xs, xs).sum() / (m * (m - 1))))
    return sum(values) / len(values) if values else float("nan")
