"""Training: Algorithm 1 of Ho et al. (2020), resumable and exact.

>>> from ddpm_lib.config import get_config
>>> from ddpm_lib.train import train
>>> result = train(get_config("tiny"), "runs/tiny", steps=500, seed=0)   # notebook / Python API
>>> result.model, result.diffusion, result.images_per_sec, result.final_loss

The same from a shell (``python -m ddpm_lib.train --help`` lists every flag)::

    python -m ddpm_lib.train --preset tiny --out runs/tiny --steps 500 --seed 0
    python -m ddpm_lib.train --out runs/tiny --resume          # continue after a crash / timeout

Load a finished run with :func:`ddpm_lib.io.load`.

Modules, each importing only those before it: :mod:`.arguments` (the checks at the boundary),
:mod:`.dataset`, :mod:`.distributed`, :mod:`.ema`, :mod:`.checkpoint`, :mod:`.progress` (what
a ``callback`` of :func:`train` receives), :mod:`.loop` (one
optimiser step and the step/checkpoint loop), :mod:`.trainer` (:func:`train`); apart from them,
:mod:`.toy` (:func:`fit_eps`: Algorithm 1 for a small ε-network on toy points, in seconds),
:mod:`.classifier` (the two classifiers' trainers) and :mod:`.lr` (the learning-rate factors of
torch's ``LambdaLR``, the one schedule mechanism of every trainer)."""

from ddpm_lib.train.arguments import ParameterError
from ddpm_lib.train.checkpoint import TrainState, load_checkpoint, save_checkpoint
from ddpm_lib.train.ema import EMA, ema_decay_at
from ddpm_lib.train.loop import NonFiniteLossError, algorithm1_loss
from ddpm_lib.train.lr import lr_cosine, lr_warmup
from ddpm_lib.train.progress import TrainProgress
from ddpm_lib.train.toy import FitProgress, FitResult, fit_eps
from ddpm_lib.train.trainer import STOP_REASONS, TrainResult, train

__all__ = [
    "EMA",
    "FitProgress",
    "FitResult",
    "NonFiniteLossError",
    "ParameterError",
    "STOP_REASONS",
    "TrainResult",
    "TrainProgress",
    "TrainState",
    "algorithm1_loss",
    "ema_decay_at",
    "fit_eps",
    "load_checkpoint",
    "lr_warmup",
    "lr_cosine",
    "save_checkpoint",
    "train",
]
