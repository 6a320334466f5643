"""Issue acceptance: the `tiny` preset trains on real MNIST in <= 90 s on 2 CPU cores, its loss
falls, and its samples score a clearly better MNIST-FID than the untrained model's."""

import os
import time
import warnings

import pytest
import torch

from ddpm_lib import get_config, sample
from ddpm_lib.io import build_model
from ddpm_lib.metrics import mnist_fid
from ddpm_lib.train import train

pytestmark = [pytest.mark.slow, pytest.mark.alone]  # it measures its wall-clock time


def test_tiny_preset_trains_and_improves_fid(tmp_path):
    torch.set_num_threads(2)
    config = get_config("tiny")
    start = time.perf_counter()
    result = train(config, tmp_path / "run", seed=0, progress=False, checkpoint_every=10_000)
    seconds = time.perf_counter() - start
    print(f"tiny: {result.steps} steps in {seconds:.1f} s ({result.images_per_sec:.0f} img/s)")
    assert result.steps == config.train_steps
    # A wall-clock bound only means something on an unshared machine (CI runs alone); with other
    # jobs competing for the 2 cores torch's threads slow down many-fold, so say so instead.
    load = os.getloadavg()[0]
    if load < 2.5:
        assert seconds <= 90, (
            f"the tiny preset must train in <= 90 s on 2 cores, took {seconds:.1f} s"
        )
    else:
        warnings.warn(
            f"timing not asserted: load average {load:.1f} (took {seconds:.1f} s)", stacklevel=1
        )
    losses = result.losses
    k = max(1, len(losses) // 10)
    assert float(losses[-k:].mean()) < 0.5 * float(losses[:k].mean())

    n = 400
    untrained = build_model(config, seed=0).eval()
    fids = {}
    for name, model in (("untrained", untrained), ("trained", result.model)):
        x = sample.ddim(
            model,
            result.diffusion,
            n=n,
            steps=20,
            generator=torch.Generator().manual_seed(1),
            threshold="static",
        )
        fids[name] = mnist_fid(x)
    print({k: f"FID {v.fid:.1f} (floor {v.floor:.1f}, n={v.n})" for k, v in fids.items()})
    assert fids["trained"].fid < 0.5 * fids["untrained"].fid
