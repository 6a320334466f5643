"""Shared fixtures: small float64 problems so identities can be checked to tight tolerances."""

import pytest
import torch

from ddpm_lib import Diffusion, schedule


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def linear() -> Diffusion:
    """The paper's schedule: T = 1000, beta from 1e-4 to 0.02."""
    return Diffusion(schedule.linear_betas(1000, 1e-4, 0.02))


@pytest.fixture(scope="session")
def cosine() -> Diffusion:
    return Diffusion(schedule.cosine_betas(1000))


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def oracle_for(diffusion: Diffusion, x0: torch.Tensor):
    """A perfect eps-model for data that is always ``x0``: it returns the true noise in ``x_t``."""

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return diffusion.eps_from_x0(x_t, t, x0)

    return model


def shown(widget):
    """``widget`` as a kernel leaves it after displaying it. ipywidgets 8 runs an ``interactive``'s
    function when the widget is created; 7.x (Colab ships 7.7) only when a view of it is displayed,
    which plain pytest never does."""
    handle_displayed = getattr(widget, "_handle_displayed", None)  # ipywidgets 7 only
    if handle_displayed is not None:
        handle_displayed()
    return widget


def image_of(ax):
    """The array an axes shows with ``imshow`` (its first image), as numpy."""
    import numpy as np

    return np.asarray(ax.images[0].get_array())
