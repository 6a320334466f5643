"""The GPU run's command (benchmarks/gpu_run.sh) end to end on the CPU with tiny budgets (--smoke):
every stage writes its JSON, the exported weights load through the verified path, and what comes
back fits the device tool's limits (at most 8 files, 16 MiB each, two folders deep)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from ddpm_lib import hub

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / ".gpu-bundle"


def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
@pytest.mark.alone  # the GPU run's stages, as processes of their own
@pytest.mark.skipif(sys.version_info < (3, 11), reason="the bundled diffusers needs Python 3.11")
def test_gpu_run_smoke(tmp_path: Path) -> None:
    if not (BUNDLE / "wheels").is_dir() or not (BUNDLE / "mnist" / "mnist-train.npz").is_file():
        pytest.fail("the GPU bundle is missing: run `make gpu-bundle` (make test does)")
    shipped = _tree_digest(hub.weights_dir())
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out)}
    env.pop(hub.ENV_VAR, None)
    start = time.perf_counter()
    proc = subprocess.run(
        ["bash", "benchmarks/gpu_run.sh", "--smoke", "--work", str(tmp_path / "work")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # A wall-clock bound means something only on an unshared machine (CI runs alone); under load
    # every stage still runs (the smoke plan is "complete"), only slower: say so instead.
    load = os.getloadavg()[0]
    if load < 2.5:
        assert seconds < 150, f"the smoke run took {seconds:.0f} s"
    else:
        warnings.warn(f"timing not asserted: load {load:.1f}, took {seconds:.0f} s", stacklevel=1)

    bench = json.loads((out / "bench.json").read_text())
    assert {r["model"] for r in bench["train"] if "img_per_s" in r} == {"ours", "peer"}
    assert all(r["img_per_s"] > 0 for r in bench["train"] if "img_per_s" in r)
    assert not [r for r in bench["train"] + bench["sampling"] if "error" in r]
    assert bench["decision"]["train_batch"] in (8, 16)

    runs = json.loads((out / "train.json").read_text())["runs"]
    assert [r["name"] for r in runs] == ["mnist-unet", "mnist-unet-cfg"]
    for r in runs:
        assert "error" not in r, r
        assert r["steps"] >= 1 and r["img_per_s"] > 0 and r["stopped_by"] == "max_seconds"
        assert r["command"].startswith("python -m ddpm_lib.train --preset tiny")

    # The exported files are what the manifest says, and load through the verified path.
    weights = out / "weights"
    manifest = hub.load_manifest(weights)
    for r in runs:
        entry = manifest[r["name"]]
        assert hashlib.sha256((weights / entry.file).read_bytes()).hexdigest() == entry.sha256
        assert entry.sha256 == r["sha256"] and entry.info["steps"] == r["steps"]
        assert entry.info["training_machine"].startswith(os.uname().machine)

    results = json.loads((out / "eval.json").read_text())["results"]
    scored = [r for r in results if "fid" in r]
    assert scored and scored[0]["name"] == "mnist-unet" and scored[0]["sampler"] == "ddim"
    assert not [r for r in results if "error" in r], results
    for r in scored:
        assert r["fid"] > 0 and r["fid_floor_same_n"] > 0 and r["n"] >= 4
        assert sum(r["predicted_class_counts"]) == r["n"]
    recorded = manifest["mnist-unet"].info["metrics"]
    assert {(m["sampler"], m["n"]) for m in recorded} >= {("ddim", scored[0]["n"])}

    assert "GPU run summary" in proc.stdout and (out / "log.txt").is_file()
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8, files
    assert all(p.stat().st_size <= 16 * 2**20 for p in files)
    assert all(len(p.relative_to(out).parts) <= 3 for p in files)
    assert _tree_digest(hub.weights_dir()) == shipped, "the smoke run changed the shipped weights"


def test_gpu_run_refuses_without_bundle(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "out")}
    env["GPU_BUNDLE"] = str(tmp_path / "no-bundle")
    proc = subprocess.run(
        ["bash", "benchmarks/gpu_run.sh", "--smoke"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "make gpu-bundle" in proc.stderr
