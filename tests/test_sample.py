"""Samplers: Algorithm 2 and DDIM agree where theory says they must; guidance mixes correctly."""

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
    out = sample.ancestral(_oracle(x0), D, 3, generator=torch.Generator().manual_seed(1))
    assert out.shape == (3, 1, 28, 28) and torch.allclose(out, x0, atol=1e-4)


def test_ddim_with_oracle_returns_the_data():
    x0 = _x0(1)
    for steps, eta in ((60, 0.0), (7, 0.0), (10, 1.0)):
        out = sample.ddim(
            _oracle(x0), D, 3, steps=steps, eta=eta, generator=torch.Generator().manual_seed(2)
        )
        assert torch.allclose(out, x0, atol=1e-4), (steps, eta)


def test_ddim_eta1_all_steps_is_ancestral_with_beta_tilde():
    """Song et al. 2021: eta = 1 on the full sequence is DDPM with sigma_t^2 = beta_tilde_t."""
    a = sample.ancestral(_toy, D, 4, variance="beta_tilde", clip=False,
                         generator=torch.Generator().manual_seed(3))  # fmt: skip
    b = sample.ddim(_toy, D, 4, steps=D.T, eta=1.0, clip=False, clip_x0=False,
                    generator=torch.Generator().manual_seed(3))  # fmt: skip
    assert torch.allclose(a, b, atol=1e-4)
    c = sample.ancestral(
        _toy, D, 4, variance="beta", clip=False, generator=torch.Generator().manual_seed(3)
    )
    assert not torch.allclose(a, c, atol=1e-3)  # the variance choice matters


def test_ddim_timesteps():
    assert sample.ddim_timesteps(1000, 4).tolist() == [250, 500, 750, 1000]
    assert sample.ddim_timesteps(60, 60).tolist() == list(range(1, 61))
    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, 60\], got 0"):
        sample.ddim(_toy, D, 2, steps=0)
    with pytest.raises(ValueError, match="eta must be in"):
        sample.ddim(_toy, D, 2, eta=1.5)


def test_trajectory_keeps_states_and_x0_predictions():
    x0 = _x0(2, n=2)
    traj = sample.ancestral(_oracle(x0), D, 2, return_trajectory=True, keep=[60, 30, 1],
                            generator=torch.Generator().manual_seed(4))  # fmt: skip
    assert traj.steps.tolist() == [60, 30, 1]
    assert traj.x_t.shape == (3, 2, 1, 28, 28) and traj.x0_pred.shape == (3, 2, 1, 28, 28)
    # The oracle's x0-prediction is the data at every kept step.
    assert torch.allclose(traj.x0_pred, x0.expand(3, -1, -1, -1, -1), atol=1e-3)
    default = sample.ancestral(_toy, D, 1, return_trajectory=True)
    assert default.steps[0] == 60 and default.steps[-1] == 1
    with pytest.raises(ValueError, match="keep must hold steps"):
        sample.ancestral(_toy, D, 1, return_trajectory=True, keep=[0])


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
        sample.ancestral(_toy, D, 2, labels=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="needs labels"):
        sample.ddim(_CondModel(), D, 2, guidance_scale=3.0)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 9\]"):
        sample.ddim(_CondModel(), D, 2, labels=torch.tensor([1, 10]))
    with pytest.raises(ValueError, match=r"labels must have shape \[2\]"):
        sample.ddim(_CondModel(), D, 2, labels=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="n must be a positive int"):
        sample.ancestral(_toy, D, 0)
    with pytest.raises(ValueError, match="variance must be one of"):
        sample.ancestral(_toy, D, 1, variance="large")
    with pytest.raises(ValueError, match=r"x_T must have shape \[2, 1, 28, 28\]"):
        sample.ddim(_toy, D, 2, x_T=torch.zeros(2, 28, 28))


def test_generator_reproducibility_and_range():
    a = sample.ddim(_toy, D, 2, steps=5, eta=0.5, generator=torch.Generator().manual_seed(9))
    b = sample.ddim(_toy, D, 2, steps=5, eta=0.5, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b) and float(a.abs().max()) <= 1.0


def test_clip_x0_is_the_same_in_both_samplers_and_keeps_x0_hat_in_range():
    """With clipping, DDIM (eta = 1, all steps) still equals ancestral sampling with beta_tilde."""
    wild = lambda x, t: -3 * x  # noqa: E731  (its x0-predictions blow up without clipping)
    a = sample.ancestral(wild, D, 3, variance="beta_tilde", clip=False, clip_x0=True,
                         generator=torch.Generator().manual_seed(5))  # fmt: skip
    b = sample.ddim(wild, D, 3, steps=D.T, eta=1.0, clip=False, clip_x0=True,
                    generator=torch.Generator().manual_seed(5))  # fmt: skip
    assert torch.allclose(a, b, atol=1e-4)
    c = sample.ddim(wild, D, 3, steps=D.T, eta=1.0, clip=False, clip_x0=False,
                    generator=torch.Generator().manual_seed(5))  # fmt: skip
    assert float(c.abs().max()) > 100 and float(b.abs().max()) <= 1.0 + 1e-5


def test_default_trajectory_steps_for_small_T():
    d = Diffusion(schedule.linear_betas(3, 0.1, 0.2))
    assert sample.ancestral(_toy, d, 1, return_trajectory=True).steps.tolist() == [3, 2, 1]
