"""``python -m ddpm_lib.train``: SIGKILL + --resume is bitwise exact; bad flags exit non-zero."""

from __future__ import annotations

import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ddpm_lib import io
from ddpm_lib.config import get_config
from ddpm_lib.train import load_checkpoint, train
from ddpm_lib.train.__main__ import main

pytestmark = pytest.mark.one_thread

ROOT = Path(__file__).resolve().parents[1]
# tiny preset, made quick: 64 real MNIST images, batch 8 (8 steps per epoch)
RUN = ["--preset", "tiny", "--batch-size", "8", "--limit-data", "64", "--seed", "5"]
STEPS = 40


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "ddpm_lib.train", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@pytest.mark.slow
@pytest.mark.alone  # a subprocess killed by timing
def test_sigkill_then_resume_is_bitwise_exact(tmp_path):
    out = tmp_path / "killed"
    args = [*RUN, "--out", str(out), "--steps", str(STEPS), "--checkpoint-every", "2"]
    proc = subprocess.Popen(
        _cli(*args, "--no-progress"),
        env=_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    ckpt = out / io.CHECKPOINT_FILE
    deadline = time.monotonic() + 120
    # Kill once a later checkpoint than the first is there: the run is then in its steady state,
    # mid-step or mid-write of the next checkpoint, however fast or slow the machine is.
    while proc.poll() is None and time.monotonic() < deadline:
        if ckpt.exists() and load_checkpoint(ckpt).step >= 4:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    killed_at = load_checkpoint(ckpt).step
    assert 4 <= killed_at < STEPS and not (out / io.MODEL_FILE).exists()

    done = subprocess.run(
        _cli(*args, "--resume", "--no-progress"),
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{STEPS} steps" in done.stdout
    assert not list(out.glob(".*.tmp"))  # a write the kill interrupted leaves nothing behind

    # the uninterrupted reference, through the Python API (same code, same config)
    ref = train(
        get_config("tiny", batch_size=8, seed=5),
        tmp_path / "ref",
        steps=STEPS,
        checkpoint_every=2,
        progress=False,
        limit_data=64,
    )
    for name in (io.MODEL_FILE, io.CHECKPOINT_FILE):
        a = io.load_safetensors(out / name).tensors
        b = io.load_safetensors(tmp_path / "ref" / name).tensors
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert torch.equal(load_checkpoint(ckpt).losses, ref.losses)

    again = subprocess.run(
        _cli(*args, "--resume", "--no-progress"),
        env=_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0 and "nothing to do" in again.stdout


def _fails(capsys, argv, flag: str, code: int = 2) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == code and flag in err, err
    return err


@pytest.mark.parametrize(
    "extra, flag, text",
    [
        (["--preset", "nope"], "--preset", "tiny"),
        (["--steps", "-3"], "--steps", "steps must be an int >= 1, got -3"),
        (["--steps", "1.5"], "--steps", "steps must be an int >= 1, got '1.5'"),
        (["--steps", "abc"], "--steps", "steps must be an int >= 1, got 'abc'"),
        (["--epochs", "0"], "--epochs", "epochs must be a finite number > 0, got 0.0"),
        (["--max-seconds", "nan"], "--max-seconds", "max_seconds must be a finite number > 0"),
        (["--max-seconds", "-1"], "--max-seconds", "max_seconds must be a finite number > 0"),
        (["--seed", "-1"], "--seed", "seed must be an int >= 0, got -1"),
        (["--seed", str(2**63)], "--seed", "seed must be"),
        (["--checkpoint-every", "0"], "--checkpoint-every", "checkpoint_every must be an int >= 1"),
        (["--batch-size", "0"], "--batch-size", "batch_size must be an int >= 1"),
        (["--lr", "abc"], "--lr", "lr must be a finite number > 0"),
        (["--limit-data", "0"], "--limit-data", "limit_data must be an int >= 1"),
        (["--limit-data", "70000"], "--limit-data", "[1, 60000]"),
        (["--limit-data", "4", "--batch-size", "8"], "--limit-data", "fewer than batch_size=8"),
        (["--device", "gpu0"], "--device", "not a torch device"),
        (["--set", "foo=1"], "--set", "unknown Config fields ['foo']"),
        (["--set", "dropout"], "--set", "field=value"),
        (["--set", "batch_size=abc"], "--set", "batch_size must be"),
        (["--set", "channel_mults=[1,2,2,2]"], "--set", "channel_mults"),
    ],
)
def test_bad_flag_values_exit_2_naming_the_flag(tmp_path, capsys, extra, flag, text):
    argv = ["--preset", "tiny", "--out", str(tmp_path / "r"), "--steps", "1", *extra]
    assert text in _fails(capsys, argv, flag)
    assert not (tmp_path / "r" / io.CHECKPOINT_FILE).exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_cuda_or_fp16_without_a_gpu_are_clear_errors(tmp_path, capsys):
    base = ["--preset", "tiny", "--out", str(tmp_path / "r"), "--steps", "1"]
    assert "CUDA is not available" in _fails(capsys, [*base, "--device", "cuda"], "--device")
    err = _fails(capsys, [*base, "--set", "precision=fp16", "--limit-data", "64"], "precision")
    assert "needs a CUDA GPU" in err


def test_run_directory_rules(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    _fails(capsys, ["--preset", "tiny", "--out", str(tmp_path / "file")], "--out")
    _fails(capsys, ["--out", str(tmp_path / "none"), "--resume"], "--resume")
    _fails(capsys, ["--out", str(tmp_path / "new")], "--preset")
    run = ["--out", str(tmp_path / "run"), "--limit-data", "64", "--batch-size", "8"]
    assert main(["--preset", "tiny", *run, "--steps", "3", "--no-progress"]) == 0
    assert "3 steps (steps)" in capsys.readouterr().out
    err = _fails(capsys, ["--preset", "tiny", *run, "--steps", "3"], "--out")
    assert "already holds a run" in err and "--resume" in err
    err = _fails(capsys, ["--preset", "tiny", *run, "--resume", "--lr", "0.1"], "lr")
    assert "lr (given 0.1, checkpoint 0.002)" in err
    assert main([*run, "--resume", "--steps", "5", "--no-progress"]) == 0  # the run's own config
    assert "5 steps (steps)" in capsys.readouterr().out
    assert main([*run, "--resume", "--steps", "5", "--no-progress"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_module_entry_point_reports_bad_flags(tmp_path, capsys, monkeypatch):
    """``python -m ddpm_lib.train`` run as the interpreter runs it (runpy, as ``__main__``), in this
    process: a subprocess would spend ~2 s of CPU importing torch again. The subprocess runs of
    the entry point are the slow SIGKILL/resume tests above."""
    monkeypatch.setattr(sys, "argv", ["ddpm_lib.train", "--preset", "nope", "--out", str(tmp_path)])
    # This file imported the module as ddpm_lib.train.__main__; the interpreter runs it fresh.
    monkeypatch.delitem(sys.modules, "ddpm_lib.train.__main__")
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("ddpm_lib.train", run_name="__main__", alter_sys=True)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--preset" in err and "tiny" in err
