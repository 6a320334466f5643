"""Bad input is a clear ValueError/TypeError naming the value and the allowed range; broadcasting
is property-tested with hypothesis."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ddpm_lib import Diffusion, bound, sample, schedule
from ddpm_lib._validate import check_t

D = Diffusion(schedule.linear_betas(50, 1e-3, 0.1))
ZERO_EPS = lambda x, t: torch.zeros_like(x)  # noqa: E731


@pytest.mark.parametrize(
    "call,pattern",
    [
        (lambda x: D.q_sample(x, 51), r"t must be an integer in \[0, 50\], got 51"),
        (lambda x: D.q_sample(x, -1), r"t must be an integer in \[0, 50\], got -1"),
        (lambda x: D.q_step(x, 0), r"t must be an integer in \[1, 50\], got 0"),
        (lambda x: D.q_posterior(x, x, 0), r"t must be an integer in \[1, 50\], got 0"),
        (lambda x: D.q_posterior(x, x, torch.tensor([3, 0])), r"\[1, 50\], got 0"),
        (lambda x: D.predict_x0_from_eps(x, 0, x), r"\[1, 50\], got 0"),
        (lambda x: D.score_from_eps(x, 99), r"\[1, 50\], got 99"),
        (lambda x: D.p_sample(ZERO_EPS, x, 0), r"\[1, 50\], got 0"),
        (
            lambda x: D.p_mean_variance(ZERO_EPS, x, 3, variance="sigma"),
            r"variance must be one of \('beta', 'beta_tilde'\), got 'sigma'",
        ),
        (
            lambda x: bound.vlb_terms(D, ZERO_EPS, x, variance="large"),
            r"variance must be one of",
        ),
        (
            lambda x: bound.loss_simple(D, ZERO_EPS, x, reduction="sum"),
            r"reduction must be one of",
        ),
        (
            lambda x: D.q_sample(x, torch.tensor([1, 2, 3])),
            r"t has 3 entries but x has batch size 2",
        ),
        (lambda x: D.q_sample(x, 3, noise=torch.zeros(2, 5)), r"noise must have the same shape"),
        (lambda x: D.q_posterior(x, x[:1], 3), r"x_t must have the same shape as x0"),
        (lambda x: sample.ancestral(ZERO_EPS, D, n=2, shape=(0,)), r"positive sizes"),
        (
            lambda x: sample.ancestral(ZERO_EPS, D, shape=(3,), x_T=x),
            r"x_T must have shape \[2, 3\]",
        ),
        (lambda x: D.snr(0), r"\[1, 50\], got 0"),
        (
            lambda x: bound.loss_simple(D, ZERO_EPS, x, t=0),
            r"t must be an integer in \[1, 50\], got 0",
        ),
        (
            lambda x: bound.vlb_terms(D, ZERO_EPS, x, noise=x),
            r"noise must have shape \[50, 2, 1, 2, 2\]",
        ),
        (lambda x: D.p_sample(ZERO_EPS, x, 1, noise=x[0]), r"noise must have the same shape"),
    ],
)
def test_value_errors_name_the_value_and_range(call, pattern):
    x = torch.zeros(2, 1, 2, 2)
    with pytest.raises(ValueError, match=pattern):
        call(x)


def test_check_t_is_the_one_step_index_check():
    """``_validate.check_t`` serves the math core, the samplers and the U-Net alike."""
    assert check_t(np.int64(3), 0, 5) == 3 and type(check_t(np.int64(3), 0, 5)) is int
    t = check_t(torch.tensor([1, 5], dtype=torch.int32), 0, 5)
    assert t.dtype == torch.long and t.tolist() == [1, 5]
    for sync in (True, False):  # CPU values are always range-checked
        with pytest.raises(ValueError, match=r"labels must be an integer in \[0, 9\], got 10"):
            check_t(torch.tensor([1, 10]), 0, 9, "labels", sync=sync)
    # sync=False never reads values off the CPU (a GPU sync per U-Net call); "meta" has none at all
    off_cpu = torch.full((2,), 99, device="meta")
    assert check_t(off_cpu, 0, 10, sync=False).device.type == "meta"
    with pytest.raises(RuntimeError, match="meta"):  # the default does read them
        check_t(off_cpu, 0, 10)
    with pytest.raises(ValueError, match=r"must have shape \[\] or \[B\]"):
        check_t(torch.ones(2, 2, dtype=torch.long), 0, 5)
    with pytest.raises(TypeError, match="bool"):
        check_t(np.bool_(True), 0, 5)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: D.q_sample(x, 2.5),
        lambda x: D.q_sample(x, torch.tensor([1.0, 2.0])),
        lambda x: D.q_sample(x, True),
        lambda x: D.q_sample(x.long(), 3),
        lambda x: D.q_sample(x.numpy(), 3),
    ],
)
def test_type_errors(call):
    with pytest.raises(TypeError):
        call(torch.zeros(2, 3))


@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(1, 4),
    dims=st.lists(st.integers(1, 3), min_size=0, max_size=3),
    per_example=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_coefficients_broadcast_over_any_image_shape(batch, dims, per_example, seed):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, *dims)
    x0 = torch.randn(shape, dtype=torch.float64, generator=g)
    eps = torch.randn(shape, dtype=torch.float64, generator=g)
    t = torch.randint(0, D.T + 1, (batch,), generator=g) if per_example else int(seed % (D.T + 1))
    x_t = D.q_sample(x0, t, noise=eps)
    assert x_t.shape == shape
    for i in range(batch):  # the same as computing each example by hand with its own t
        ti = int(t[i]) if per_example else t
        expected = D.alpha_bars[ti].sqrt() * x0[i] + (1 - D.alpha_bars[ti]).sqrt() * eps[i]
        assert torch.allclose(x_t[i], expected, atol=1e-12)
    t1 = t.clamp(min=1) if per_example else max(t, 1)
    mean, var = D.q_posterior(x0, x_t, t1)
    assert mean.shape == shape and torch.broadcast_shapes(var.shape, shape) == shape


@settings(max_examples=60, deadline=None)
@given(t=st.one_of(st.integers(max_value=-1), st.integers(min_value=51)), as_tensor=st.booleans())
def test_any_t_outside_the_range_is_refused(t, as_tensor):
    x = torch.zeros(1, 3)
    arg = torch.tensor([t]) if as_tensor and abs(t) < 2**62 else t
    with pytest.raises(ValueError, match=rf"\[0, 50\], got {t}"):
        D.q_sample(x, arg)


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 5), tb=st.integers(2, 6))
def test_mismatched_batch_never_broadcasts_silently(b, tb):
    if tb == b:
        return
    with pytest.raises(ValueError, match=f"t has {tb} entries but x has batch size {b}"):
        D.q_sample(torch.zeros(b, 2), torch.ones(tb, dtype=torch.long))
