"""Shared fixtures and markers. Small float64 problems so identities can be checked to tight
tolerances; one definition of each fixture several files use.

Markers a test module sets with ``pytestmark`` to choose what the shared fixtures give it:

- ``one_thread``: one intra-op torch thread instead of two, for files of thousands of tiny tensor
  operations (per-op overhead dominates and two threads thrash on a busy 2-core machine: measured
  10-20 s per test instead of about 1 s) and for files whose in-process results must equal a
  subprocess run with ``OMP_NUM_THREADS=1`` bitwise;
- ``schedule(T, beta_1, beta_T)``: the linear schedule the ``d`` fixture builds;
- ``shipped(name)``: the pretrained model the ``shipped`` fixture loads;
- ``figsize(width, height)``: the size of the ``fig`` fixture's figure.
"""

import os

import pytest
import torch

import ddpm_lib
from ddpm_lib import Diffusion, schedule

# Intra-op threads per test process: the CI machine's 2 cores, or 1 per pytest-xdist worker (two
# workers with two threads each would thrash on 2 cores).
THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """The thread count is set before any fixture of the test is set up, module-scoped ones
    included, so a module's shared objects are computed with its tests' thread count."""
    torch.set_num_threads(1 if item.get_closest_marker("one_thread") else THREADS)


def _mark_args(request, name: str, default: tuple) -> tuple:
    mark = request.node.get_closest_marker(name)
    return mark.args if mark is not None else default


@pytest.fixture(scope="session")
def linear() -> Diffusion:
    """The paper's schedule: T = 1000, beta from 1e-4 to 0.02."""
    return Diffusion(schedule.linear_betas(1000, 1e-4, 0.02))


@pytest.fixture(scope="session")
def cosine() -> Diffusion:
    return Diffusion(schedule.cosine_betas(1000))


@pytest.fixture(scope="module")
def d(request) -> Diffusion:
    """A linear schedule: the module's ``schedule(T, beta_1, beta_T)`` mark, else T = 40 from 1e-3
    to 0.18 (alpha_bar_T = 0.03: a short chain whose every step a figure or a widget can show)."""
    return Diffusion(schedule.linear_betas(*_mark_args(request, "schedule", (40, 1e-3, 0.18))))


@pytest.fixture(scope="module")
def shipped(request):
    """``(model, diffusion)``: the shipped weights the module's ``shipped(name)`` mark names, else
    the unconditional MNIST U-Net; verified against the manifest as every load is."""
    (name,) = _mark_args(request, "shipped", ("mnist-unet",))
    return ddpm_lib.pretrained(name)


@pytest.fixture
def fig(request):
    """A fresh matplotlib figure (of the ``figsize`` mark's size, else matplotlib's default);
    every figure the test opened is closed after it."""
    import matplotlib.pyplot as plt

    size = _mark_args(request, "figsize", ())
    yield plt.figure(figsize=size or None)
    plt.close("all")


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
