"""The path from a training run to shipped weights (``tools/release.py``, the maintainer's tool):
export, checksum-verified loading, evaluation.

A 4-step tiny class-conditional run stands in for the real one; everything is written to a copy of
the weights folder (``DDPM_LIB_WEIGHTS_DIR``), never to the package.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ddpm_lib
from ddpm_lib import hub, io
from ddpm_lib.config import get_config
from ddpm_lib.train import train

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import release  # noqa: E402

NAME = "test-unet"
COMMAND = "python -m ddpm_lib.train --preset tiny --out RUN --steps 4"


# Every test that exports (the `weights` fixture) runs a tiny training run's export and its
# fp16-cast measurement on MNIST: seconds each, so they are slow tests.
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = get_config("tiny", num_classes=10, label_dropout=0.1, warmup_steps=1)
    train(cfg, out, steps=4, device="cpu", progress=False, limit_data=512)
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory, run_dir):
    """A copy of the shipped weights folder with the run exported into it (once per module)."""
    directory = tmp_path_factory.mktemp("exported") / "weights"
    shutil.copytree(hub.weights_dir(), directory)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(hub.ENV_VAR, str(directory))
        release.export_run(run_dir, NAME, COMMAND, description="test")
    return directory


@pytest.fixture
def weights(tmp_path, monkeypatch, exported):
    """A fresh copy of ``exported`` for each test, which may change it."""
    directory = tmp_path / "weights"
    shutil.copytree(exported, directory)
    monkeypatch.setenv(hub.ENV_VAR, str(directory))
    return directory


@slow
def test_export_writes_file_and_complete_entry(weights, run_dir):
    entry = hub.load_manifest()[NAME]
    data = (weights / entry.file).read_bytes()
    assert entry.sha256 == hub.sha256_of(data) and entry.size_bytes == len(data)
    assert entry.dtype == "float16"
    content = io.parse_safetensors(data)
    assert {t.dtype for t in content.tensors.values() if t.is_floating_point()} == {torch.float16}
    facts = json.loads((run_dir / io.METRICS_FILE).read_text())
    info = entry.info
    assert info["command"] == COMMAND and info["steps"] == 4 == facts["steps"]
    assert info["wall_time_s"] == facts["seconds"] > 0 and info["device"] == "cpu"
    assert "CPU" in info["training_machine"]
    assert info["config"] == json.loads(content.metadata["config"])
    assert 0 < info["cast_rel_rms_eps_error"] < 1e-2  # fp16 barely changes eps_theta
    assert info["metrics"] == []


@slow
def test_pretrained_returns_eval_model_and_matching_diffusion(weights, run_dir):
    model, diffusion = ddpm_lib.pretrained(NAME)
    assert not model.training and next(model.parameters()).dtype == torch.float32
    assert NAME in hub.available()
    ref, ref_diffusion = io.load(run_dir)
    assert torch.equal(diffusion.alpha_bars, ref_diffusion.alpha_bars)
    x, t, y = torch.randn(4, 1, 28, 28), torch.tensor([1, 10, 500, 1000]), torch.arange(4)
    with torch.no_grad():
        a, b = model(x, t, y), ref(x, t, y)
    assert (a - b).abs().max() < 2e-2 * b.abs().max()  # the fp16 copy of the EMA weights
    assert not torch.equal(a, b)  # ... and it really is the cast file, not the run's fp32 one


@slow
def test_tampered_or_inconsistent_weights_are_refused(weights):
    entry = hub.load_manifest()[NAME]
    path = weights / entry.file
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(hub.WeightsError, match="sha256 mismatch"):
        ddpm_lib.pretrained(NAME)
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    raw = json.loads((weights / hub.MANIFEST).read_text())
    raw["entries"][NAME]["config"]["base_channels"] = 32
    (weights / hub.MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(hub.WeightsError, match="differs from the manifest"):
        ddpm_lib.pretrained(NAME)


@slow
def test_unknown_names_and_bad_arguments(weights, run_dir):
    with pytest.raises(ValueError, match="available: .*test-unet"):
        ddpm_lib.pretrained("mnist-nothing")
    with pytest.raises(ValueError, match="string"):
        ddpm_lib.pretrained(3)
    with pytest.raises(ValueError, match="dtype"):
        release.export_run(run_dir, "x", COMMAND, dtype="int8")
    with pytest.raises(ValueError, match="command"):
        release.export_run(run_dir, "x", "  ")
    with pytest.raises(ValueError, match="sampler"):
        release.evaluate(NAME, 4, sampler="euler")
    with pytest.raises(ValueError, match="n must be"):
        release.evaluate(NAME, 1)


@slow
def test_evaluate_records_metrics_in_the_manifest(weights):
    r = release.evaluate(NAME, 20, steps=3, guidance_scale=2.0, batch_size=8, command="cmd")
    assert r.samples.shape == (20, 1, 28, 28) and r.samples.abs().max() <= 1
    rec = r.record
    assert rec["n"] == 20 and rec["fid"] > rec["fid_floor_same_n"] > 0
    assert sum(rec["predicted_class_counts"]) == 20 and 0 <= rec["class_accuracy"] <= 1
    release.evaluate(NAME, 20, steps=3, guidance_scale=2.0, batch_size=8)  # same key: replaced
    release.evaluate(NAME, 20, steps=3, guidance_scale=0.0, batch_size=8)
    stored = hub.load_manifest()[NAME].info["metrics"]
    assert [m["guidance_scale"] for m in stored] == [2.0, 0.0]
    ddpm_lib.pretrained(NAME)  # metrics do not touch the verified file


@slow
def test_cli_export_and_evaluate(weights, run_dir, capsys):
    assert (
        release.main(["export", "--run", str(run_dir), "--name", "cli", "--train-command", "c"])
        == 0
    )
    assert "cast error" in capsys.readouterr().out
    args = ["evaluate", "--name", "cli", "--n", "4", "--steps", "2", "--sampler", "ancestral"]
    with pytest.raises(SystemExit):
        release.main([*args[:-2], "--sampler", "euler"])
    assert release.main([*args, "--scales", "1,3", "--batch-size", "4"]) == 0
    recs = hub.load_manifest()["cli"].info["metrics"]
    assert [(m["sampler"], m["steps"], m["guidance_scale"]) for m in recs] == [
        ("ancestral", 1000, 1.0),
        ("ancestral", 1000, 3.0),
    ]
    assert recs[0]["command"].startswith("python tools/release.py evaluate --name cli")


@slow
def test_evaluate_in_bf16_is_recorded_and_close_to_fp32(weights):
    kw = dict(steps=3, guidance_scale=1.0, batch_size=8, record=False)
    full = release.evaluate(NAME, 8, **kw)
    half = release.evaluate(NAME, 8, precision="bf16", **kw)
    assert (full.record["precision"], half.record["precision"]) == ("fp32", "bf16")
    assert half.record["compiled"] is False and half.samples.dtype == torch.float32
    assert not torch.equal(full.samples, half.samples)  # bf16 really ran
    assert (full.samples - half.samples).abs().mean() < 0.05
    with pytest.raises(ValueError, match="precision must be one of"):
        release.evaluate(NAME, 4, precision="int8", **kw)
    assert release.main(["evaluate", "--name", NAME, "--n", "4", "--steps", "2",
                         "--precision", "bf16", "--batch-size", "4"]) == 0  # fmt: skip
    rec = hub.load_manifest()[NAME].info["metrics"][-1]
    assert rec["precision"] == "bf16" and rec["command"].endswith("--precision bf16")


@slow  # a Python process that imports torch
def test_release_is_a_script_outside_the_installed_package():
    assert not (ROOT / "ddpm_lib" / "release.py").exists()
    done = subprocess.run(
        [sys.executable, "tools/release.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "export" in done.stdout and "evaluate" in done.stdout
