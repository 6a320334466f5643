"""The noise-prediction U-Net: shapes, zero init, conditioning on t and y, input checks, gradients,
precision and memory format, state_dict, parameter count."""

import pytest
import torch

from ddpm_lib.config import Config, get_config
from ddpm_lib.models import UNet, count_parameters
from ddpm_lib.models.layers import timestep_embedding

# Small configs so every test runs in well under a second on 2 CPU cores.
SMALL = get_config("tiny")
# Three levels with attention at 7x7 (and in the middle block), two heads, class-conditional.
COND = Config(
    base_channels=16,
    channel_mults=(1, 2, 2),
    num_res_blocks=1,
    attention_resolutions=(14, 7),
    num_heads=2,
    dropout=0.0,
    norm_groups=8,
    num_classes=10,
)


def build(config: Config, seed: int = 0, perturb: bool = True) -> UNet:
    """A UNet in eval mode; ``perturb`` replaces the zero-initialised output conv by random weights
    so that the output depends on everything before it."""
    torch.manual_seed(seed)
    model = UNet(config).eval()
    if perturb:
        with torch.no_grad():
            model.conv_out.weight.normal_(0.0, 0.1)
            model.conv_out.bias.normal_(0.0, 0.1)
    return model


def images(B: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(B, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def small() -> UNet:
    return build(SMALL)


@pytest.fixture(scope="module")
def cond() -> UNet:
    return build(COND)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


# --- shapes and zero init ------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["tiny", "mnist"])
def test_output_shape_dtype_and_zero_init(preset):
    model = build(get_config(preset), perturb=False)
    x = images(3)
    with torch.no_grad():
        out = model(x, torch.tensor([1, 500, 1000]))
    assert out.shape == (3, 1, 28, 28) and out.dtype == torch.float32
    # conv_out is zero-initialised, so the untrained network predicts eps = 0 exactly ...
    assert torch.equal(out, torch.zeros_like(out))
    # ... although the features it reads are not zero
    feats = {}
    model.conv_out.register_forward_hook(lambda m, inp, o: feats.setdefault("h", inp[0]))
    with torch.no_grad():
        model(x, 7)
    assert feats["h"].abs().max() > 0.01


def test_float64_model_gives_float64(small):
    model = build(SMALL).double()
    out = model(images(2).double(), 3)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.float(), small(images(2), 3), rtol=1e-4, atol=1e-5)


def test_unet_rejects_non_config():
    with pytest.raises(TypeError, match="Config"):
        UNet(SMALL.to_dict())


# --- what the output depends on ------------------------------------------------------------------


def test_time_embedding_reaches_the_output(small):
    x = images(2)
    with torch.no_grad():
        outs = [small(x, t) for t in (1, 2, 500, 1000)]
    for i in range(len(outs)):
        for j in range(i):
            assert max_diff(outs[i], outs[j]) > 1e-4
    with torch.no_grad():
        assert max_diff(small(x, 500), small(images(2, seed=2), 500)) > 1e-3


def test_t_forms_agree_and_examples_are_independent(small):
    x = images(3)
    t = torch.tensor([1, 250, 1000])
    with torch.no_grad():
        batched = small(x, t)
        one_by_one = torch.cat([small(x[i : i + 1], int(t[i])) for i in range(3)])
        as_int = small(x, 250)
        as_scalar = small(x, torch.tensor(250))
        as_int32 = small(x, torch.full((3,), 250, dtype=torch.int32))
    torch.testing.assert_close(batched, one_by_one, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(as_int, as_scalar, rtol=0, atol=0)
    torch.testing.assert_close(as_int, as_int32, rtol=0, atol=0)
    torch.testing.assert_close(batched[1], as_int[1], rtol=1e-4, atol=1e-5)


def test_eval_is_deterministic_and_train_dropout_is_not():
    cfg = get_config("tiny", dropout=0.5)
    model = build(cfg)
    x = images(2)
    with torch.no_grad():
        torch.testing.assert_close(model(x, 10), model(x, 10), rtol=0, atol=0)
        model.train()
        assert max_diff(model(x, 10), model(x, 10)) > 1e-4


def test_labels_reach_the_output(cond):
    x = images(2)
    with torch.no_grad():
        outs = {y: cond(x, 300, torch.full((2,), y)) for y in (0, 1, 9, 10)}
        default = cond(x, 300)
        mixed = cond(x, 300, torch.tensor([3, 10]))
        three = cond(x, 300, torch.full((2,), 3))
    for a in outs:
        for b in outs:
            if a < b:
                assert max_diff(outs[a], outs[b]) > 1e-4, (a, b)
    # labels=None means the null label (index num_classes = 10) for every example
    assert cond.null_label == 10
    torch.testing.assert_close(default, outs[10], rtol=0, atol=0)
    # labels are per example
    torch.testing.assert_close(mixed[0], three[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(mixed[1], outs[10][1], rtol=1e-4, atol=1e-5)


def test_labels_on_unconditional_model_raise(small):
    assert small.null_label is None and small.label_emb is None
    with pytest.raises(ValueError, match="unconditional"):
        small(images(2), 5, torch.tensor([1, 2]))


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape", [(2, 3, 28, 28), (2, 1, 32, 32), (2, 1, 28, 27), (1, 28, 28), (0, 1, 28, 28)]
)
def test_bad_x_shape(small, shape):
    with pytest.raises(ValueError, match="x_t"):
        small(torch.zeros(shape), 5)


def test_bad_x_type(small):
    with pytest.raises(TypeError, match="x_t"):
        small(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), 5)
    with pytest.raises(TypeError, match="x_t"):
        small(images(2).numpy(), 5)


@pytest.mark.parametrize(
    "t", [-1, 1001, torch.tensor([0, 1001]), torch.tensor([-3, 5]), torch.tensor([1, 2, 3])]
)
def test_t_out_of_range_or_wrong_shape(small, t):
    with pytest.raises(ValueError, match=r"\bt\b"):
        small(images(2), t)


def test_t_wrong_type(small):
    for t in (torch.tensor([True, False]), True, [1, 2], "5", torch.tensor([1 + 2j, 3j])):
        with pytest.raises(TypeError, match=r"\bt\b"):
            small(images(2), t)


def test_continuous_t_is_accepted_and_agrees_at_integers(small):
    """The SDE samplers (ddpm_lib.sde) pass continuous times: a float or a float tensor in
    [0, T] goes through the sinusoidal embedding as it is, so t = 7.0 is t = 7, and a time
    between two steps gives an output between theirs (not equal to either)."""
    x = images(2)
    with torch.no_grad():
        at_int = small(x, 7)
        assert torch.equal(small(x, 7.0), at_int)
        assert torch.equal(small(x, torch.tensor([7.0, 7.0])), at_int)
        between = small(x, 7.5)
    assert not torch.equal(between, at_int)
    for bad in (-0.5, 1000.5, torch.tensor([0.5, 1e4])):
        with pytest.raises(ValueError, match=r"\bt\b"):
            small(x, bad)


def test_t_range_is_the_configs_T():
    model = build(get_config("tiny", T=10))
    model(images(1), 10)  # t = T is allowed, t = 0 too (index 0 = clean data)
    model(images(1), 0)
    with pytest.raises(ValueError, match=r"\[0, 10\]"):
        model(images(1), 11)


@pytest.mark.parametrize(
    "labels", [torch.tensor([0, 11]), torch.tensor([-1, 0]), torch.tensor([1])]
)
def test_bad_labels(cond, labels):
    with pytest.raises(ValueError, match="labels"):
        cond(images(2), 5, labels)


def test_float_labels_raise(cond):
    with pytest.raises(TypeError, match="labels"):
        cond(images(2), 5, torch.tensor([1.0, 2.0]))


# --- training-related behaviour ------------------------------------------------------------------


def test_every_parameter_gets_a_gradient():
    model = build(COND).train()
    y = torch.tensor([0, 3, 10, 9])
    out = model(images(4), torch.tensor([1, 10, 100, 1000]), y)
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        if name == "label_emb.weight":  # only the rows of the labels used
            used = torch.zeros(11, dtype=torch.bool)
            used[y] = True
            assert (p.grad[used].abs().sum(1) > 0).all() and (p.grad[~used] == 0).all()
        else:
            assert p.grad.abs().max() > 0, name


def test_zero_init_trains_only_the_output_conv_first():
    # With conv_out = 0 every upstream gradient vanishes: the first update moves conv_out alone.
    model = build(SMALL, perturb=False).train()
    (model(images(2), 50) - images(2, seed=5)).square().mean().backward()
    assert model.conv_out.weight.grad.abs().max() > 0
    upstream = [p.grad for n, p in model.named_parameters() if not n.startswith("conv_out")]
    assert all(g is not None and torch.equal(g, torch.zeros_like(g)) for g in upstream)


def test_bf16_autocast_on_cpu_is_close_to_fp32(cond):
    x, t, y = images(2), torch.tensor([20, 800]), torch.tensor([4, 10])
    with torch.no_grad():
        ref = cond(x, t, y)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = cond(x, t, y)
    assert low.dtype == torch.bfloat16
    assert torch.isfinite(low).all()
    rel = (low.float() - ref).norm() / ref.norm()
    assert rel < 0.05, rel.item()


def test_channels_last_gives_the_same_result():
    model = build(COND)
    x, t = images(2), torch.tensor([3, 700])
    with torch.no_grad():
        ref = model(x, t)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last), t)
    torch.testing.assert_close(out.contiguous(), ref, rtol=1e-4, atol=1e-5)


def test_state_dict_round_trip(small):
    other = build(SMALL, seed=123)
    x = images(2)
    with torch.no_grad():
        assert max_diff(other(x, 9), small(x, 9)) > 1e-4
        other.load_state_dict(small.state_dict())
        torch.testing.assert_close(other(x, 9), small(x, 9), rtol=0, atol=0)
    assert list(other.state_dict()) == list(small.state_dict())
    # a different MODEL_FIELDS value gives different tensors: strict loading refuses
    with pytest.raises(RuntimeError):
        UNet(get_config("tiny", base_channels=24)).load_state_dict(small.state_dict())


def test_count_parameters():
    model = UNet(COND)
    manual = sum(p.numel() for p in model.parameters())
    assert count_parameters(model) == manual
    frozen = model.label_emb.weight
    frozen.requires_grad_(False)
    assert count_parameters(model) == manual - frozen.numel() == manual - 11 * 64
    assert count_parameters(model, trainable_only=False) == manual
    # a bigger config has more parameters
    assert count_parameters(UNet(get_config("mnist"))) > 10 * count_parameters(UNet(SMALL))


def test_timestep_embedding():
    t = torch.tensor([0, 1, 999])
    emb = timestep_embedding(t, 8)
    assert emb.shape == (3, 8) and emb.dtype == torch.float32
    # t = 0: sin = 0, cos = 1; the fastest frequency is 1, so column 0 is sin(t)
    torch.testing.assert_close(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    torch.testing.assert_close(emb[:, 0], torch.sin(t.float()))
    torch.testing.assert_close(emb[:, :4].square() + emb[:, 4:].square(), torch.ones(3, 4))
    odd = timestep_embedding(t, 9)
    torch.testing.assert_close(odd[:, :8], emb)
    assert torch.equal(odd[:, 8], torch.zeros(3))
