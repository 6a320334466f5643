"""Tests of ddpm_lib.metrics (Fréchet distance, classifier, MNIST FID) and of loading shipped
weights through ddpm_lib.hub."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import ddpm_lib
from ddpm_lib import hub as pt
from ddpm_lib import io
from ddpm_lib.data import images_to_model, load_mnist
from ddpm_lib.metrics import (
    class_accuracy,
    evaluate_accuracy,
    feature_stats,
    fid_floor,
    frechet_distance,
    load_classifier,
    mnist_fid,
    reference_stats,
)
from ddpm_lib.models import ClassifierConfig, MNISTClassifier
from ddpm_lib.train.classifier import CLASSIFIER_FORMAT, random_shift, train_classifier

NAME = "mnist-classifier"


def random_cov(d: int, rng: np.random.Generator, rank: int | None = None) -> np.ndarray:
    a = rng.standard_normal((d, rank or d))
    return a @ a.T / d


@pytest.fixture(scope="module")
def clf() -> MNISTClassifier:
    return load_classifier()


@pytest.fixture(scope="module")
def test_set() -> tuple[torch.Tensor, torch.Tensor]:
    split = load_mnist("test")
    return images_to_model(split.images), torch.as_tensor(split.labels)


# --- Fréchet distance ----------------------------------------------------------------------------


def test_frechet_identical_is_zero():
    rng = np.random.default_rng(0)
    mu, sigma = rng.standard_normal(16), random_cov(16, rng)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8


@pytest.mark.parametrize("m1,s1,m2,s2", [(0.0, 1.0, 0.0, 2.0), (1.5, 0.3, -2.0, 0.7), (3, 1, 3, 1)])
def test_frechet_1d_closed_form(m1, s1, m2, s2):
    d2 = frechet_distance(np.array([m1]), np.array([[s1**2]]), np.array([m2]), np.array([[s2**2]]))
    assert d2 == pytest.approx((m1 - m2) ** 2 + (s1 - s2) ** 2, abs=1e-10)


def test_frechet_diagonal_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.standard_normal(10), rng.standard_normal(10)
    s1, s2 = rng.uniform(0.1, 2, 10), rng.uniform(0.1, 2, 10)
    expected = np.sum((mu1 - mu2) ** 2 + (s1 - s2) ** 2)
    got = frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_frechet_symmetric_and_torch_inputs():
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.standard_normal(12), rng.standard_normal(12)
    s1, s2 = random_cov(12, rng), random_cov(12, rng)
    ab, ba = frechet_distance(mu1, s1, mu2, s2), frechet_distance(mu2, s2, mu1, s1)
    assert ab > 0.1 and ab == pytest.approx(ba, rel=1e-8)
    t = [torch.from_numpy(a).float() for a in (mu1, s1, mu2, s2)]
    assert frechet_distance(*t) == pytest.approx(ab, rel=1e-4)


def test_frechet_singular_covariances_are_finite():
    # Rank-deficient covariances (dead ReLU features) take the documented eps-offset path.
    rng = np.random.default_rng(3)
    s1, s2 = random_cov(20, rng, rank=3), random_cov(20, rng, rank=3)
    mu = np.zeros(20)
    d2 = frechet_distance(mu, s1, mu, s2)
    assert np.isfinite(d2) and d2 > 0
    assert abs(frechet_distance(mu, s1, mu, s1)) < 1e-3


def test_frechet_rejects_bad_input():
    mu, s = np.zeros(3), np.eye(3)
    with pytest.raises(ValueError, match="sigma2"):
        frechet_distance(mu, s, mu, np.eye(4))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(mu, s, np.array([0.0, np.nan, 0.0]), s)
    with pytest.raises(ValueError, match="eps"):
        frechet_distance(mu, s, mu, s, eps=0.0)


# --- shipped weights ------------------------------------------------------------------------------


def test_shipped_sha256_matches_manifest():
    entry = pt.load_manifest()[NAME]
    path = pt.weights_dir() / entry.file
    data, verified = pt.verified_bytes(NAME)
    assert verified == entry and data == path.read_bytes()
    assert pt.sha256_of(path) == entry.sha256 and path.stat().st_size == entry.size_bytes
    assert entry.info["test_accuracy"] >= 0.99


def _copy_weights(tmp_path, monkeypatch):
    shutil.copytree(pt.weights_dir(), tmp_path / "w")
    monkeypatch.setenv(pt.ENV_VAR, str(tmp_path / "w"))
    return tmp_path / "w" / pt.load_manifest()[NAME].file


def test_tampered_weights_refused(tmp_path, monkeypatch):
    path = _copy_weights(tmp_path, monkeypatch)
    assert pt.verified_bytes(NAME)[0] == path.read_bytes()  # the untouched copy passes
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(pt.WeightsError, match="sha256 mismatch"):
        pt.verified_bytes(NAME)
    with pytest.raises(ValueError, match="sha256 mismatch"):
        load_classifier()


def test_truncated_or_missing_weights_refused(tmp_path, monkeypatch):
    path = _copy_weights(tmp_path, monkeypatch)
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(pt.WeightsError, match="truncated"):
        load_classifier()
    path.unlink()
    with pytest.raises(pt.WeightsError, match="missing"):
        pt.verified_bytes(NAME)
    with pytest.raises(pt.WeightsError, match="no manifest entry"):
        pt.verified_bytes("no-such-model")


def test_classifier_config_in_the_file_must_match_the_manifest(tmp_path, monkeypatch):
    _copy_weights(tmp_path, monkeypatch)
    manifest = tmp_path / "w" / pt.MANIFEST
    raw = json.loads(manifest.read_text())
    raw["entries"][NAME]["config"]["feature_dim"] = 64
    manifest.write_text(json.dumps(raw))
    with pytest.raises(pt.WeightsError, match="differs from the manifest"):
        load_classifier()


def test_shipped_bytes_parse_and_garbage_is_refused(tmp_path):
    data = (pt.weights_dir() / pt.load_manifest()[NAME].file).read_bytes()
    with pytest.raises(ValueError, match="not a valid safetensors"):
        io.parse_safetensors(data[: len(data) // 2])
    foreign = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="not a valid safetensors"):
        io.parse_safetensors(foreign.read_bytes(), str(foreign))
    content = io.parse_safetensors(data)
    assert json.loads(content.metadata["config"]) == pt.load_manifest()[NAME].info["config"]


def test_pretrained_loads_diffusion_models_only():
    assert NAME in pt.load_manifest() and NAME not in pt.available()
    assert {"mnist-unet", "mnist-unet-cfg"} <= set(pt.available())
    with pytest.raises(ValueError, match="no pretrained model.*metrics.load_classifier"):
        ddpm_lib.pretrained(NAME)
    with pytest.raises(ValueError, match="no pretrained model"):
        pt.pretrained("mnist-nothing")


# --- classifier -----------------------------------------------------------------------------------


def test_shipped_classifier_accuracy(clf, test_set):
    x, y = test_set
    assert not clf.training and next(clf.parameters()).dtype == torch.float32
    assert evaluate_accuracy(clf, x[:2000], y[:2000]) >= 0.985


@pytest.mark.slow  # 4000 classifications
def test_class_accuracy(clf, test_set):
    x, y = test_set
    assert class_accuracy(x[:2000], y[:2000], clf) >= 0.985
    # Wrong labels must score low: the classifier really looks at the images.
    assert class_accuracy(x[:2000], (y[:2000] + 1) % 10, clf) < 0.05
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        class_accuracy(x[:4], torch.tensor([0, 1, 2, 10]), clf)
    with pytest.raises(ValueError, match="shape"):
        class_accuracy(x[:4], y[:3], clf)


def test_random_shift_moves_but_keeps_ink(test_set):
    x = test_set[0][:200]
    # Keep images whose outer 2-pixel frame is background: a 2-pixel shift must keep all their ink.
    frame = torch.ones(28, 28, dtype=torch.bool)
    frame[2:-2, 2:-2] = False
    x = x[(x[:, 0, frame] == -1).all(1)]
    assert x.shape[0] > 150
    shifted = random_shift(x, 2, torch.Generator().manual_seed(0))
    torch.testing.assert_close((shifted + 1).sum((1, 2, 3)), (x + 1).sum((1, 2, 3)))
    assert (shifted != x).any(dim=(1, 2, 3)).float().mean() > 0.7
    assert shifted.min() == -1 and shifted.max() == x.max()


@pytest.mark.slow  # three training runs
def test_train_classifier_deterministic(tmp_path, monkeypatch):
    # A tiny stand-in dataset keeps this fast; the real run is documented in the manifest.
    class Split:
        def __init__(self, n, seed):
            g = torch.Generator().manual_seed(seed)
            self.images = torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8)
            self.labels = torch.randint(0, 10, (n,), generator=g)

    monkeypatch.setattr("ddpm_lib.data.load_mnist", lambda s: Split(256 if s == "train" else 64, 1))
    cfg = ClassifierConfig(channels=(4, 8), feature_dim=16)
    kw = dict(epochs=1, seed=3, batch_size=64, config=cfg, log=lambda s: None)
    a = train_classifier(tmp_path / "a", **kw)
    b = train_classifier(tmp_path / "b", **kw)
    c = train_classifier(tmp_path / "c", **{**kw, "seed": 4})
    # written like every file of the library: tagged, digested, atomic (no temp file left)
    sa, sb, sc = (io.load_safetensors(r.weights_path, CLASSIFIER_FORMAT) for r in (a, b, c))
    for k, v in sa.tensors.items():
        torch.testing.assert_close(v, sb.tensors[k], rtol=0, atol=0)
    assert not torch.equal(sa.tensors["fc2.weight"], sc.tensors["fc2.weight"])
    assert json.loads(sa.metadata["config"]) == cfg.to_dict()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "classifier.json",
        "classifier.safetensors",
    ]
    meta = json.loads(a.meta_path.read_text())
    assert meta["seed"] == 3 and meta["epochs"] == 1 and meta["config"] == cfg.to_dict()
    assert meta["test_accuracy"] == a.test_accuracy


# --- FID ------------------------------------------------------------------------------------------


def test_feature_stats_shapes_and_validation(clf, test_set):
    x = test_set[0]
    s = feature_stats(x[:100], clf)
    d = clf.config.feature_dim
    assert s.mu.shape == (d,) and s.sigma.shape == (d, d) and s.n == 100
    np.testing.assert_allclose(s.sigma, s.sigma.T)
    with pytest.raises(ValueError, match="at least 2"):
        feature_stats(x[:1], clf)
    with pytest.raises(ValueError, match=r"\[N, 1, 28, 28\]"):
        feature_stats(x[:10, 0], clf)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        feature_stats((x[:10] + 1) * 127.5, clf)
    with pytest.raises(TypeError, match="floating"):
        feature_stats(load_mnist("test").images[:10, None], clf)


@pytest.mark.slow  # features of 13k images and two matrix square roots
def test_mnist_fid_real_vs_noise(clf, test_set):
    # A random subset: the test set is ordered by writer population, so its first 1000 images
    # are not a fair sample of it.
    x = test_set[0][torch.randperm(10000, generator=torch.Generator().manual_seed(1))[:1000]]
    real = mnist_fid(x, classifier=clf)
    noise = torch.randn(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    fake = mnist_fid(noise, classifier=clf)
    assert real.n == fake.n == 1000 and real.floor == fake.floor
    assert fake.fid > 50 * max(real.fid, real.floor)
    # Real images score like the floor (same n, both real), and the floor is small.
    assert real.fid < 1.5 * real.floor
    assert 0 < real.floor < 10.0
    # The reference statistics are computed once per classifier weights.
    assert reference_stats(clf) is reference_stats(clf)
    assert fid_floor(2000, clf) < real.floor  # FID's small-sample bias shrinks with n
    with pytest.raises(ValueError, match="60000"):
        fid_floor(1, clf)
