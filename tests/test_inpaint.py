"""Inpainting (:func:`ddpm_lib.sample.inpaint`): the known pixels are kept exactly, RePaint's
resampling costs r network calls per step, reconstruction guidance changes only the unknown part,
the arguments are checked, and the callback sees every network pass. The contract shared with the
other samplers is in test_sampler_contract.py.

Known slip, kept for the shipped numbers: at the last step (s = 0) the resample passes u >= 1 redo
the step from the clean x without re-noising it to t."""

from __future__ import annotations

import pytest
import torch

import ddpm_lib
from ddpm_lib import sample
from ddpm_lib.data import images_to_model, load_mnist


@pytest.fixture(scope="module")
def test_digits():
    test = load_mnist("test")
    return images_to_model(test.images[:8]), torch.as_tensor(test.labels[:8]).long()


@pytest.fixture(scope="module")
def unet():
    return ddpm_lib.pretrained("mnist-unet")


def test_inpainting_keeps_the_known_pixels_exactly(unet, test_digits):
    model, d = unet
    x0 = test_digits[0][:3]
    mask = torch.zeros(1, 1, 28, 28)
    mask[..., :14, :] = 1
    gen = torch.Generator().manual_seed(0)
    for resample in (1, 2):
        out = sample.inpaint(
            model,
            d,
            x_known=x0,
            mask=mask,
            steps=4,
            resample=resample,
            generator=gen,
            threshold="static",
        )
        assert torch.equal(out[..., :14, :], x0[..., :14, :])
        assert not torch.equal(out[..., 14:, :], x0[..., 14:, :])
        assert out.min() >= -1 and out.max() <= 1
    full = sample.inpaint(
        model, d, x_known=x0, mask=torch.ones_like(x0), steps=2, generator=gen, threshold="static"
    )
    assert torch.equal(full, x0)


def test_inpainting_resampling_costs_r_network_calls_per_step(test_digits):
    calls = []
    d = ddpm_lib.Diffusion(ddpm_lib.schedule.linear_betas(50))

    def model(x, t):
        calls.append(int(t[0]))
        return torch.zeros_like(x)

    x0 = test_digits[0][:2]
    sample.inpaint(
        model,
        d,
        x_known=x0,
        mask=torch.zeros(1, 1, 28, 28),
        steps=5,
        resample=3,
        threshold="static",
    )
    assert calls == [t for t in (50, 40, 30, 20, 10) for _ in range(3)]


def test_inpainting_arguments_are_checked(unet, test_digits):
    model, d = unet
    x0 = test_digits[0][:2]
    with pytest.raises(ValueError, match="only 0"):
        sample.inpaint(
            model, d, x_known=x0, mask=torch.full((1, 1, 28, 28), 0.5), steps=2, threshold="static"
        )
    with pytest.raises(ValueError, match="broadcast"):
        sample.inpaint(
            model, d, x_known=x0, mask=torch.ones(1, 1, 14, 14), steps=2, threshold="static"
        )
    with pytest.raises(TypeError, match="mask"):
        sample.inpaint(model, d, x_known=x0, mask=[[1, 0]], steps=2, threshold="static")
    with pytest.raises(ValueError, match="resample"):
        sample.inpaint(
            model,
            d,
            x_known=x0,
            mask=torch.ones(1, 1, 28, 28),
            steps=2,
            resample=0,
            threshold="static",
        )


def test_reconstruction_guidance_keeps_known_pixels_and_changes_the_rest(unet, test_digits):
    model, d = unet
    x0 = test_digits[0][:2]
    mask = torch.zeros(1, 1, 28, 28)
    mask[..., :14, :] = 1

    def run(w):
        gen = torch.Generator().manual_seed(3)
        return sample.inpaint(
            model,
            d,
            x_known=x0,
            mask=mask,
            steps=3,
            reconstruction_scale=w,
            generator=gen,
            threshold="static",
        )

    plain, guided = run(0.0), run(4.0)
    assert torch.equal(guided[..., :14, :], x0[..., :14, :])
    assert not torch.allclose(plain, guided)
    with pytest.raises(ValueError, match="reconstruction_scale"):
        run(-1.0)


def test_inpainting_callback_sees_every_pass_and_q_sample_noises_the_known_part():
    d = ddpm_lib.Diffusion(ddpm_lib.schedule.linear_betas(50))
    x0 = torch.linspace(-1, 1, 2 * 784).reshape(2, 1, 28, 28)
    mask = torch.zeros(1, 1, 28, 28)
    mask[..., :14, :] = 1
    rec = sample.Recorder()
    out = sample.inpaint(lambda x, t: torch.zeros_like(x), d, x_known=x0, mask=mask, steps=5,
                         resample=2, callback=rec, generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert rec.t.tolist() == [50, 50, 40, 40, 30, 30, 20, 20, 10, 10]
    # with eps = 0 the model's x0_hat is x_t / sqrt(abar_t); the state's known half at each later
    # step is q_sample(x0, s), so its x0_hat is x0 plus noise of std sqrt((1 - abar_s) / abar_s)
    ab = float(d.alpha_bars[40])
    err = rec.steps[2].x0_hat[..., :14, :] - x0[..., :14, :]
    assert abs(float(err.std()) - ((1 - ab) / ab) ** 0.5) < 0.05
    assert torch.equal(out[..., :14, :], x0[..., :14, :])
    with pytest.raises(ValueError, match="n must match x_known"):
        sample.inpaint(lambda x, t: x, d, x_known=x0, mask=mask, n=3)
