"""Shared pieces of the GPU run (benchmarks/gpu_run.py): a wall-clock budget, progressive JSON
results, the machine's description and the closing summary."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import release  # tools/release.py: gpu_run.sh puts tools/ on the path
import torch

import ddpm_lib
from ddpm_lib import io


class Clock:
    def __init__(self, budget: float) -> None:
        self.start = time.perf_counter()
        self.budget = budget

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget - self.elapsed()


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Results:
    """One JSON file under --out, rewritten atomically after every update."""

    def __init__(self, path: Path, clock: Clock, **fields: Any) -> None:
        self.path, self.clock = path, clock
        self.data: dict[str, Any] = dict(fields)
        self.write()

    def write(self) -> None:
        self.data["elapsed_s"] = round(self.clock.elapsed(), 1)
        io.write_json(self.path, self.data)

    def add(self, key: str, item: Any) -> None:
        self.data.setdefault(key, []).append(item)
        self.write()

    def set(self, **fields: Any) -> None:
        self.data.update(fields)
        self.write()


def environment(device: torch.device, mode: str) -> dict[str, Any]:
    env: dict[str, Any] = {
        "mode": mode,
        "argv": sys.argv,
        "machine": release.machine_name(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu_count": os.cpu_count(),
        "ddpm_lib": ddpm_lib.__version__,
        "commit": os.environ.get("DDPM_COMMIT"),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            gpu=props.name,
            capability=list(torch.cuda.get_device_capability(device)),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
        )
    try:
        import diffusers

        env["diffusers"] = diffusers.__version__
    except ImportError as e:
        env["diffusers"] = f"not importable: {e}"
    return env


def summary(out: Path, clock: Clock) -> str:
    def read(name: str) -> dict[str, Any]:
        p = out / name
        return json.loads(p.read_text()) if p.is_file() else {}

    b, t, e = read("bench.json"), read("train.json"), read("eval.json")
    lines = [f"GPU run summary ({clock.elapsed():.0f} s): {b.get('env', {}).get('machine')}"]
    models = b.get("models", {})
    for r in b.get("train", []):
        if "img_per_s" in r:
            lines.append(
                f"  bench train {models.get(r['model'], {}).get('name', r['model'])[:40]:40} "
                f"batch {r['batch']:5} {'compiled' if r['compiled'] else 'eager   '} "
                f"{r['img_per_s']:>10.0f} img/s"
            )
    for r in b.get("sampling", []):
        if "seconds" in r:
            lines.append(
                f"  bench DDIM-{r['steps']} {r['n']} samples {r['model']:4} "
                f"{'compiled' if r['compiled'] else 'eager'}: {r['seconds']:.1f} s"
            )
    if b.get("decision"):
        d = b["decision"]
        lines.append(
            f"  decision: batch {d['train_batch']}, compile train {d['compile_train']}, "
            f"compile eval {d['compile_eval']}"
        )
    for r in t.get("runs", []):
        if "steps" in r:
            lines.append(
                f"  train {r['name']}: {r['steps']} steps, {r['epochs']} epochs in {r['seconds']} s"
                f", {r['img_per_s']} img/s, final loss {r['final_loss']:.4f}"
            )
        else:
            lines.append(f"  train {r['name']}: {r.get('error') or r.get('skipped')}")
    for r in e.get("results", []):
        if "fid" in r:
            acc = f", accuracy {r['class_accuracy']:.4f}" if "class_accuracy" in r else ""
            scale = f" scale {r['guidance_scale']:g}" if "guidance_scale" in r else ""
            lines.append(
                f"  eval {r['name']} {r['sampler']}-{r['steps']}{scale}, n={r['n']}: FID "
                f"{r['fid']:.2f} (floor {r['fid_floor_same_n']:.2f}){acc}, {r['sampling_seconds']} s"
            )
        else:
            lines.append(f"  eval {r.get('name')}: {r.get('error') or r.get('skipped')}")
    return "\n".join(lines)
