"""A maintainer's tool: turn a training run into shipped weights, and measure them.

It lives in the repository, not in the installed package: it writes into the package's own
``ddpm_lib/weights/`` (or ``$DDPM_LIB_WEIGHTS_DIR``), which only a checkout of the repository should
do. Two steps, both recorded in ``manifest.json``::

    # 1. EMA weights of a finished run -> weights/mnist-unet.safetensors (float16) + manifest entry
    python tools/release.py export --run runs/mnist-unet --name mnist-unet \\
        --train-command "python -m ddpm_lib.train --preset small --out runs/mnist-unet ..."
    # 2. sample from the shipped (checksum-verified) file, score it, append the result to the entry
    python tools/release.py evaluate --name mnist-unet --n 1000 --sampler ddim --steps 50

``export`` copies the facts of the run from its ``metrics.json`` (steps, epochs, wall time, device,
images/s, final loss) and measures what the float16 cast costs (the relative RMS change of
:math:`\\epsilon_\\theta(x_t, t)` on real MNIST at several t). ``evaluate`` stores the MNIST-FID with
its real-data floor at the same sample count, how many samples the evaluator assigns to each digit
(mode coverage), and for a class-conditional model the fraction classified as the requested label.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ddpm_lib import hub, io

__all__ = [
    "EvalResult",
    "export_run",
    "export_classifier",
    "evaluate",
    "machine_name",
    "main",
]

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def machine_name(device: torch.device) -> str:
    """A short description of where a number was measured (CPU count or GPU name, torch version)."""
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device) if torch.cuda.is_available() else "a CUDA GPU"
    else:
        where = (
            f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads"
        )
    return f"{where}, torch {torch.__version__}"


def _write_manifest(directory: Path, raw: dict[str, Any]) -> None:
    io.write_json(directory / hub.MANIFEST, raw)


def _read_raw_manifest(directory: Path) -> dict[str, Any]:
    hub.load_manifest(directory)  # validates the structure, raising WeightsError
    return json.loads((directory / hub.MANIFEST).read_text())


@torch.no_grad()
def _cast_error(model: torch.nn.Module, cast: torch.nn.Module, diffusion, seed: int = 0) -> float:
    """Relative RMS change of eps_theta(x_t, t) from the cast, on 256 test digits at 8 values of t.
    Both models run in full fp32 on their (common) device: TF32 is switched off on a GPU, else its
    rounding would be counted as the cast's."""
    from ddpm_lib.data import images_to_model, load_mnist

    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    x0 = images_to_model(load_mnist("test").images[:256])
    num_classes = model.config.num_classes
    y = (torch.arange(256) % num_classes).to(dev) if num_classes else None
    worst = 0.0
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        for t_val in torch.linspace(1, diffusion.T, 8).round().long().tolist():
            t = torch.full((256,), t_val, dtype=torch.long)
            x_t = diffusion.q_sample(x0, t, torch.randn(x0.shape, generator=g))
            x_t, t = x_t.float().to(dev), t.to(dev)
            a = model(x_t, t, y) if y is not None else model(x_t, t)
            b = cast(x_t, t, y) if y is not None else cast(x_t, t)
            worst = max(worst, float((a - b).pow(2).mean().sqrt() / a.pow(2).mean().sqrt()))
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    return worst


def export_run(
    run: str | os.PathLike[str],
    name: str,
    train_command: str,
    dtype: str = "float16",
    description: str = "",
    directory: str | os.PathLike[str] | None = None,
    training_machine: str | None = None,
    device: str | torch.device = "cpu",
) -> hub.ManifestEntry:
    """Write the EMA weights of the finished run ``run`` as ``<directory>/<name>.safetensors`` in
    ``dtype`` and its manifest entry (replacing an entry of the same name; metrics are reset).
    ``training_machine`` describes where the run trained (the run itself records only the device
    type); it defaults to this machine, for a run exported where it trained. ``device`` is where
    the cost of the cast is measured."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    if not train_command.strip():
        raise ValueError("train_command must be the exact command line that trained the run")
    run = Path(run)
    out_dir = Path(directory) if directory is not None else hub.weights_dir()
    model, diffusion = io.load(run)
    config = model.config
    metrics_file = run / io.METRICS_FILE
    if not metrics_file.is_file():
        raise ValueError(f"{metrics_file} not found: export needs a finished run of ddpm_lib.train")
    facts = json.loads(metrics_file.read_text())
    tensors = {k: v.to(DTYPES[dtype]) for k, v in model.state_dict().items()}
    cast = io.build_model(config)
    io.load_state_dict_checked(cast, tensors, f"{name} ({dtype})")
    cast.eval()
    dev = torch.device(device)
    file = f"{name}.safetensors"
    meta = {io.CONFIG_KEY: io.config_to_json(config), "source": "EMA weights of ddpm_lib.train"}
    io.save_safetensors(out_dir / file, tensors, meta, io.MODEL_FORMAT)
    data = (out_dir / file).read_bytes()
    raw = _read_raw_manifest(out_dir)
    raw["entries"][name] = {
        "file": file,
        "sha256": hub.sha256_of(data),
        "size_bytes": len(data),
        "format": "safetensors",
        "dtype": dtype,
        "description": description,
        "architecture": hub.UNET_ARCHITECTURE,
        "weights": f"EMA (decay {config.ema_decay:g}) of the training run",
        "config": config.to_dict(),
        "n_params": sum(p.numel() for p in model.parameters()),
        "command": train_command.strip(),
        "seed": config.seed,
        "steps": facts.get("steps"),
        "epochs": facts.get("epochs"),
        "wall_time_s": facts.get("seconds"),
        "images_per_sec": facts.get("images_per_sec"),
        "device": facts.get("device"),
        "training_machine": training_machine
        or machine_name(torch.device(facts.get("device", "cpu"))),
        "precision": facts.get("precision"),
        "torch": facts.get("torch"),
        "final_loss": facts.get("final_loss"),
        "trained_on": "official 60k MNIST training set via ddpm_lib.data.load_mnist('train')",
        "cast_rel_rms_eps_error": _cast_error(model.to(dev), cast.to(dev), diffusion.to("cpu")),
        "metrics": [],
    }
    _write_manifest(out_dir, raw)
    return hub.load_manifest(out_dir)[name]


@torch.no_grad()
def export_classifier(
    run: str | os.PathLike[str],
    name: str = "mnist-noisy-classifier",
    dtype: str = "float16",
    directory: str | os.PathLike[str] | None = None,
) -> hub.ManifestEntry:
    """Ship the noise-conditional classifier trained by ``python -m ddpm_lib.train.classifier``
    in ``run``: weights cast to ``dtype`` as ``<directory>/<name>.safetensors`` and a manifest
    entry with the run's facts (command, wall time, machine) and the accuracy-vs-t curve
    measured again on the shipped (cast) weights, on the official 10k test set."""
    from ddpm_lib.data import images_to_model, load_mnist
    from ddpm_lib.models.classifier import (
        NOISY_CLASSIFIER_ARCHITECTURE,
        NoisyClassifier,
        NoisyClassifierConfig,
    )
    from ddpm_lib.train.classifier import META_FILE, WEIGHTS_FILE, accuracy_by_t

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    run = Path(run)
    facts = json.loads((run / META_FILE).read_text())
    content = io.load_safetensors(run / WEIGHTS_FILE)
    config = NoisyClassifierConfig.from_dict(json.loads(content.metadata[io.CONFIG_KEY]))
    tensors = {k: v.to(DTYPES[dtype]) for k, v in content.tensors.items()}
    model = NoisyClassifier(config)
    io.load_state_dict_checked(model, tensors, f"{name} ({dtype})")
    test = load_mnist("test")
    accuracy = accuracy_by_t(
        model.eval(), images_to_model(test.images), torch.as_tensor(test.labels)
    )
    out_dir = Path(directory) if directory is not None else hub.weights_dir()
    file = f"{name}.safetensors"
    meta = {io.CONFIG_KEY: json.dumps(config.to_dict()), "source": "ddpm_lib.train.classifier"}
    io.save_safetensors(out_dir / file, tensors, meta, io.MODEL_FORMAT)
    data = (out_dir / file).read_bytes()
    raw = _read_raw_manifest(out_dir)
    raw["entries"][name] = {
        "file": file,
        "sha256": hub.sha256_of(data),
        "size_bytes": len(data),
        "format": "safetensors",
        "dtype": dtype,
        "description": "Noise-conditional MNIST classifier p(y | x_t, t) for classifier guidance "
        "(LeNet-shaped, FiLM time conditioning, SiLU, average pooling); trained on x_t with "
        "t ~ U{1..T} of the shipped U-Nets' schedule. Inputs x_t float [N,1,28,28], t in 0..T.",
        "architecture": NOISY_CLASSIFIER_ARCHITECTURE,
        "config": config.to_dict(),
        "n_params": facts["n_params"],
        "command": facts["command"],
        "seed": facts["seed"],
        "epochs": facts["epochs"],
        "batch_size": facts["batch_size"],
        "lr": facts["lr"],
        "max_shift": facts["max_shift"],
        "wall_time_s": facts["wall_time_s"],
        "machine": facts["machine"],
        "trained_on": "official 60k MNIST training set via ddpm_lib.data.load_mnist('train')",
        "test_accuracy_by_t": {str(t): a for t, a in accuracy.items()},
        "test_accuracy_by_t_fp32": facts["test_accuracy_by_t"],
        "test_accuracy_note": "official 10k MNIST test set, x_t drawn with a fixed seed (1234) at "
        "each t; test_accuracy_by_t is for this shipped file loaded into the float32 model",
    }
    _write_manifest(out_dir, raw)
    return hub.load_manifest(out_dir)[name]


class EvalResult(NamedTuple):
    """One evaluation of shipped weights (also stored in the manifest entry's ``metrics`` list)."""

    record: dict[str, Any]
    samples: torch.Tensor


def evaluate(
    name: str,
    n: int,
    sampler: str = "ddim",
    steps: int = 50,
    guidance_scale: float = 1.0,
    seed: int = 0,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    record: bool = True,
    command: str | None = None,
    precision: str = "fp32",
    compile: bool = False,
) -> EvalResult:
    r"""Sample ``n`` images from the shipped model ``name`` and score them with ``ddpm_lib.metrics``.

    ``sampler`` is ``"ddim"`` (``steps`` steps, eta 0, :math:`\hat x_0` clamped: ``threshold="static"``)
    or ``"ancestral"`` (all T steps, Algorithm 2), run through ``sample.SAMPLERS``.
    A class-conditional model is sampled with labels ``0, 1, ..., 9, 0, ...`` at ``guidance_scale``.
    ``precision`` (``"fp32"``, ``"bf16"``, ``"fp16"``) and ``compile`` choose how the network runs
    (:class:`ddpm_lib.models.InferenceModel`; the sampler's state stays float32); both are recorded.
    """
    from ddpm_lib import sample
    from ddpm_lib.metrics import class_accuracy, load_classifier, mnist_fid, predict
    from ddpm_lib.metrics.classifier import check_images
    from ddpm_lib.models import InferenceModel

    if sampler not in ("ddim", "ancestral"):
        raise ValueError(f"sampler must be 'ddim' or 'ancestral', got {sampler!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    dev = torch.device(device)
    net, diffusion = hub.pretrained(name, dev)
    model = InferenceModel(net, precision, compile) if precision != "fp32" or compile else net
    conditional = model.config.num_classes is not None
    g = torch.Generator(device=dev).manual_seed(seed)
    entry = sample.SAMPLERS[sampler]
    options = {**entry.options, **({"steps": steps} if "steps" in entry.options else {})}
    threshold = "static" if sampler == "ddim" else "none"  # what the recorded numbers used
    chunks, start = [], time.perf_counter()
    for i in range(0, n, batch_size):
        m = min(batch_size, n - i)
        kw: dict[str, Any] = {"generator": g, "device": dev, "threshold": threshold}
        if conditional:
            kw.update(labels=(torch.arange(i, i + m) % 10).to(dev), guidance_scale=guidance_scale)
        x = entry.sampler(model, diffusion, n=m, **options, **kw)
        chunks.append(x.float().cpu())
    seconds = time.perf_counter() - start
    x = torch.cat(chunks).clamp(-1, 1)
    check_images("samples", x, min_n=2)
    fid = mnist_fid(x)
    predicted = predict(load_classifier(), x)
    rec: dict[str, Any] = {
        "sampler": sampler,
        "steps": steps if sampler == "ddim" else diffusion.T,
        "eta": 0.0 if sampler == "ddim" else None,
        "n": n,
        "seed": seed,
        "fid": round(fid.fid, 3),
        "fid_floor_same_n": round(fid.floor, 3),
        "predicted_class_counts": torch.bincount(predicted, minlength=10).tolist(),
        "sampling_seconds": round(seconds, 1),
        "precision": precision,
        "compiled": compile,
        "machine": machine_name(dev),
        "command": command,
    }
    if conditional:
        labels = torch.arange(n) % 10
        rec["guidance_scale"] = guidance_scale
        rec["class_accuracy"] = round(class_accuracy(x, labels), 4)
    if record:
        directory = hub.weights_dir()
        raw = _read_raw_manifest(directory)
        entry = raw["entries"][name]
        key = ("sampler", "steps", "n", "seed", "guidance_scale")
        kept = [r for r in entry.get("metrics", []) if any(r.get(k) != rec.get(k) for k in key)]
        entry["metrics"] = [*kept, rec]
        _write_manifest(directory, raw)
    return EvalResult(rec, x)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/release.py", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="write a run's EMA weights + manifest entry")
    ex.add_argument("--run", required=True, help="run directory of ddpm_lib.train (finished)")
    ex.add_argument("--name", required=True, help="model name, e.g. mnist-unet")
    ex.add_argument("--train-command", required=True, help="the exact training command line")
    ex.add_argument("--dtype", default="float16", choices=sorted(DTYPES))
    ex.add_argument("--description", default="")
    ex.add_argument("--training-machine", default=None, help="where the run trained (free text)")
    ec = sub.add_parser(
        "export-classifier", help="ship a run of ddpm_lib.train.classifier + manifest entry"
    )
    ec.add_argument("--run", required=True, help="output folder of ddpm_lib.train.classifier")
    ec.add_argument("--name", default="mnist-noisy-classifier")
    ec.add_argument("--dtype", default="float16", choices=sorted(DTYPES))
    ev = sub.add_parser(
        "evaluate", help="sample the shipped weights, score, record in the manifest"
    )
    ev.add_argument("--name", required=True)
    ev.add_argument("--n", type=int, default=1000)
    ev.add_argument("--sampler", default="ddim", choices=["ddim", "ancestral"])
    ev.add_argument("--steps", type=int, default=50, help="DDIM steps")
    ev.add_argument("--scales", default="1", help="guidance scales, comma-separated (conditional)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--batch-size", type=int, default=500)
    ev.add_argument("--device", default="cpu")
    ev.add_argument(
        "--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="network precision"
    )
    ev.add_argument("--compile", action="store_true", help="torch.compile the network")
    args = parser.parse_args(argv)
    if args.cmd == "export-classifier":
        e = export_classifier(args.run, args.name, args.dtype)
        acc = ", ".join(f"t={t}: {a:.3f}" for t, a in e.info["test_accuracy_by_t"].items())
        print(f"wrote {e.file}: {e.size_bytes} bytes, sha256 {e.sha256[:16]}...; {acc}")
        return 0
    if args.cmd == "export":
        e = export_run(
            args.run,
            args.name,
            args.train_command,
            args.dtype,
            args.description,
            training_machine=args.training_machine,
        )
        print(
            f"wrote {e.file}: {e.size_bytes} bytes, sha256 {e.sha256[:16]}..., "
            f"cast error {e.info['cast_rel_rms_eps_error']:.2e}"
        )
        return 0
    try:
        scales = [float(s) for s in args.scales.split(",")]
    except ValueError:
        parser.error(f"--scales must be comma-separated numbers, got {args.scales!r}")
    for s in scales:
        command = (
            f"python tools/release.py evaluate --name {args.name} --n {args.n} "
            f"--sampler {args.sampler} --steps {args.steps} --scales {s:g} --seed {args.seed}"
            + (f" --precision {args.precision}" if args.precision != "fp32" else "")
            + (" --compile" if args.compile else "")
        )
        r = evaluate(
            args.name,
            args.n,
            args.sampler,
            args.steps,
            s,
            args.seed,
            args.batch_size,
            args.device,
            command=command,
            precision=args.precision,
            compile=args.compile,
        ).record
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
