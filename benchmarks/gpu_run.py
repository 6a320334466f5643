"""The GPU run: benchmark, train, ship and evaluate on one CUDA machine, in one command.

    bash benchmarks/gpu_run.sh                 # on the GPU machine (results under $OUT)
    bash benchmarks/gpu_run.sh --smoke         # every stage with tiny budgets, on a CPU (<= 90 s)

Stages, each writing its JSON under ``--out`` as soon as it has a result, so a run cut short still
returns what it finished:

1. ``bench.json``: training img/s (one Algorithm 1 step: forward, backward, AdamW) of our ``mnist``
   preset and of diffusers' ``UNet2DModel`` (the Hugging Face course's MNIST configuration), eager
   and compiled, over batch sizes; the time of a 10k-sample DDIM-50 run of each. It decides the
   training batch size and whether training and sampling use ``torch.compile`` (only where it
   measurably helps).
2. ``train.json``: ``ddpm_lib.train.train`` on the ``mnist`` and ``mnist-cfg`` presets for a fixed
   wall-clock budget each (bf16 autocast, ``channels_last``, the data resident on the GPU,
   checkpoints), then ``release.export_run`` (``tools/release.py``) writes each as shipped
   weights (fp16 EMA + manifest entry) into ``--out/weights``.
3. ``eval.json``: ``release.evaluate`` on the exported files: MNIST-FID of 10,000 samples
   (DDIM-50 and 1000-step ancestral) with the real-data floor at the same n, per-digit counts, and
   classifier-free guidance accuracy at scales 0, 1, 3, 5. Evaluations are run in order of
   importance and shrunk (never silently: ``n`` is recorded) to fit the remaining budget.

The whole run keeps to ``--budget`` seconds of wall time; the log (``log.txt``) is written by
``gpu_run.sh``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import release  # tools/release.py: gpu_run.sh puts tools/ on the path
import torch
import torch._dynamo
from gpu_bench import bench
from gpu_common import Clock, Results, environment, log, summary

from ddpm_lib import hub, io
from ddpm_lib.config import get_config
from ddpm_lib.models import UNet, count_parameters
from ddpm_lib.sample import SAMPLERS
from ddpm_lib.train.arguments import resolve_device, resolve_precision

# What each mode runs. "gpu" is the real run; "smoke" runs every stage on a CPU in about a minute.
PLANS: dict[str, dict[str, Any]] = {
    "gpu": {
        "budget": 430.0,
        "bench_seconds": 90.0,
        "train_seconds": 92.0,
        "models": [  # (shipped name, preset, overrides of the preset)
            ("mnist-unet", "mnist", {}),
            ("mnist-unet-cfg", "mnist-cfg", {}),
        ],
        "bench_preset": "mnist",
        "bench_batches": [256, 512, 1024, 2048, 4096],
        "peer_batches": [256, 1024, 4096],
        "compile_batch": 1024,
        "train_batches": [512, 1024, 2048],
        "bench_sample_n": 10_000,
        "bench_sample_steps": 50,
        "bench_min_seconds": 1.5,
        "eval_n": 10_000,
        "eval_min_n": 1000,
        "eval_batch": 10_000,
        "checkpoint_every": 1000,
        "compile_backend": "inductor",
        "compile_reserve": 45.0,
    },
    "smoke": {
        "budget": 85.0,
        "bench_seconds": 20.0,
        "train_seconds": 3.0,
        "models": [
            ("mnist-unet", "tiny", {}),
            ("mnist-unet-cfg", "tiny", {"num_classes": 10, "label_dropout": 0.1}),
        ],
        "bench_preset": "tiny",
        "bench_batches": [8, 16],
        "peer_batches": [8],
        "compile_batch": 8,
        "train_batches": [8, 16],
        "bench_sample_n": 4,
        "bench_sample_steps": 2,
        "bench_min_seconds": 0.0,
        "eval_n": 8,
        "eval_min_n": 4,
        "eval_batch": 8,
        "checkpoint_every": 5,
        # On a CPU the compiled path is traced (dynamo) but not code-generated: cheap, and it still
        # checks that both networks compile without a graph break that fails.
        "compile_backend": "eager",
        "compile_reserve": 5.0,
        # The smoke run checks code paths, not timing: on a loaded CPU every stage still runs,
        # at its smallest size, after the budget is spent.
        "complete": True,
    },
}
# Training hyper-parameters for a short, large-batch GPU run, on top of the preset (which keeps the
# architecture): a higher learning rate with a short warm-up, no dropout, and an EMA horizon of
# ~1/(1-0.9995) = 2000 steps. Recorded in every manifest entry's config.
GPU_TRAINING = {"lr": 1e-3, "warmup_steps": 200, "dropout": 0.0, "ema_decay": 0.9995}
EVAL_PLAN = [  # in order of importance: (name, sampler, guidance scale); the costliest is last
    ("mnist-unet", "ddim", 1.0),
    ("mnist-unet-cfg", "ddim", 3.0),
    ("mnist-unet-cfg", "ddim", 0.0),
    ("mnist-unet-cfg", "ddim", 1.0),
    ("mnist-unet-cfg", "ddim", 5.0),
    ("mnist-unet", "ancestral", 1.0),
]


# ------------------------------------------------------------------------------------------ train
def cli_command(preset: str, config, seconds: float, device: torch.device) -> str:
    base = get_config(preset)
    sets = " ".join(
        f"--set {k}={json.dumps(v)}"
        for k, v in config.to_dict().items()
        if k != "seed" and v != getattr(base, k) and not isinstance(getattr(base, k), tuple)
    )
    return (
        f"python -m ddpm_lib.train --preset {preset} --out runs/{preset} --seed {config.seed} "
        f"{sets} --steps 1000000 --max-seconds {seconds:g} --checkpoint-every 1000 "
        f"--device {device.type} --no-progress"
    )


def train_one(name, preset, overrides, seconds, plan, decision, device, work, mode):
    from ddpm_lib.train import train

    fields = dict(overrides)
    if mode == "gpu":
        fields.update(GPU_TRAINING)
    fields.update(batch_size=decision["train_batch"], compile=decision["compile_train"])
    run_dir = work / "runs" / name

    def attempt(compile: bool):
        config = get_config(preset, **{**fields, "compile": compile})
        shutil.rmtree(run_dir, ignore_errors=True)
        log(f"train {name}: preset {preset}, {seconds:.0f} s, batch {config.batch_size}, "
            f"compile {compile}")  # fmt: skip
        result = train(
            config,
            run_dir,
            steps=1_000_000,
            max_seconds=seconds,
            checkpoint_every=plan["checkpoint_every"],
            device=device,
            progress=False,
        )
        return config, result

    try:
        config, result = attempt(fields["compile"])
    except Exception as e:
        if not fields["compile"]:
            raise
        # The compiled run failed: the same budget, eager, in a fresh run directory.
        log(f"train {name}: compiled training failed ({type(e).__name__}: {e}); retrying eager")
        traceback.print_exc()
        config, result = attempt(False)
    metrics = json.loads((run_dir / io.METRICS_FILE).read_text())
    return config, result, metrics, cli_command(preset, config, seconds, device)


def train_stage(plan, decision, device, clock, out, work, mode) -> list[str]:
    """Stage 2; returns the names exported (only those are evaluated)."""
    res = Results(out / "train.json", clock, stage="train", decision=decision, runs=[])
    exported = []
    weights = work / "weights"
    models = plan["models"]
    for i, (name, preset, overrides) in enumerate(models):
        # Keep at least a third of what is left after training for the evaluation.
        left = clock.left()
        share = min(plan["train_seconds"], (left * 2 / 3) / (len(models) - i))
        if plan.get("complete"):
            share = max(share, 1.0)
        if share < 1:
            res.add("runs", {"name": name, "skipped": f"{left:.0f} s left"})
            continue
        row: dict[str, Any] = {"name": name, "preset": preset, "budget_s": round(share, 1)}
        try:
            config, result, metrics, command = train_one(
                name, preset, overrides, share, plan, decision, device, work, mode
            )
            row.update(
                command=command,
                config=config.to_dict(),
                steps=result.steps,
                epochs=round(metrics["epochs"], 2),
                seconds=round(result.seconds, 1),
                img_per_s=round(result.images_per_sec, 1),
                final_loss=result.final_loss,
                stopped_by=result.stopped_by,
                precision=result.precision,
                loss_first_10pct=metrics["loss_first_10pct"],
                loss_last_10pct=metrics["loss_last_10pct"],
                loss_curve=metrics["loss_curve"],
            )
            log(f"train {name}: {result.steps} steps, {row['epochs']} epochs, "
                f"{row['img_per_s']} img/s, loss {result.final_loss:.4f}")  # fmt: skip
            t0 = time.perf_counter()
            entry = release.export_run(
                work / "runs" / name,
                name,
                command,
                description=description(name, preset, config),
                directory=weights,
                training_machine=release.machine_name(device),
                device=device,
            )
            row.update(
                export_s=round(time.perf_counter() - t0, 1),
                sha256=entry.sha256,
                size_bytes=entry.size_bytes,
                cast_rel_rms_eps_error=entry.info["cast_rel_rms_eps_error"],
            )
            copy_weights(weights, out / "weights", [name])
            exported.append(name)
            log(f"exported {name}: {entry.size_bytes} bytes, sha256 {entry.sha256[:12]}")
        except Exception as e:
            row.update(error=f"{type(e).__name__}: {e}"[:1000])
            traceback.print_exc()
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        res.add("runs", row)
    return exported


def description(name: str, preset: str, config) -> str:
    kind = (
        "Class-conditional (null label 10, label dropout 0.1)"
        if config.num_classes
        else ("Unconditional")
    )
    params = count_parameters(UNet(config))
    return (
        f"{kind} epsilon-prediction U-Net on MNIST (preset {preset}, {params / 1e6:.2f}M "
        f"parameters), linear schedule, T = {config.T}; EMA weights, float16; trained by "
        f"benchmarks/gpu_run.sh."
    )


def copy_weights(src: Path, dst: Path, names: list[str]) -> None:
    """The manifest and the named models' files (the classifier stays behind: not changed)."""
    dst.mkdir(parents=True, exist_ok=True)
    manifest = hub.load_manifest(src)
    for name in names:
        shutil.copy2(src / manifest[name].file, dst / manifest[name].file)
    shutil.copy2(src / hub.MANIFEST, dst / hub.MANIFEST)


# ------------------------------------------------------------------------------------------- eval
def eval_stage(plan, decision, device, precision, clock, out, work, names) -> None:
    """Stage 3 on the models ``names`` (those this run exported, or all when it trained none)."""
    res = Results(out / "eval.json", clock, stage="eval", models=names, results=[])
    weights = work / "weights"
    available = hub.load_manifest(weights)
    rate = decision.get("forward_img_per_s")
    compile_eval = decision.get("compile_eval", False)
    for name, sampler, scale in EVAL_PLAN:
        if name not in names or name not in available:
            res.add("results", {"name": name, "sampler": sampler, "skipped": "not evaluated: "
                                "no weights exported by this run"})  # fmt: skip
            continue
        conditional = available[name].info["config"].get("num_classes") is not None
        if not conditional and scale != 1.0:
            continue
        # DDIM's 50 steps (release.evaluate's steps=50); ancestral runs all T = 1000
        nfe = 50 if "steps" in SAMPLERS[sampler].options else 1000
        per_image = nfe * (2 if conditional and scale not in (0.0, 1.0) else 1)
        # n fits the time left at the sampling rate measured so far (the bench's, then each
        # evaluation's own); with no rate yet, the smallest n measures one.
        left = clock.left() - 10.0  # scoring, copying, the summary
        n = min(plan["eval_n"], int(left * rate / per_image * 0.85)) if rate else plan["eval_min_n"]
        if plan.get("complete"):
            n = max(n, plan["eval_min_n"])
        elif left <= 0 or n < plan["eval_min_n"]:
            res.add(
                "results",
                {"name": name, "sampler": sampler, "guidance_scale": scale, "skipped":
                 f"time: {clock.left():.0f} s left, {plan['eval_min_n']} samples need more"},
            )  # fmt: skip
            continue
        n = n if n == plan["eval_n"] else max(plan["eval_min_n"], n // 100 * 100)
        log(f"eval {name} {sampler} scale {scale}: n = {n}")
        try:
            t0 = time.perf_counter()
            rec = release.evaluate(
                name,
                n,
                sampler=sampler,
                steps=50,
                guidance_scale=scale,
                seed=0,
                batch_size=plan["eval_batch"],
                device=device,
                record=True,
                command="bash benchmarks/gpu_run.sh (stage eval)",
                precision=precision,
                compile=compile_eval,
            ).record
            rec = {"name": name, **rec, "wall_s": round(time.perf_counter() - t0, 1)}
            rate = n * per_image / max(rec["sampling_seconds"], 0.1)  # images per network call
            copy_weights(weights, out / "weights", [])
        except Exception as e:
            rec = {"name": name, "sampler": sampler, "guidance_scale": scale,
                   "error": f"{type(e).__name__}: {e}"[:1000]}  # fmt: skip
            traceback.print_exc()
        res.add("results", rec)
        log(f"eval: {json.dumps({k: v for k, v in rec.items() if k != 'predicted_class_counts'})}")


# ---------------------------------------------------------------------------------------- summary
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="results folder ($OUT)")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (runs, checkpoints)")
    p.add_argument("--smoke", action="store_true", help="tiny budgets, CPU: every stage in ~1 min")
    p.add_argument("--budget", type=float, default=None, help="wall-clock seconds for the run")
    p.add_argument("--bench-seconds", type=float, default=None, help="cap of the bench stage")
    p.add_argument("--train-seconds", type=float, default=None, help="training budget per model")
    p.add_argument("--stages", default="bench,train,eval", help="comma-separated subset")
    p.add_argument(
        "--weights-from", type=Path, default=None, help="evaluate these weights (eval-only rerun)"
    )
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    args = p.parse_args(argv)
    mode = "smoke" if args.smoke else "gpu"
    plan = dict(PLANS[mode])
    for key in ("budget", "bench_seconds", "train_seconds"):
        if getattr(args, key) is not None:
            plan[key] = getattr(args, key)
    stages = {s.strip() for s in args.stages.split(",") if s.strip()}
    if not stages <= {"bench", "train", "eval"}:
        p.error(f"--stages must be a subset of bench,train,eval, got {args.stages!r}")
    clock = Clock(plan["budget"])
    device = resolve_device(args.device)
    if mode == "gpu" and device.type != "cuda":
        p.error("the GPU run needs CUDA; use --smoke on a CPU")
    precision = resolve_precision("auto", device)  # bf16 on Hopper, fp32 on a CPU
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.benchmark = True  # every shape here is fixed
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.gettempdir()) / "ddpm-gpu-run"  # never under --out
    work.mkdir(parents=True, exist_ok=True)
    weights = work / "weights"
    shutil.rmtree(weights, ignore_errors=True)
    shutil.copytree(args.weights_from or hub.weights_dir(), weights)
    shutil.copy2(hub.weights_dir() / "mnist-classifier.safetensors", weights)
    os.environ[hub.ENV_VAR] = str(weights)  # release.evaluate reads (and records into) this
    env = environment(device, mode)
    log(f"GPU run ({mode}) on {env['machine']}, budget {plan['budget']:.0f} s, stages {stages}")
    decision: dict[str, Any] = {
        "train_batch": plan["train_batches"][0],
        "compile_train": False,
        "compile_eval": False,
        "forward_img_per_s": None,
    }
    if device.type == "cuda":  # bench, training and sampling compile several graphs each
        for knob in ("cache_size_limit", "recompile_limit"):
            if hasattr(torch._dynamo.config, knob):
                setattr(torch._dynamo.config, knob, 64)
    names = [name for name, _, _ in plan["models"]]
    failed = False
    for stage in ("bench", "train", "eval"):
        if stage not in stages:
            continue
        try:
            if stage == "bench":
                decision = bench(plan, device, precision, clock, out, env)
            elif stage == "train":
                names = train_stage(plan, decision, device, clock, out, work, mode)
            else:
                eval_stage(plan, decision, device, precision, clock, out, work, names)
        except Exception:
            failed = True
            log(f"stage {stage} failed; going on")
            traceback.print_exc()
    text = summary(out, clock)
    print(text, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
