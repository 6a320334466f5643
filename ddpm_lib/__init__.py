"""ddpm_lib — the small PyTorch library behind ddpm-book.

Denoising Diffusion Probabilistic Models (Ho et al. 2020) with every formula named and indexed as in
the book: schedules of length T + 1, index 0 = clean data, t = 1..T.
"""

from . import losses, schedule
from .diffusion import Diffusion, Gaussian
from .objectives import VLBTerms

__all__ = ["Diffusion", "Gaussian", "VLBTerms", "losses", "schedule"]
__version__ = "0.1.0"
