"""ddpm_lib.sample.langevin: with the exact score of a 2-D Gaussian mixture the chains reach the
mixture (moments, component shares and a KS test per coordinate against the exact marginal cdf);
without the noise term they are gradient ascent and collapse onto the modes."""

import math

import pytest
import torch

from ddpm_lib import sample, toy

pytestmark = pytest.mark.one_thread


def _bimodal() -> toy.GaussianMixture:
    """Two overlapping bumps: two modes, yet Langevin crosses between them in a few time units."""
    return toy.GaussianMixture([0.3, 0.7], [[-0.8, 0.0], [0.8, 0.3]], [0.45, 0.4])


def _start(n: int, seed: int) -> tuple[torch.Tensor, torch.Generator]:
    gen = torch.Generator().manual_seed(seed)
    return 3.0 * torch.randn(n, 2, generator=gen, dtype=torch.float64), gen  # far too broad


def test_langevin_with_the_exact_score_reaches_the_mixture():
    g, n = _bimodal(), 1000
    x, gen = _start(n, 1)
    out = sample.langevin(g.score, x, step_size=0.01, steps=1500, generator=gen)
    assert out.shape == (n, 2) and out.dtype == torch.float64
    ref = g.sample(200_000, torch.Generator().manual_seed(2))
    se = ref.std(0) / math.sqrt(n)
    assert bool(((out.mean(0) - ref.mean(0)).abs() < 4 * se).all()), (out.mean(0), ref.mean(0))
    assert torch.allclose(torch.cov(out.T), torch.cov(ref.T), atol=0.05)
    share = float((g.class_log_prob(out, 1.0).argmax(1) == 1).double().mean())
    ref_share = float((g.class_log_prob(ref, 1.0).argmax(1) == 1).double().mean())
    assert abs(share - ref_share) < 0.05, (share, ref_share)
    p = toy.ks_per_coordinate(out, g)
    print(
        f"langevin vs mixture: KS p-values {p}, share of component 1 {share:.3f} ({ref_share:.3f})"
    )
    assert min(p) > 1e-3, p
    assert max(toy.ks_per_coordinate(x, g)) < 1e-6  # the start is rejected: the test can fail


def test_langevin_without_noise_collapses_onto_the_modes():
    g, n = _bimodal(), 1000
    x, gen = _start(n, 3)
    out = sample.langevin(g.score, x, step_size=0.02, steps=1000, add_noise=False)
    assert float(g.score(out).norm(dim=1).max()) < 1e-8  # every chain sits where grad log p = 0
    modes = torch.unique(out.round(decimals=6), dim=0)
    assert len(modes) == 2  # two points, not a distribution
    assert torch.allclose(modes, g.means, atol=0.01)  # near the (well separated) means
    assert max(toy.ks_per_coordinate(out, g)) < 1e-6
    # the same start with noise keeps the spread of the mixture
    noisy = sample.langevin(g.score, x, step_size=0.02, steps=1000, generator=gen)
    assert float(noisy.std(0).min()) > 0.4


def test_langevin_is_reproducible_and_keeps_a_trajectory():
    g = _bimodal()
    x = torch.zeros(4, 2)
    a = sample.langevin(
        g.score, x, step_size=0.1, steps=5, generator=torch.Generator().manual_seed(0)
    )
    b = sample.langevin(
        g.score, x, step_size=0.1, steps=5, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(a, b) and a.dtype == torch.float32
    rec = sample.Recorder()
    c = sample.langevin(g.score, x, step_size=0.1, steps=5, callback=rec,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    traj = torch.cat([rec.x_t, c[None]])
    assert traj.shape == (6, 4, 2) and torch.equal(traj[0], x) and torch.equal(traj[-1], a)
    assert rec.t.tolist() == [5, 4, 3, 2, 1] and rec.steps[0].x0_hat is None
    # explicit noise: noise[k - 1] is the draw of the k-th step from the end
    noise = torch.randn(5, 4, 2, generator=torch.Generator().manual_seed(1))
    d = sample.langevin(g.score, x, step_size=0.1, steps=5, noise=noise)
    y = x
    for i in range(5):
        y = y + 0.1 * g.score(y).float() + 0.2**0.5 * noise[4 - i]
    assert torch.allclose(d, y, atol=1e-6)
    with pytest.raises(ValueError, match=r"noise must have shape \[5, 4, 2\]"):
        sample.langevin(g.score, x, step_size=0.1, steps=5, noise=noise[:4])
    assert torch.equal(sample.langevin(g.score, x, step_size=0.1, steps=0), x)


def test_langevin_refuses_bad_input():
    g = _bimodal()
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="step_size must be a finite number > 0"):
        sample.langevin(g.score, x, step_size=0.0, steps=5)
    with pytest.raises(ValueError, match="steps must be an int >= 0"):
        sample.langevin(g.score, x, step_size=0.1, steps=2.5)
    with pytest.raises(ValueError, match=r"score_fn\(x\) must return a tensor of shape \[4, 2\]"):
        sample.langevin(lambda v: v[:, :1], x, step_size=0.1, steps=2)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        sample.langevin(g.score, [[0.0, 0.0]], step_size=0.1, steps=2)
