"""Stage 1 of the GPU run: throughput of our U-Net and of diffusers' ``UNet2DModel`` (the Hugging
Face course's MNIST configuration), eager and compiled, and the decisions the later stages take
from it (training batch size, whether to compile)."""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from gpu_common import Results, log, sync

from ddpm_lib.config import get_config
from ddpm_lib.data import images_to_model, load_mnist
from ddpm_lib.models import InferenceModel, UNet, count_parameters
from ddpm_lib.sample import ddim
from ddpm_lib.train import loop


def peer_model() -> torch.nn.Module:
    from bench import peer_model as build  # benchmarks/ is on sys.path: the script's folder

    return build()


def train_rate(
    model: torch.nn.Module,
    x_data: torch.Tensor,
    batch: int,
    device: torch.device,
    precision: str,
    compiled: bool,
    backend: str,
    min_seconds: float,
) -> dict[str, Any]:
    """img/s of the trainer's Algorithm 1 step (``loop.algorithm1_loss``: t and eps drawn on the
    device, bf16 autocast, channels_last) + backward + fused AdamW, data resident on the device."""
    model = model.to(device).train()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    fwd = torch.compile(model, backend=backend) if compiled else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda" or None)
    diffusion = get_config("tiny").diffusion().to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def autocast():
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    def step() -> None:
        idx = torch.randint(0, x_data.shape[0], (batch,), generator=gen, device=device)
        loss = loop.algorithm1_loss(fwd, x_data[idx], None, diffusion, gen, autocast)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    sync(device)
    t0 = time.perf_counter()
    step()  # the first step compiles
    sync(device)
    first = time.perf_counter() - t0
    for _ in range(2):
        step()
    sync(device)
    steps, t0 = 0, time.perf_counter()
    while steps < 5 or time.perf_counter() - t0 < min_seconds:
        step()
        steps += 1
        if steps % 5 == 0:
            sync(device)
    sync(device)
    seconds = time.perf_counter() - t0
    return {
        "batch": batch,
        "compiled": compiled,
        "precision": precision,
        "img_per_s": round(batch * steps / seconds, 1),
        "step_ms": round(1000 * seconds / steps, 3),
        "timed_steps": steps,
        "first_step_s": round(first, 2),
    }


def sample_time(
    model: torch.nn.Module,
    n: int,
    steps: int,
    device: torch.device,
    precision: str,
    compiled: bool,
    backend: str,
) -> dict[str, Any]:
    """Seconds of ``ddpm_lib.sample.ddim`` with ``steps`` steps for ``n`` samples in one batch,
    after a one-step call that compiles."""
    diffusion = get_config("tiny").diffusion().to(device)
    fast = InferenceModel(model.to(device), precision, compiled, backend)
    sync(device)
    t0 = time.perf_counter()
    gen = torch.Generator(device=device).manual_seed(0)
    ddim(fast, diffusion, n=n, steps=1, generator=gen, threshold="static")
    sync(device)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen = torch.Generator(device=device).manual_seed(0)
    ddim(fast, diffusion, n=n, steps=steps, generator=gen, threshold="static")
    sync(device)
    seconds = time.perf_counter() - t0
    return {
        "n": n,
        "steps": steps,
        "compiled": compiled,
        "precision": precision,
        "seconds": round(seconds, 3),
        "images_per_s_per_step": round(n * steps / seconds, 1),
        "first_call_s": round(first, 2),
    }


def bench(plan, device, precision, clock, out: Path, env) -> dict[str, Any]:
    """Stage 1; returns the decisions for the later stages."""
    res = Results(out / "bench.json", clock, env=env, stage="bench", train=[], sampling=[])
    deadline = clock.elapsed() + plan["bench_seconds"]
    x_data = images_to_model(load_mnist("train").images).to(device)
    backend = plan["compile_backend"]
    nets = {
        "ours": lambda: UNet(get_config(plan["bench_preset"], dropout=0.0)),
        "peer": peer_model,
    }
    names = {
        "ours": f"ddpm_lib UNet, preset {plan['bench_preset']!r}",
        "peer": "diffusers UNet2DModel (HF course MNIST)",
    }
    res.set(models={k: {"name": names[k], "params": count_parameters(nets[k]())} for k in nets})
    # In order of importance: what the later stages decide on first, then the comparison table.
    cb, sn = plan["compile_batch"], plan["bench_sample_n"]
    decisive = [b for b in plan["train_batches"] if b in plan["bench_batches"]]
    items: list[tuple[str, str, int, bool]] = []  # (kind, net, batch or n, compiled)
    items += [("train", "ours", b, False) for b in sorted(decisive, key=lambda b: b != cb)]
    items += [("train", "peer", cb, False), ("train", "ours", cb, True)]
    items += [("sample", "ours", sn, False), ("sample", "peer", sn, False)]
    items += [("train", "ours", b, False) for b in plan["bench_batches"] if b not in decisive]
    items += [("train", "peer", b, False) for b in plan["peer_batches"] if b != cb]
    items += [("train", "peer", cb, True), ("sample", "ours", sn, True)]
    items += [("sample", "peer", sn, True)]
    for kind, net, size, compiled in items:
        left = deadline - clock.elapsed()
        need = plan["compile_reserve"] if compiled else 2.0
        row: dict[str, Any] = {"model": net}
        if left < need:
            row.update(skipped=f"bench budget: {left:.0f} s left, {need:.0f} s needed")
            row.update(batch=size, compiled=compiled) if kind == "train" else row.update(n=size)
            res.add(kind if kind == "train" else "sampling", row)
            log(f"bench {kind} {net} {size} compiled={compiled}: skipped ({row['skipped']})")
            continue
        torch.manual_seed(0)
        try:
            model = nets[net]()
            if kind == "train":
                row.update(
                    train_rate(
                        model,
                        x_data,
                        size,
                        device,
                        precision,
                        compiled,
                        backend,
                        plan["bench_min_seconds"],
                    )
                )
            else:
                steps = plan["bench_sample_steps"]
                row.update(sample_time(model, size, steps, device, precision, compiled, backend))
        except Exception as e:  # a failed measurement is a result too; the run goes on
            row.update(error=f"{type(e).__name__}: {e}"[:500], batch=size, compiled=compiled)
            traceback.print_exc()
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        res.add(kind if kind == "train" else "sampling", row)
        log(f"bench {kind}: {json.dumps(row)}")
    decision = decide(plan, res.data)
    res.set(decision=decision)
    return decision


def decide(plan: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Training batch, compile for training / sampling, and the sampling rate for the budget."""

    def rate(net: str, batch: int, compiled: bool) -> float | None:
        for r in data["train"]:
            if (r["model"], r.get("batch"), r.get("compiled")) == (net, batch, compiled):
                return r.get("img_per_s")
        return None

    def sampling(net: str, compiled: bool) -> dict[str, Any] | None:
        for r in data["sampling"]:
            if r["model"] == net and r.get("compiled") == compiled and "seconds" in r:
                return r
        return None

    eager = {b: rate("ours", b, False) for b in plan["train_batches"]}
    measured = {b: r for b, r in eager.items() if r}
    best = max(measured.values()) if measured else None
    # The smallest batch within 80% of the best throughput: the most optimiser steps per second.
    batch = next((b for b in sorted(measured) if measured[b] >= 0.8 * best), None) if best else None
    cb = plan["compile_batch"]
    compiled_rate, eager_rate = rate("ours", cb, True), rate("ours", cb, False)
    real_compiler = plan["compile_backend"] == "inductor"
    compile_train = bool(
        real_compiler and compiled_rate and eager_rate and compiled_rate >= 1.1 * eager_rate
    )
    if compile_train:
        batch = cb  # the batch the compiled step was measured at
    se, sc = sampling("ours", False), sampling("ours", True)
    # Every new batch shape recompiles, and evaluation uses several: compile only if it pays well.
    compile_eval = bool(real_compiler and se and sc and sc["seconds"] <= se["seconds"] / 1.5)
    chosen = sc if compile_eval else se
    return {
        "train_batch": batch or plan["train_batches"][0],
        "compile_train": compile_train,
        "compile_eval": compile_eval,
        "train_img_per_s_eager": eager_rate,
        "train_img_per_s_compiled": compiled_rate,
        "forward_img_per_s": chosen["images_per_s_per_step"] if chosen else None,
        "rule": "batch: smallest of train_batches within 80% of the best eager img/s; compile "
        "training if >= 1.1x eager img/s at compile_batch; compile sampling if DDIM-50 is >= 1.5x "
        "faster",
    }
