"""Samplers: Algorithm 2 and DDIM agree where theory says they must; guidance mixes correctly; both
work on any data shape ([n, 1], [n, 2] and MNIST's [n, 1, 28, 28]) with exact eps-models."""

import math
import types

import pytest
import torch

from ddpm_lib import Diffusion, sample, schedule

D = Diffusion(schedule.linear_betas(60, 1e-3, 0.2))


def _x0(seed=0, n=3):
    g = torch.Generator().manual_seed(seed)
    return 2 * torch.randint(0, 256, (n, 1, 28, 28), generator=g).float() / 255 - 1


def _oracle(x0):
    return lambda x, t: D.eps_from_x0(x.double(), t, x0.double()).float()


def _toy(x, t, labels=None):
    """A smooth, t-dependent stand-in for a network."""
    return 0.3 * x + 0.001 * t.float().view(-1, 1, 1, 1)


def test_ancestral_with_oracle_returns_the_data():
    x0 = _x0()
    out = sample.ancestral(_oracle(x0), D, n=3, generator=torch.Generator().manual_seed(1))
    assert out.shape == (3, 1, 28, 28) and torch.allclose(out, x0, atol=1e-4)


def test_ddim_with_oracle_returns_the_data():
    x0 = _x0(1)
    for steps, eta in ((60, 0.0), (7, 0.0), (10, 1.0)):
        out = sample.ddim(
            _oracle(x0),
            D,
            n=3,
            steps=steps,
            eta=eta,
            generator=torch.Generator().manual_seed(2),
            threshold="static",
        )
        assert torch.allclose(out, x0, atol=1e-4), (steps, eta)


def test_ddim_eta1_all_steps_is_ancestral_with_beta_tilde():
    """Song et al. 2021: eta = 1 on the full sequence is DDPM with sigma_t^2 = beta_tilde_t."""
    a = sample.ancestral(_toy, D, n=4, variance="beta_tilde", clip_samples=False,
                         generator=torch.Generator().manual_seed(3))  # fmt: skip
    b = sample.ddim(_toy, D, n=4, steps=D.T, eta=1.0, clip_samples=False, threshold="none",
                    generator=torch.Generator().manual_seed(3))  # fmt: skip
    assert torch.allclose(a, b, atol=1e-4)
    c = sample.ancestral(
        _toy,
        D,
        n=4,
        variance="beta",
        clip_samples=False,
        generator=torch.Generator().manual_seed(3),
    )
    assert not torch.allclose(a, c, atol=1e-3)  # the variance choice matters


def test_ddim_timesteps():
    assert sample.ddim_timesteps(1000, 4).tolist() == [250, 500, 750, 1000]
    assert sample.ddim_timesteps(60, 60).tolist() == list(range(1, 61))
    with pytest.raises(ValueError, match=r"steps must be an int in \[1, 60\], got 0"):
        sample.ddim(_toy, D, n=2, steps=0, threshold="static")
    with pytest.raises(ValueError, match=r"eta must be a finite number in \[0.0, 1.0\], got 1.5"):
        sample.ddim(_toy, D, n=2, eta=1.5, threshold="static")


def test_recorder_keeps_states_and_x0_predictions():
    x0 = _x0(2, n=2)
    rec = sample.Recorder(keep=[60, 30, 1])
    out = sample.ancestral(_oracle(x0), D, n=2, callback=rec,
                           generator=torch.Generator().manual_seed(4))  # fmt: skip
    assert rec.t.tolist() == [60, 30, 1] and [s.t for s in rec.steps] == [60, 30, 1]
    assert rec.x_t.shape == (3, 2, 1, 28, 28) and rec.x0_hat.shape == (3, 2, 1, 28, 28)
    # The oracle's x0-prediction is the data at every kept step.
    assert torch.allclose(rec.x0_hat, x0.expand(3, -1, -1, -1, -1), atol=1e-3)
    # The state before step 60 is x_T; recording changes nothing.
    again = sample.ancestral(_oracle(x0), D, n=2, generator=torch.Generator().manual_seed(4))
    assert torch.equal(out, again)
    every = sample.Recorder()
    sample.ancestral(_toy, D, n=1, callback=every)
    assert every.t.tolist() == list(range(60, 0, -1))
    with pytest.raises(ValueError, match="keep must hold step times"):
        sample.Recorder(keep=[0, "a"])


class _CondModel(torch.nn.Module):
    """eps = label value everywhere (null label 10 gives 10)."""

    config = types.SimpleNamespace(num_classes=10)

    def forward(self, x, t, labels=None):
        return labels.float().view(-1, 1, 1, 1).expand_as(x).clone()


def test_classifier_free_guidance_formula():
    m = _CondModel()
    x, t = torch.zeros(2, 1, 28, 28), torch.tensor([5, 5])
    labels = torch.tensor([3, 7])
    for s in (0.0, 1.0, 2.5):
        eps = sample.guided_eps(m, x, t, labels, s)
        expected = 10 + s * (labels.float() - 10)
        assert torch.allclose(eps[:, 0, 0, 0], expected), s


def test_sampler_input_errors():
    with pytest.raises(ValueError, match="unconditional"):
        sample.ancestral(_toy, D, n=2, labels=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="needs labels"):
        sample.ddim(_CondModel(), D, n=2, guidance_scale=3.0, threshold="static")
    with pytest.raises(ValueError, match=r"labels must be an integer in \[0, 9\], got 10"):
        sample.ddim(_CondModel(), D, n=2, labels=torch.tensor([1, 10]), threshold="static")
    with pytest.raises(ValueError, match=r"labels must have shape \[2\]"):
        sample.ddim(_CondModel(), D, n=2, labels=torch.tensor([1, 2, 3]), threshold="static")
    with pytest.raises(ValueError, match="n must be an int >= 1, got 0"):
        sample.ancestral(_toy, D, n=0)
    with pytest.raises(ValueError, match="variance must be one of"):
        sample.ancestral(_toy, D, n=1, variance="large")
    with pytest.raises(ValueError, match=r"x_T must have shape \[2, 1, 28, 28\]"):
        sample.ddim(_toy, D, n=2, x_T=torch.zeros(2, 28, 28), shape=(1, 28, 28), threshold="static")
    with pytest.raises(ValueError, match=r"x_T must have shape \[3, 2\], got \[2, 2\]"):
        sample.ddim(_toy, D, n=3, x_T=torch.zeros(2, 2), threshold="static")
    with pytest.raises(ValueError, match="unless x_T is given"):
        sample.ancestral(_toy, D)
    for bad in ((2, 0), 2, (2.0,)):
        with pytest.raises(ValueError, match="positive sizes"):
            sample.ancestral(_toy, D, n=2, shape=bad)
    with pytest.raises(ValueError, match=r"noise must have shape \[60, 2, 3\]"):
        sample.ancestral(_toy, D, n=2, shape=(3,), noise=torch.zeros(60, 2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"must return eps of shape \[2, 3\], got \[2, 1\]"):
        sample.ddim(lambda x, t: x[:, :1], D, n=2, shape=(3,), threshold="static")


def test_generator_reproducibility_and_range():
    a = sample.ddim(
        _toy,
        D,
        n=2,
        steps=5,
        eta=0.5,
        generator=torch.Generator().manual_seed(9),
        threshold="static",
    )
    b = sample.ddim(
        _toy,
        D,
        n=2,
        steps=5,
        eta=0.5,
        generator=torch.Generator().manual_seed(9),
        threshold="static",
    )
    assert torch.equal(a, b) and float(a.abs().max()) <= 1.0


def test_static_threshold_is_the_same_in_both_samplers_and_keeps_x0_hat_in_range():
    """With clipping, DDIM (eta = 1, all steps) still equals ancestral sampling with beta_tilde."""
    wild = lambda x, t: -3 * x  # noqa: E731  (its x0-predictions blow up without clipping)
    a = sample.ancestral(wild, D, n=3, variance="beta_tilde", clip_samples=False, threshold="static",
                         generator=torch.Generator().manual_seed(5))  # fmt: skip
    b = sample.ddim(wild, D, n=3, steps=D.T, eta=1.0, clip_samples=False, threshold="static",
                    generator=torch.Generator().manual_seed(5))  # fmt: skip
    assert torch.allclose(a, b, atol=1e-4)
    c = sample.ddim(wild, D, n=3, steps=D.T, eta=1.0, clip_samples=False, threshold="none",
                    generator=torch.Generator().manual_seed(5))  # fmt: skip
    assert float(c.abs().max()) > 100 and float(b.abs().max()) <= 1.0 + 1e-5


def test_callback_sees_every_step_for_small_T():
    d = Diffusion(schedule.linear_betas(3, 0.1, 0.2))
    rec = sample.Recorder()
    sample.ancestral(_toy, d, n=1, callback=rec)
    assert rec.t.tolist() == [3, 2, 1]


# --- any data shape, with exact eps-models --------------------------------------------------------
SHAPES = [(1,), (2,), (1, 28, 28)]


def _points(shape, n, seed=0):
    """n data points in [-1, 1], float64 (the tests run in float64 to check to rounding)."""
    return torch.rand(n, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _x_T(shape, n, seed=1):
    return torch.randn(
        n, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_both_samplers_return_the_data_point_for_every_shape(shape):
    """The oracle of a point mass at x0 (eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)) makes
    every sampler land on x0 exactly: Algorithm 2's last mean is x0 itself, as is DDIM's last x0_hat."""
    x0 = _points(shape, 5) * 2 - 1
    oracle = lambda x, t: D.eps_from_x0(x, t, x0)  # noqa: E731
    g = torch.Generator().manual_seed(2)
    runs = {
        "ancestral beta": sample.ancestral(oracle, D, x_T=_x_T(shape, 5), generator=g),
        "ancestral beta_tilde": sample.ancestral(
            oracle, D, n=5, variance="beta_tilde", shape=shape, generator=g
        ),
        "ddim": sample.ddim(oracle, D, x_T=_x_T(shape, 5), steps=7, threshold="static"),
        "ddim eta=1": sample.ddim(
            oracle, D, x_T=_x_T(shape, 5), steps=10, eta=1.0, generator=g, threshold="static"
        ),
    }
    for name, out in runs.items():
        assert out.shape == (5, *shape), name
        assert torch.allclose(out.double(), x0, atol=1e-9 if out.dtype == torch.float64 else 1e-5)
    # Without x_T the shape comes from shape= and the state is float32; MNIST's is the default.
    assert sample.ancestral(oracle, D, n=5, shape=shape).dtype == torch.float32
    assert sample.ddim(
        lambda x, t: torch.zeros_like(x), D, n=2, steps=2, threshold="static"
    ).shape == (2, 1, 28, 28)


class _LabelledPoints(torch.nn.Module):
    """The exact conditional eps-model of data that is the point ``centres[y]`` for class y; the null
    label (10) is the point ``centres[10]``."""

    config = types.SimpleNamespace(num_classes=10)

    def __init__(self, centres):
        super().__init__()
        self.centres = centres

    def forward(self, x, t, labels):
        return D.eps_from_x0(x, t, self.centres[labels])


@pytest.mark.parametrize("shape", SHAPES)
def test_guidance_moves_the_point_by_the_scale_for_every_shape(shape):
    """eps_from_x0 is affine in x0, so the guided eps of two point masses is the oracle of the point
    x0_null + s (x0_y - x0_null) (Ho & Salimans 2022, Eq. 6): the samplers must land there."""
    centres = _points(shape, 11, seed=3) - 0.5
    model, labels = _LabelledPoints(centres), torch.tensor([0, 3, 9])
    for s in (0.0, 1.0, 2.5):
        target = centres[10] + s * (centres[labels] - centres[10])
        kw = dict(labels=labels, guidance_scale=s, clip_samples=False, threshold="none")
        a = sample.ancestral(model, D, x_T=_x_T(shape, 3), generator=torch.Generator(), **kw)
        b = sample.ddim(model, D, n=3, shape=shape, steps=6, **kw)
        assert a.shape == b.shape == (3, *shape)
        assert torch.allclose(a, target, atol=1e-9), s
        assert torch.allclose(b.double(), target, atol=1e-5), s


@pytest.mark.parametrize("shape,n", [((1,), 3000), ((2,), 1500), ((1, 28, 28), 4)])
def test_samplers_draw_gaussian_data_with_its_mean_and_spread(shape, n):
    """Data x0 ~ N(mu, s^2 I), with a different mean per coordinate, has the exact eps-model
    E[eps | x_t] = sqrt(1 - abar_t) (x_t - sqrt(abar_t) mu) / (abar_t s^2 + 1 - abar_t); the samples
    must have its mean and spread: z = (x - mu) / s has mean 0 and sd 1 (a sampler that mixed up
    coordinates would widen z by the spread of mu)."""
    d = Diffusion(schedule.linear_betas(200, 5e-4, 0.1))  # abar_T = 3e-5, close to the paper's
    mu = torch.linspace(-0.5, 0.5, math.prod(shape), dtype=torch.float64).reshape(shape)
    s = 0.5

    def gaussian_eps(x, t):
        ab = d.alpha_bars[t].reshape(-1, *[1] * len(shape))
        return (1 - ab).sqrt() * (x - ab.sqrt() * mu) / (ab * s**2 + 1 - ab)

    g = torch.Generator().manual_seed(4)
    kw = dict(clip_samples=False, threshold="none")
    for name, x in (
        ("ancestral", sample.ancestral(gaussian_eps, d, x_T=_x_T(shape, n), generator=g, **kw)),
        ("ddim", sample.ddim(gaussian_eps, d, x_T=_x_T(shape, n, seed=5), steps=d.T, **kw)),
    ):
        z = (x - mu) / s
        # About 4 standard errors for ~3000 values, plus the samplers' own discretisation error
        # (measured with 80 000 values: sd 1.005 for ancestral, 0.988 for DDIM).
        assert abs(float(z.mean())) < 0.08, (name, float(z.mean()))
        assert abs(float(z.std()) - 1) < 0.06, (name, float(z.std()))


def test_explicit_noise_makes_ancestral_the_loop_of_p_sample():
    """With noise[t - 1] given, ancestral is Diffusion.p_sample applied for t = T..1 (Algorithm 2)."""
    g = torch.Generator().manual_seed(6)
    x_T, noise = torch.randn(3, 2, generator=g), torch.randn(D.T, 3, 2, generator=g)
    out = sample.ancestral(_toy_any, D, x_T=x_T, noise=noise, clip_samples=False)
    x = x_T
    for t in range(D.T, 0, -1):
        x = D.p_sample(_toy_any, x, t, noise=noise[t - 1])
    assert torch.equal(out, x)


def _toy_any(x, t):
    """A smooth, t-dependent stand-in for a network, for any data shape."""
    return 0.3 * x + 0.001 * t.float().reshape(-1, *[1] * (x.dim() - 1))
