"""Smoke test of the weights the package ships: every model loads on the CPU from the installed
package (no network, no training), is the model its manifest says, and makes digits the evaluator
recognises. Thresholds come from measurements of these very files (below), with margin;
a random-noise batch and an untrained U-Net fail every one of them.
"""

from __future__ import annotations

import socket

import pytest
import torch

import ddpm_lib
from ddpm_lib import hub, sample
from ddpm_lib.metrics import class_accuracy, load_classifier, mnist_fid, predict

UNETS = ("mnist-unet", "mnist-unet-cfg")
MAX_TOTAL_BYTES = 20 * 1024 * 1024
RECORDED = ("command", "seed", "steps", "epochs", "wall_time_s", "device", "torch", "metrics")
N = 200  # unconditional samples (FID needs a few hundred to mean anything)
N_CFG = 100  # conditional samples: 10 per digit
STEPS = 20  # DDIM steps, eta = 0
# Measured on the shipped files with exactly these seeds, counts and steps (2-core x86-64 CPU,
# torch 2.13.0+cpu, 2026-11-29): unconditional FID 53.4 (floor 25.2 at n = 200), all ten digits,
# 16-25 samples each; guided at scale 3, 100/100 classified as their label. Pure noise scores FID
# 1083 and 10 % accuracy. The bounds leave room for other CPUs' and torch versions' rounding and
# still fail any model that does not draw digits.
MAX_FID_UNCOND = 80.0
MIN_CLASSES_UNCOND = 9
CFG_SCALE = 3.0
MIN_CFG_ACCURACY = 0.95


@pytest.fixture(autouse=True)
def _shipped_weights_offline(monkeypatch):
    monkeypatch.delenv(hub.ENV_VAR, raising=False)  # the package's own folder, nothing else

    def no_network(*args, **kwargs):
        raise AssertionError("the shipped weights must load without opening a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)


def test_every_shipped_file_is_listed_verified_and_small():
    manifest = hub.load_manifest()
    assert set(UNETS) | {"mnist-classifier"} <= set(manifest)
    files = {p.name for p in hub.weights_dir().iterdir() if p.suffix == ".safetensors"}
    assert files == {e.file for e in manifest.values()}, "unlisted or missing weight files"
    total = 0
    for name in manifest:
        data, entry = hub.verified_bytes(name)
        total += len(data)
    assert total <= MAX_TOTAL_BYTES


@pytest.mark.parametrize("name", UNETS)
def test_manifest_records_how_each_unet_was_made(name):
    info = hub.load_manifest()[name].info
    missing = [k for k in RECORDED if info.get(k) in (None, "")]
    assert not missing, f"{name}: manifest lacks {missing}"
    assert info["command"].startswith(("python -m ddpm_lib.train", "OMP_NUM_THREADS"))
    assert "ddpm_lib.train" in info["command"] and f"--seed {info['seed']}" in info["command"]
    assert info["steps"] > 0 and info["wall_time_s"] > 0
    assert info["weights"].startswith("EMA")
    assert info["metrics"], f"{name}: no measured metrics recorded"
    for rec in info["metrics"]:
        assert rec["fid"] > 0 and rec["fid_floor_same_n"] > 0 and rec["n"] >= 2
        assert sum(rec["predicted_class_counts"]) == rec["n"]


@pytest.mark.parametrize("name", UNETS)
def test_loads_on_cpu_in_eval_mode_with_the_papers_schedule(name):
    model, diffusion = ddpm_lib.pretrained(name)
    assert not model.training
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert next(model.parameters()).dtype == torch.float32
    assert diffusion.T == 1000 and model.config.schedule == "linear"
    torch.testing.assert_close(float(diffusion.betas[1]), 1e-4)
    torch.testing.assert_close(float(diffusion.betas[1000]), 0.02)
    assert (model.config.num_classes is not None) == name.endswith("-cfg")


@pytest.mark.slow
def test_unconditional_model_draws_every_digit():
    model, diffusion = ddpm_lib.pretrained("mnist-unet")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        x = sample.ddim(model, diffusion, n=N, steps=STEPS, generator=g, threshold="static")
    assert x.shape == (N, 1, 28, 28) and torch.isfinite(x).all()
    counts = torch.bincount(predict(load_classifier(), x), minlength=10)
    assert int((counts > 0).sum()) >= MIN_CLASSES_UNCOND, counts.tolist()
    assert int(counts.max()) <= 0.3 * N, f"one digit dominates: {counts.tolist()}"
    fid = mnist_fid(x)
    assert fid.fid < MAX_FID_UNCOND, fid


@pytest.mark.slow
def test_guided_model_draws_the_requested_digit():
    model, diffusion = ddpm_lib.pretrained("mnist-unet-cfg")
    labels = torch.arange(N_CFG) % 10
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        x = sample.ddim(
            model,
            diffusion,
            n=N_CFG,
            steps=STEPS,
            labels=labels,
            guidance_scale=CFG_SCALE,
            generator=g,
            threshold="static",
        )
    assert class_accuracy(x, labels) >= MIN_CFG_ACCURACY


@pytest.mark.slow
def test_noise_fails_the_same_checks():
    """The bounds above mean something: pure noise (clipped to the image range) fails them."""
    x = torch.randn(N, 1, 28, 28, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    assert mnist_fid(x).fid > 3 * MAX_FID_UNCOND
    assert class_accuracy(x, torch.arange(N) % 10) < MIN_CFG_ACCURACY
