"""ddpm_lib — the small PyTorch library behind ddpm-book.

Denoising Diffusion Probabilistic Models (Ho et al. 2020) with every formula named and indexed as in
the book: schedules of length T + 1, index 0 = clean data, t = 1..T.

    import ddpm_lib
    from ddpm_lib import Diffusion, schedule, sample
    d = Diffusion(schedule.linear_betas(1000))
    model, d = ddpm_lib.pretrained("mnist-unet")   # shipped weights, sha256-verified, CPU
    model, d = ddpm_lib.load("runs/tiny")          # weights written by `python -m ddpm_lib.train`
    images = sample.ddim(model, d, n=16)           # [16, 1, 28, 28] in [-1, 1]
    points = sample.ancestral(eps_model, d, n=500, shape=(2,))   # any data shape: [500, 2]
"""

from . import data, hub, losses, sample, schedule
from .bound import VLBTerms
from .config import Config, get_config
from .diffusion import Diffusion, Gaussian
from .hub import pretrained
from .io import load

__all__ = [
    "Config",
    "Diffusion",
    "Gaussian",
    "VLBTerms",
    "data",
    "get_config",
    "hub",
    "load",
    "losses",
    "pretrained",
    "sample",
    "schedule",
]
__version__ = "0.2.0"
