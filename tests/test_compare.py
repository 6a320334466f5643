"""The evaluation helpers the book, the benchmarks and the tests share: the KS test per coordinate
and the energy distance (ddpm_lib.toy.compare), the tilted density of classifier guidance
(GaussianMixture.tilted_log_prob / tilted_sample) and the within-class spread (ddpm_lib.metrics),
each against a computation written out here."""

import math

import pytest
import torch
from scipy import stats

from ddpm_lib import metrics, toy


def _mix() -> toy.GaussianMixture:
    return toy.GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [0.8, -0.2]], [0.4, 0.25])


# ------------------------------------------------------------------------- KS per coordinate


def test_ks_per_coordinate_is_scipy_against_each_marginal():
    g = _mix()
    x = g.sample(500, generator=torch.Generator().manual_seed(0))
    p = toy.ks_per_coordinate(x, g)
    assert isinstance(p, list) and len(p) == 2 and all(isinstance(v, float) for v in p)
    for j in range(2):  # the marginal of coordinate j, written with scipy's normal cdf
        w, m, s = g.weights.numpy(), g.means[:, j].numpy(), g.stds.numpy()

        def cdf(v, w=w, m=m, s=s):
            return sum(w[k] * stats.norm(m[k], s[k]).cdf(v) for k in range(2))

        assert p[j] == pytest.approx(stats.kstest(x[:, j].numpy(), cdf).pvalue, rel=1e-9)
    assert min(p) > 1e-3  # true draws pass


def test_ks_per_coordinate_rejects_a_shifted_coordinate_only():
    g = _mix()
    x = g.sample(2000, generator=torch.Generator().manual_seed(1))
    x[:, 1] += 0.3
    p = toy.ks_per_coordinate(x, g)
    assert p[0] > 1e-3 and p[1] < 1e-10
    # float32 samples and a 1-D law work too (chapter 6's 1-D simulation)
    one = toy.three_bumps()
    y = one.sample(1000, generator=torch.Generator().manual_seed(2))
    assert toy.ks_per_coordinate(y.float(), one)[0] > 1e-3


@pytest.mark.parametrize(
    "samples, law, err, word",
    [
        (torch.zeros(5, 3, dtype=torch.float64), _mix(), ValueError, "samples"),
        (torch.zeros(5, dtype=torch.float64), _mix(), ValueError, "samples"),
        (torch.zeros(5, 2, dtype=torch.int64), _mix(), TypeError, "samples"),
        (torch.zeros(5, 2, dtype=torch.float64), "mixture", TypeError, "law"),
    ],
)
def test_ks_per_coordinate_refuses(samples, law, err, word):
    with pytest.raises(err, match=word):
        toy.ks_per_coordinate(samples, law)


# ---------------------------------------------------------------------------- energy distance


def test_energy_distance_by_hand():
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    y = torch.tensor([[3.0]], dtype=torch.float64)
    # 2 * mean(3, 2) - mean(0, 1, 1, 0) - 0 = 5 - 0.5 (the V-statistic keeps the zero diagonal)
    assert toy.energy_distance(x, y) == pytest.approx(4.5, abs=1e-12)
    assert toy.energy_distance(y, x) == pytest.approx(4.5, abs=1e-12)
    assert toy.energy_distance(x, x) == 0.0


def test_energy_distance_separates_laws():
    g, gen = _mix(), torch.Generator().manual_seed(3)
    a, b = g.sample(400, generator=gen), g.sample(400, generator=gen)
    floor = toy.energy_distance(a, b)
    assert 0 < floor < 0.02
    assert toy.energy_distance(a, b + 0.5) > 10 * floor


@pytest.mark.parametrize(
    "x, y, err, word",
    [
        (torch.zeros(4, 2), torch.zeros(3, 3), ValueError, "same D"),
        (torch.zeros(4), torch.zeros(3, 1), ValueError, "x"),
        (torch.zeros(4, 2), torch.zeros(0, 2), ValueError, "y"),
        (torch.zeros(4, 2, dtype=torch.int64), torch.zeros(3, 2), TypeError, "x"),
    ],
)
def test_energy_distance_refuses(x, y, err, word):
    with pytest.raises(err, match=word):
        toy.energy_distance(x, y)


# ---------------------------------------------------------------------------- tilted density


def test_tilted_log_prob_at_gamma_zero_one_and_three():
    g = toy.two_d_mixture()
    x = g.sample(300, generator=torch.Generator().manual_seed(4))
    assert torch.equal(g.tilted_log_prob(x, 2, 0.0), g.log_prob(x))
    # gamma = 1: q(x) q(y | x) = pi_y N(x; mu_y, s_y^2 I), the Bayes conditional times pi_y
    k = 2
    comp = toy.GaussianMixture([1.0], g.means[k : k + 1], g.stds[k : k + 1])
    got = g.tilted_log_prob(x, k, 1.0) - g.weights[k].log()
    assert torch.allclose(got, comp.log_prob(x), rtol=1e-12, atol=1e-12)
    joint = torch.stack(  # log pi_j + log N(x; mu_j, s_j^2 I) for each component j
        [g.weights[j].log() + toy.GaussianMixture([1.0], g.means[j : j + 1], g.stds[j : j + 1])
         .log_prob(x) for j in range(g.K)], dim=1)  # fmt: skip
    posterior = torch.softmax(joint, -1)[:, k]  # q(y = k | x), by Bayes' rule
    want = g.log_prob(x) + 3.0 * posterior.log()
    assert torch.allclose(g.tilted_log_prob(x, k, 3.0), want, rtol=1e-12, atol=1e-12)


def test_tilted_sample_is_sir_from_one_generator():
    g = toy.two_d_mixture()
    out = g.tilted_sample(100, 0, 3.0, generator=torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)  # the same draws, written out: pool of 50 n, then picks
    pool = g.sample(5000, generator=gen)
    w = (3.0 * g.class_log_prob(pool, 1.0)[:, 0]).exp()
    idx = torch.multinomial(w / w.sum(), 100, replacement=True, generator=gen)
    assert out.dtype == torch.float64 and torch.equal(out, pool[idx])
    again = g.tilted_sample(100, 0, 3.0, pool=5000, generator=torch.Generator().manual_seed(5))
    assert torch.equal(again, out)


def test_tilted_sample_at_gamma_one_is_the_component():
    g = toy.two_d_mixture()
    k = 1
    x = g.tilted_sample(1000, k, 1.0, pool=200_000, generator=torch.Generator().manual_seed(6))
    comp = toy.GaussianMixture([1.0], g.means[k : k + 1], g.stds[k : k + 1])
    assert min(toy.ks_per_coordinate(x, comp)) > 1e-3
    assert max(toy.ks_per_coordinate(x, g)) < 1e-6  # and not the whole mixture


@pytest.mark.parametrize(
    "kw, word",
    [
        ({"label": 4}, "label"),
        ({"label": -1}, "label"),
        ({"gamma": math.inf}, "gamma"),
        ({"gamma": True}, "gamma"),
        ({"n": 0}, "n"),
        ({"pool": 0}, "pool"),
    ],
)
def test_tilted_refuses(kw, word):
    g = toy.two_d_mixture()
    args = {"n": 10, "label": 0, "gamma": 1.0} | kw
    with pytest.raises(ValueError, match=word):
        g.tilted_sample(args.pop("n"), args.pop("label"), args.pop("gamma"), **args)
    if word in ("label", "gamma"):
        a = {"label": 0, "gamma": 1.0} | {k: v for k, v in kw.items() if k in ("label", "gamma")}
        with pytest.raises(ValueError, match=word):
            g.tilted_log_prob(torch.zeros(3, 2, dtype=torch.float64), a["label"], a["gamma"])


# ------------------------------------------------------------------------ within-class spread


def test_within_class_spread_by_hand():
    # label 0: points 0 and 3 (distance 3); label 1: 0, 1 and 2 on a line (pairs 1, 2, 1: mean
    # 4/3); label 2: one point, left out
    x = torch.tensor([[0.0], [3.0], [10.0], [11.0], [12.0], [50.0]])
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    assert metrics.within_class_spread(x, labels) == pytest.approx((3 + 4 / 3) / 2, rel=1e-6)
    # images are flattened per sample; the order of the samples does not matter
    imgs = torch.randn(12, 1, 4, 4, generator=torch.Generator().manual_seed(7))
    lab = torch.arange(12) % 3
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(8))
    flat = metrics.within_class_spread(imgs.flatten(1), lab)
    assert metrics.within_class_spread(imgs, lab) == flat
    assert metrics.within_class_spread(imgs[perm], lab[perm]) == pytest.approx(flat, rel=1e-6)
    assert math.isnan(metrics.within_class_spread(x[:3], torch.tensor([0, 1, 2])))


@pytest.mark.parametrize(
    "x, labels, err, word",
    [
        (torch.zeros(3, 2), torch.zeros(3), TypeError, "labels"),
        (torch.zeros(3, 2), torch.zeros(4, dtype=torch.int64), ValueError, "labels"),
        (torch.zeros(3, dtype=torch.int64), torch.zeros(3, dtype=torch.int64), TypeError, "x"),
    ],
)
def test_within_class_spread_refuses(x, labels, err, word):
    with pytest.raises(err, match=word):
        metrics.within_class_spread(x, labels)
