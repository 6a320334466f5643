"""Schedules: the paper's numbers and the defining formulas."""

import math

import pytest
import torch

from ddpm_lib import Diffusion, schedule


def test_linear_alpha_bar_T_matches_ho_et_al(linear):
    assert linear.betas.dtype == torch.float64 and linear.betas.shape == (1001,)
    assert linear.betas[0] == 0 and linear.alpha_bars[0] == 1
    assert abs(float(linear.alpha_bars[1000]) - 4.0358e-05) < 1e-9
    assert float(linear.betas[1]) == pytest.approx(1e-4) and float(linear.betas[1000]) == 0.02
    # alpha_bars[t] is the product of (1 - beta_s) for s = 1..t, index as in the book
    t = 437
    assert float(linear.alpha_bars[t]) == pytest.approx(
        math.prod(1 - float(b) for b in linear.betas[1 : t + 1]), rel=1e-12
    )


def test_cosine_matches_nichol_dhariwal_formula():
    T, s = 1000, 0.008
    betas = schedule.cosine_betas(T, s=s, max_beta=0.999)

    def f(t):
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    expected = [0.0] + [min(1 - f(t) / f(t - 1), 0.999) for t in range(1, T + 1)]
    assert torch.allclose(betas, torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=0)
    d = Diffusion(betas)
    # Away from the clip, alpha_bar_t is f(t)/f(0) itself.
    for t in (1, 10, 500, 900):
        assert float(d.alpha_bars[t]) == pytest.approx(f(t) / f(0), rel=1e-9)
    assert float(betas[T]) == 0.999  # clipped at t = T where f(T) = 0


def test_beta_tildes_and_snr(linear):
    assert linear.beta_tildes[1] == 0
    t = 321
    ab = linear.alpha_bars
    assert float(linear.beta_tildes[t]) == pytest.approx(
        float((1 - ab[t - 1]) / (1 - ab[t]) * linear.betas[t]), rel=1e-12
    )
    assert bool((linear.beta_tildes[1:] <= linear.betas[1:]).all())  # beta_tilde_t <= beta_t
    assert float(linear.snr(t)) == pytest.approx(float(ab[t] / (1 - ab[t])), rel=1e-12)
    assert bool((linear.snrs[1:].diff() < 0).all())  # SNR falls monotonically


@pytest.mark.parametrize("T", [0, -3])
def test_T_below_one_is_refused(T):
    with pytest.raises(ValueError, match=rf"T must be an integer >= 1, got {T}"):
        schedule.linear_betas(T)
    with pytest.raises(ValueError, match="T must be"):
        schedule.cosine_betas(T)


@pytest.mark.parametrize("beta_1,beta_T", [(0.0, 0.02), (1e-4, 1.0), (-0.1, 0.02), (1e-4, 1.5)])
def test_betas_outside_unit_interval_are_refused(beta_1, beta_T):
    with pytest.raises(ValueError, match=r"open interval \(0, 1\)"):
        schedule.linear_betas(10, beta_1, beta_T)


def test_diffusion_refuses_bad_schedules():
    with pytest.raises(ValueError, match=r"betas\[0\] must be 0"):
        Diffusion(torch.tensor([0.1, 0.2], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"betas\[2\] = 1.0"):
        Diffusion(torch.tensor([0.0, 0.2, 1.0]))
    with pytest.raises(ValueError, match=r"T >= 1"):
        Diffusion(torch.tensor([0.0]))
    with pytest.raises(TypeError):
        Diffusion([0.0, 0.1])
    with pytest.raises(ValueError, match="max_beta"):
        schedule.cosine_betas(10, max_beta=1.0)


def test_T_equals_one_works():
    d = Diffusion(schedule.linear_betas(1, 0.5, 0.5))
    assert d.T == 1 and float(d.alpha_bars[1]) == 0.5 and float(d.beta_tildes[1]) == 0
