"""``torchrun --nproc_per_node=2 -m ddpm_lib.train`` with gloo on the CPU: the two processes train
the weights one process trains with the same global batch, only rank 0 writes and prints, and a
SIGKILLed torchrun run resumes to the very weights of an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from ddpm_lib import io
from ddpm_lib.train import distributed
from ddpm_lib.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
STEPS = 8
# tiny preset, global batch 16 (8 per process), 256 images: 16 steps per epoch
RUN = ["--preset", "tiny", "--seed", "3", "--limit-data", "256", "--batch-size", "16"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _train(out: Path, *extra: str, procs: int = 2, **popen) -> subprocess.CompletedProcess:
    launcher = TORCHRUN if procs == 2 else [sys.executable]
    cmd = [*launcher, "-m", "ddpm_lib.train", *RUN, "--out", str(out), "--no-progress", *extra]
    return subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)


def _state(out: Path):
    return load_checkpoint(out / io.CHECKPOINT_FILE)


@pytest.mark.slow
@pytest.mark.alone  # torchrun starts parallel processes of its own
def test_two_processes_train_the_weights_of_one(tmp_path):
    one = _train(tmp_path / "one", "--steps", str(STEPS), procs=1)
    two = _train(tmp_path / "two", "--steps", str(STEPS))
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _state(tmp_path / "one"), _state(tmp_path / "two")
    assert a.step == b.step == STEPS
    # the same global batches, times and noises: equal up to the order of float sums
    torch.testing.assert_close(b.losses, a.losses, rtol=1e-5, atol=1e-6)
    for name in a.model:
        torch.testing.assert_close(b.model[name], a.model[name], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(b.ema[name], a.ema[name], rtol=1e-4, atol=1e-5)
    assert not torch.equal(a.model["conv_out.weight"], torch.zeros_like(a.model["conv_out.weight"]))
    # the world size is recorded; only rank 0 printed its summary line
    assert [s["world_size"] for s in b.info["segments"]] == [2]
    assert [s["world_size"] for s in a.info["segments"]] == [1]
    assert two.stdout.count(f"{STEPS} steps (steps)") == 1, two.stdout


@pytest.mark.slow  # torchrun starts three Python processes
@pytest.mark.alone  # torchrun starts parallel processes of its own
def test_batch_that_does_not_split_is_refused(tmp_path):
    bad = _train(tmp_path / "bad", "--steps", "2", "--batch-size", "15")
    assert bad.returncode != 0
    assert "batch_size=15 must be divisible by the number of processes 2" in bad.stderr
    assert not (tmp_path / "bad" / io.CHECKPOINT_FILE).exists()


@pytest.mark.slow
@pytest.mark.alone  # torchrun starts parallel processes of its own
def test_sigkill_under_torchrun_then_resume_is_exact(tmp_path):
    steps = 60  # long enough to be killed mid-run
    ref = _train(tmp_path / "ref", "--steps", str(steps))
    assert ref.returncode == 0, ref.stderr[-3000:]

    out = tmp_path / "killed"
    cmd = [*TORCHRUN, "-m", "ddpm_lib.train", *RUN, "--out", str(out), "--no-progress"]
    cmd += ["--steps", str(steps), "--checkpoint-every", "2"]
    proc = subprocess.Popen(
        cmd,
        env=_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    ckpt = out / io.CHECKPOINT_FILE
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        if ckpt.exists() and load_checkpoint(ckpt).step >= 2:
            break
        time.sleep(0.01)
    # torchrun starts each worker in a session of its own: kill the launcher and every worker
    for p in [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]:
        p.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    killed_at = load_checkpoint(ckpt).step
    assert 2 <= killed_at < steps, err.decode()[-2000:]
    assert not (out / io.MODEL_FILE).exists()

    done = _train(out, "--steps", str(steps), "--checkpoint-every", "2", "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = _state(tmp_path / "ref"), _state(out)
    assert b.step == steps and torch.equal(a.losses, b.losses)
    for name in a.model:
        assert torch.equal(a.model[name], b.model[name]), name
        assert torch.equal(a.ema[name], b.ema[name]), name
    assert [s["world_size"] for s in b.info["segments"]] == [2, 2]


def test_world_from_env(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    assert distributed.world_from_env() == distributed.World(0, 1, 0)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    w = distributed.world_from_env()
    assert (w.rank, w.size, w.local_rank, w.main) == (3, 4, 1, False)
    assert distributed.shard(w, 16) == slice(12, 16)
    with pytest.raises(ValueError, match="divisible"):
        distributed.shard(w, 10)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ValueError, match="RANK=4, WORLD_SIZE=4"):
        distributed.world_from_env()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="RANK must be an integer"):
        distributed.world_from_env()
