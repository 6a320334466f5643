"""The sampler contract of :mod:`ddpm_lib.sample` (its docstring), checked for every registered
sampler (and :func:`ddpm_lib.sample.inpaint`, which also takes the known image and mask) on data
``[n, 1]``, ``[n, 2]`` (the exact ε of a class-labelled Gaussian mixture) and ``[n, 1, 28, 28]`` (a
cheap class-conditional convolution), with T = 20."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ddpm_lib import Diffusion, schedule
from ddpm_lib.sample import SAMPLERS, Recorder, inpaint
from ddpm_lib.toy import GaussianMixture

T = 20
N = 3
D = Diffusion(schedule.linear_betas(T, 1e-4, 0.2))


class CheapConv(nn.Module):
    """A class-conditional ε-callable for images: one convolution plus a per-class, per-time
    shift (num_classes = 3, label 3 = the null label), cheap enough for every sampler."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.emb = nn.Embedding(4, 1)
        self.config = SimpleNamespace(num_classes=3)

    def forward(self, x, t, labels=None):
        shift = 0.0 if labels is None else self.emb(labels).reshape(-1, 1, 1, 1)
        out = 0.3 * self.conv(x.float()) + 0.01 * t.float().reshape(-1, 1, 1, 1) + shift
        return out.to(x.dtype)


def _mixture(dim):
    means = [[-0.5] * dim, [0.0] * dim, [0.6] * dim]
    return GaussianMixture([0.3, 0.3, 0.4], means, [0.2, 0.1, 0.3]).eps_model(D)


MODELS = {(1,): _mixture(1), (2,): _mixture(2), (1, 28, 28): CheapConv()}
# Cheap step options: few steps, loose ODE tolerances.
CHEAP = {"ddim": {"steps": 5, "eta": 0.5}, "reverse_sde": {"steps": 6},
         "probability_flow": {"rtol": 1e-3, "atol": 1e-3}}  # fmt: skip


def _inpaint(model, diffusion, *, shape=(1, 28, 28), n=None, **kw):
    """inpaint as a sampler of the contract: half of the coordinates known (a fixed image)."""
    x_known = torch.linspace(-0.9, 0.9, N * int(torch.tensor(shape).prod())).reshape(N, *shape)
    mask = (torch.arange(x_known[0].numel()) % 2).reshape(1, *shape).float()
    return inpaint(model, diffusion, x_known=x_known, mask=mask, n=n, shape=shape, **kw)


SAMPLER_CASES = {name: (e.sampler, {**e.options, **CHEAP.get(name, {})}) for name, e in
                 SAMPLERS.items()}  # fmt: skip
SAMPLER_CASES["inpaint"] = (_inpaint, {"steps": 6})
STEPS = {"ancestral": T, "ddim": 5, "reverse_sde": 6, "inpaint": 6}  # the ODE's is adaptive
DRAWS_NOISE = ("ancestral", "ddim", "reverse_sde")  # accept noise=[K, n, *shape]
HAS_STEPS = ("ddim", "reverse_sde", "inpaint")


pytestmark = pytest.mark.one_thread


def _run(name, data_shape, **kw):
    sampler, options = SAMPLER_CASES[name]
    return sampler(MODELS[data_shape], D, **{"n": N, "shape": data_shape, **options, **kw})


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape", list(MODELS))
@pytest.mark.parametrize("name", list(SAMPLER_CASES))
def test_shape_dtype_and_determinism(name, shape):
    a = _run(name, shape, generator=_gen())
    assert a.shape == (N, *shape) and a.dtype == torch.float32
    assert torch.isfinite(a).all() and a.abs().max() <= 1.0  # clip_samples by default
    assert torch.equal(a, _run(name, shape, generator=_gen()))
    if name != "probability_flow":  # the ODE is deterministic given x_T: other seeds, other x_T
        assert not torch.equal(a, _run(name, shape, generator=_gen(1)))
    x_T = torch.randn(N, *shape, generator=_gen(5), dtype=torch.float64)
    b = _run(name, shape, x_T=x_T, generator=_gen(2))
    # x_T sets the state's dtype (for inpaint x_known does)
    assert b.dtype == (torch.float32 if name == "inpaint" else torch.float64)


@pytest.mark.parametrize("shape", list(MODELS))
@pytest.mark.parametrize("name", DRAWS_NOISE)
def test_explicit_noise(name, shape):
    K = STEPS[name]
    x_T = torch.randn(N, *shape, generator=_gen(1))
    noise = torch.randn(K, N, *shape, generator=_gen(2))
    a = _run(name, shape, x_T=x_T, noise=noise, generator=_gen(3))
    assert torch.equal(a, _run(name, shape, x_T=x_T, noise=noise, generator=_gen(4)))
    if name != "ddim" or SAMPLER_CASES[name][1]["eta"] > 0:  # the noise is used
        other = noise.clone()
        other[K - 1] += 1.0  # the first step's z (k = K counted from the end)
        assert not torch.equal(a, _run(name, shape, x_T=x_T, noise=other))
    with pytest.raises(ValueError, match="noise"):
        _run(name, shape, noise=torch.zeros(K + 1, N, *shape))


@pytest.mark.parametrize("name", ["probability_flow", "inpaint"])
def test_noise_refused_where_nothing_or_several_are_drawn(name):
    with pytest.raises(ValueError, match="noise must be None"):
        _run(name, (2,), noise=torch.zeros(3, N, 2))


@pytest.mark.parametrize("shape", list(MODELS))
@pytest.mark.parametrize("name", list(SAMPLER_CASES))
def test_labels_and_guidance(name, shape):
    labels = torch.tensor([0, 1, 2])
    a = _run(name, shape, labels=labels, guidance_scale=2.0, generator=_gen())
    b = _run(name, shape, labels=labels, guidance_scale=1.0, generator=_gen())
    assert a.shape == b.shape == (N, *shape) and not torch.equal(a, b)
    c = _run(name, shape, labels=1, generator=_gen())  # one int for the batch
    assert torch.equal(c, _run(name, shape, labels=torch.ones(N, dtype=torch.long),
                               generator=_gen()))  # fmt: skip
    with pytest.raises(ValueError, match="labels"):
        _run(name, shape, labels=torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="guidance_scale"):
        _run(name, shape, guidance_scale=2.0)


@pytest.mark.parametrize("shape", list(MODELS))
@pytest.mark.parametrize("name", list(SAMPLER_CASES))
def test_callback_once_per_step(name, shape):
    rec = Recorder()
    out = _run(name, shape, generator=_gen(), callback=rec)
    assert torch.equal(out, _run(name, shape, generator=_gen()))  # recording changes nothing
    K = len(rec.steps)
    if name in STEPS:
        assert K == STEPS[name]
    else:
        assert K >= 2
    assert rec.x_t.shape == rec.x0_hat.shape == (K, N, *shape)
    ts = rec.t.tolist()
    assert ts == sorted(ts, reverse=True) and len(set(ts)) == K
    kind = float if name in ("reverse_sde", "probability_flow") else int
    assert all(isinstance(s.t, kind) for s in rec.steps)
    assert ts[0] == pytest.approx(T) and 0 < ts[-1]


@pytest.mark.parametrize("name", list(SAMPLER_CASES))
@pytest.mark.parametrize(
    ("kw", "word"),
    [({"n": 0}, "n"), ({"shape": (0, 2)}, "shape"), ({"threshold": "clip"}, "threshold"),
     ({"dynamic_percentile": 1.5, "threshold": "dynamic"}, "dynamic_percentile"),
     ({"classifier_scale": 2.0}, "classifier_scale"),
     ({"x_T": torch.zeros(N + 1, 2)}, "x_T")],
)  # fmt: skip
def test_bad_arguments(name, kw, word):
    if name == "inpaint" and word in ("n", "shape", "x_T"):
        word = f"{word}|x_known"
    with pytest.raises(ValueError, match=word):
        _run(name, (2,), **kw)


@pytest.mark.parametrize("name", HAS_STEPS)
@pytest.mark.parametrize("steps", [0, T + 1, 2.5, True])
def test_bad_steps(name, steps):
    if name == "reverse_sde" and steps == T + 1:
        steps = -1  # any count >= 1 is fine for the SDE
    with pytest.raises(ValueError, match="steps"):
        _run(name, (2,), steps=steps)


@pytest.mark.parametrize("name", list(SAMPLER_CASES))
def test_keyword_only_and_unknown_keyword(name):
    sampler, _ = SAMPLER_CASES[name]
    with pytest.raises(TypeError):
        sampler(MODELS[(2,)], D, N)
    with pytest.raises(TypeError):
        _run(name, (2,), clip_x0=True)
