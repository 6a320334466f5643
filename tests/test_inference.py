"""``ddpm_lib.models.InferenceModel``: the sampling-speed wrapper keeps the model's call, its
``config`` and its state dict, returns float32, and refuses what the device cannot do."""

from __future__ import annotations

import pytest
import torch

from ddpm_lib import sample
from ddpm_lib.config import get_config
from ddpm_lib.io import build_model
from ddpm_lib.models import InferenceModel


@pytest.fixture(scope="module")
def model():
    m = build_model(get_config("tiny", num_classes=10), seed=1).eval()
    with torch.no_grad():  # a non-zero output layer, so that precision shows in the output
        torch.nn.init.normal_(m.conv_out.weight, std=0.1)
    return m


def _inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 1, 28, 28, generator=g), torch.tensor([1, 10, 100, 500, 900, 1000])


def test_fp32_wrapper_is_the_model(model):
    x, t = _inputs()
    fast = InferenceModel(model)
    with torch.no_grad():
        assert torch.equal(fast(x, t), model(x, t))
        labels = torch.arange(6)
        assert torch.equal(fast(x, t, labels), model(x, t, labels))
    assert fast.config is model.config
    assert list(fast.state_dict()) == [f"model.{k}" for k in model.state_dict()]


def test_bf16_returns_float32_close_to_fp32(model):
    x, t = _inputs()
    with torch.no_grad():
        ref, out = model(x, t), InferenceModel(model, "bf16")(x, t)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert not torch.equal(out, ref)
    assert (out - ref).norm() / ref.norm() < 0.05


@pytest.mark.slow  # tracing through torch.compile takes ~3 s on 2 CPU cores
def test_compiled_path_traces_and_samples(model):
    fast = InferenceModel(model, compile=True, compile_backend="eager")
    x, t = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(fast(x, t), model(x, t))
    g = torch.Generator().manual_seed(0)
    images = sample.ddim(fast, get_config("tiny").diffusion(), n=4, steps=2, generator=g,
                         labels=torch.arange(4), guidance_scale=2.0, threshold="static")  # fmt: skip
    assert images.shape == (4, 1, 28, 28)


def test_bad_arguments(model):
    with pytest.raises(ValueError, match="precision must be one of"):
        InferenceModel(model, "half")
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        InferenceModel(model, "fp16")
    with pytest.raises(ValueError, match="compile must be True or False"):
        InferenceModel(model, compile="yes")


def test_call_counter_counts_calls_and_rows_and_keeps_the_signature():
    from ddpm_lib.models import CallCounter

    def eps(x, t, labels=None):
        return torch.zeros_like(x) if labels is None else torch.ones_like(x)

    eps.config = "cfg"
    counted = CallCounter(eps)
    assert counted.config == "cfg"
    x = torch.randn(3, 2)
    assert torch.equal(counted(x, torch.zeros(3, dtype=torch.long)), torch.zeros(3, 2))
    assert torch.equal(counted(torch.cat([x, x]), 0, labels=torch.zeros(6)), torch.ones(6, 2))
    assert (counted.calls, counted.images) == (2, 9)
    assert counted.reset().calls == 0 and counted.images == 0
    net = torch.nn.Linear(2, 2)
    assert list(CallCounter(net).parameters()) == list(net.parameters())
    with pytest.raises(ValueError, match="model must be callable"):
        CallCounter(3)
