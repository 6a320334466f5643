"""ddpm_lib.models.MLPEps: the ε-network for points [B, D] plugs into every place the library

pytestmark = pytest.mark.one_thread
takes an ε-model (Diffusion.call_model, loss_simple, sample.ancestral / ddim), with and without
class labels, and refuses malformed input with a ValueError naming it."""

import pytest
import torch

from ddpm_lib import Diffusion, bound, sample, schedule
from ddpm_lib.models import MLPEps


def _model(**kw) -> MLPEps:
    torch.manual_seed(0)
    m = MLPEps(hidden=16, depth=2, **kw)
    torch.nn.init.normal_(m.out.weight, std=0.1)  # the zero init would hide every input
    return m


def test_shapes_and_t_as_int_or_tensor():
    m, x = _model(), torch.randn(5, 2)
    out_int = m(x, 7)
    assert out_int.shape == (5, 2) and out_int.dtype == torch.float32
    assert torch.equal(out_int, m(x, torch.full((5,), 7)))
    assert torch.equal(out_int, m(x, torch.tensor(7)))
    per_row = m(x, torch.arange(1, 6))
    assert not torch.allclose(per_row[0], m(x, 3)[0])  # the row's own t is used
    assert torch.allclose(per_row[2], m(x, 3)[2])
    assert m(x.double(), 7).dtype == torch.float64  # computed in float32, returned as x_t's dtype


def test_untrained_model_predicts_zero_noise():
    m = MLPEps(dim=3)
    assert torch.equal(m(torch.randn(4, 3), 10), torch.zeros(4, 3))
    assert m.config.num_classes is None and m.config.dim == 3


@pytest.mark.parametrize(
    "x, t, match",
    [
        (torch.randn(4, 3), 1, "x_t must have shape"),
        (torch.randn(4), 1, "x_t must have shape"),
        (torch.randn(0, 2), 1, "x_t must have shape"),
        (torch.randn(4, 2), -1, "t must be"),
        (torch.randn(4, 2), torch.ones(3, dtype=torch.long), "t must have shape"),
    ],
)
def test_bad_input_raises_value_error(x, t, match):
    with pytest.raises(ValueError, match=match):
        _model()(x, t)


@pytest.mark.parametrize(
    "kw", [{"dim": 0}, {"hidden": 0}, {"depth": 0}, {"emb_dim": 1}, {"num_classes": 0}]
)
def test_bad_hyperparameters_raise(kw):
    name = next(iter(kw))
    with pytest.raises(ValueError, match=name):
        MLPEps(**kw)


def test_labels_and_null_label():
    m = _model(num_classes=3)
    x = torch.randn(4, 2)
    assert m.config.num_classes == 3 and m.null_label == 3
    assert torch.equal(m(x, 5), m(x, 5, labels=3))  # None = the null label
    assert not torch.allclose(m(x, 5, labels=0), m(x, 5, labels=1))
    with pytest.raises(ValueError, match="labels"):
        m(x, 5, labels=4)
    with pytest.raises(ValueError, match="unconditional"):
        _model()(x, 5, labels=0)


def test_works_with_call_model_loss_simple_and_the_samplers():
    d = Diffusion(schedule.linear_betas(20))
    m, gen = _model(), torch.Generator().manual_seed(0)
    x = torch.randn(6, 2, generator=gen)
    assert torch.equal(d.call_model(m, x, 4), m(x, 4))
    loss = bound.loss_simple(d, m, x, generator=gen)
    loss.backward()
    assert loss.dim() == 0 and m.inp.weight.grad is not None
    with torch.no_grad():
        out = sample.ancestral(m, d, n=8, shape=(2,), generator=gen, clip_samples=False)
        out_ddim = sample.ddim(m, d, n=8, steps=5, shape=(2,), generator=gen, threshold="static")
    assert out.shape == out_ddim.shape == (8, 2) and bool(torch.isfinite(out).all())
    cond = _model(num_classes=2)
    with torch.no_grad():
        guided = sample.ancestral(cond, d, n=4, shape=(2,), labels=1, guidance_scale=2.0,
                                  generator=gen)  # fmt: skip
    assert guided.shape == (4, 2)
