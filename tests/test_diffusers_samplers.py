r"""An independent check of the samplers: diffusers' ``DDPMScheduler`` and ``DDIMScheduler``, run
with the same ε-model and the same noise as :func:`ddpm_lib.sample.ancestral` and
:func:`ddpm_lib.sample.ddim`, give the same samples (to the float32 precision of diffusers'
schedule tensors).

Index mapping. Our schedules are tensors of length T + 1 with index 0 = clean data (β₀ = 0,
ᾱ₀ = 1) and the steps t = 1..T (Ho et al. 2020); diffusers indexes its T steps 0..T-1 and keeps
ᾱ₀ = 1 apart (``set_alpha_to_one`` / ``scheduler.one``). So diffusers' step k is our step
t = k + 1: its ``betas[k]`` is our ``betas[k + 1]``, its ``alphas_cumprod[k]`` our
``alpha_bars[k + 1]``, and the network is called at our t = k + 1. diffusers' DDPM "prev" of
k = 0 is ᾱ = 1, our t = 0.

* DDPM: ``variance_type="fixed_small"`` is our ``variance="beta_tilde"``, ``"fixed_large"`` our
  ``"beta"``; ``clip_sample=False`` is our ``threshold="none"``. diffusers draws its noise
  inside ``step`` from the generator, one draw per step with k > 0 (our t > 1), so we draw the
  same sequence from an equally seeded generator and pass it as ``noise[t - 1]``.
* DDIM: ``timestep_spacing="trailing"`` with T divisible by S gives k = iT/S - 1, i.e. our
  :func:`ddpm_lib.sample.ddim_timesteps` τ_i = iT/S; its previous step k - T/S = -1 at the end is
  ᾱ = 1 with ``set_alpha_to_one=True`` (our s = 0). Its ``variance_noise`` at loop index j is our
  ``noise[S - 1 - j]`` (the k-th step counted from the end uses ``noise[k - 1]``).
"""

import pytest
import torch

from ddpm_lib import Diffusion, sample, schedule, toy

T, N = 20, 16
D = Diffusion(schedule.linear_betas(T, 1e-3, 0.3))
MODEL = toy.two_d_mixture().eps_model(D)
SHAPE = (N, 2)


@pytest.fixture(scope="module")
def diffusers():
    """Imported when a test runs, not when pytest collects the file: diffusers pulls in
    torch._dynamo (about 2.5 s of CPU), which every xdist worker would otherwise pay."""
    return pytest.importorskip("diffusers")


def _x_T():
    return torch.randn(SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def _their_betas():
    return D.betas[1:].tolist()  # diffusers' k = 0..T-1 is our t = 1..T


@pytest.mark.parametrize(("variance_type", "variance"),
                         [("fixed_small", "beta_tilde"), ("fixed_large", "beta")])  # fmt: skip
def test_ancestral_is_diffusers_ddpm(diffusers, variance_type, variance):
    sched = diffusers.DDPMScheduler(num_train_timesteps=T, trained_betas=_their_betas(),
                                    variance_type=variance_type, clip_sample=False,
                                    prediction_type="epsilon")  # fmt: skip
    sched.set_timesteps(T)
    assert sched.timesteps.tolist() == list(range(T - 1, -1, -1))
    x, gen = _x_T(), torch.Generator().manual_seed(1)
    for k in sched.timesteps.tolist():
        eps = MODEL(x, k + 1)  # their step k is our t = k + 1
        x = sched.step(eps, k, x, generator=gen).prev_sample
    # the same draws: one per step with t > 1, in the order t = T, ..., 2
    gen, noise = torch.Generator().manual_seed(1), torch.zeros(T, *SHAPE, dtype=torch.float64)
    for t in range(T, 1, -1):
        noise[t - 1] = torch.randn(SHAPE, generator=gen, dtype=torch.float64)
    ours = sample.ancestral(MODEL, D, x_T=_x_T(), noise=noise, variance=variance,
                            clip_samples=False)  # fmt: skip
    assert torch.allclose(ours, x, atol=1e-5), float((ours - x).abs().max())
    other = "beta" if variance == "beta_tilde" else "beta_tilde"
    assert not torch.allclose(
        sample.ancestral(MODEL, D, x_T=_x_T(), noise=noise, variance=other, clip_samples=False),
        x, atol=1e-3)  # fmt: skip


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("steps", [4, 5, 20])
def test_ddim_is_diffusers_ddim(diffusers, eta, steps):
    sched = diffusers.DDIMScheduler(num_train_timesteps=T, trained_betas=_their_betas(),
                                    clip_sample=False, set_alpha_to_one=True,
                                    timestep_spacing="trailing", prediction_type="epsilon")  # fmt: skip
    sched.set_timesteps(steps)
    ours_t = sample.ddim_timesteps(T, steps).flip(0)
    assert (sched.timesteps + 1).tolist() == ours_t.tolist()  # their k + 1 = our tau
    noise = torch.randn(steps, *SHAPE, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(2))  # fmt: skip
    x = _x_T()
    for j, k in enumerate(sched.timesteps.tolist()):
        eps = MODEL(x, k + 1)
        x = sched.step(eps, k, x, eta=eta, variance_noise=noise[steps - 1 - j]).prev_sample
    ours = sample.ddim(MODEL, D, x_T=_x_T(), steps=steps, eta=eta, noise=noise,
                       clip_samples=False)  # fmt: skip
    assert torch.allclose(ours, x, atol=1e-5), float((ours - x).abs().max())
