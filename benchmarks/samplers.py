"""Chapter 6's sampler table: every sampler of ddpm_lib on the one shipped MNIST network, on CPU.

For each sampler this draws ``--n`` digits with ``ddpm_lib.pretrained("mnist-unet")`` and records
the number of (batched) network evaluations, the wall time, the seconds per 100 images, the
MNIST-FID with the real-data floor at the same n (:func:`ddpm_lib.metrics.mnist_fid`), and the class
coverage (the shipped classifier's predicted-class counts). All samplers that take ``x_T`` start
from the same seeded ``x_T``; the stochastic ones draw their noise from a second seeded generator.

    python benchmarks/samplers.py --n 200 --threads 1                 # the whole table (long)
    python benchmarks/samplers.py --n 4 --samplers ddim-10 --out /tmp/smoke.json

Each sampler's result is written to the JSON file as soon as it finishes, so a killed run keeps
what it measured; ``--samplers`` re-runs a subset and merges it into the file (a result measured at
another n is refused rather than mixed: use another ``--out``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

import ddpm_lib
from ddpm_lib import sample
from ddpm_lib.metrics import fid_floor, load_classifier, mnist_fid, predict
from ddpm_lib.models import CallCounter

# Shipped inside the package next to the weights it measures, so chapter 6 finds it on Colab too.
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "ddpm_lib" / "weights" / "samplers-cpu.json"
SHAPE = (1, 28, 28)


# name -> (description, sample.SAMPLERS name, options over its defaults); the order is the run
# order (cheap ones first). DDIM clamps x0_hat (threshold="static"), as when the table was measured.
ROWS: dict[str, tuple[str, str, dict]] = {
    "ddim-10": ("DDIM, 10 steps, eta 0", "ddim", {"steps": 10, "threshold": "static"}),
    "ddim-20": ("DDIM, 20 steps, eta 0", "ddim", {"steps": 20, "threshold": "static"}),
    "ddim-50": ("DDIM, 50 steps, eta 0", "ddim", {"steps": 50, "threshold": "static"}),
    "ddim-100": ("DDIM, 100 steps, eta 0", "ddim", {"steps": 100, "threshold": "static"}),
    "sde-100": ("reverse SDE, Euler-Maruyama, 100 steps", "reverse_sde", {"steps": 100}),
    "pf-ode-1e-3": ("PF-ODE, RK45, rtol = atol = 1e-3", "probability_flow",
                    {"rtol": 1e-3, "atol": 1e-3}),
    "pf-ode-1e-5": ("PF-ODE, RK45, rtol = atol = 1e-5", "probability_flow",
                    {"rtol": 1e-5, "atol": 1e-5}),
    "ancestral-1000": ("ancestral (Algorithm 2), 1000 steps", "ancestral", {}),
    "sde-1000": ("reverse SDE, Euler-Maruyama, 1000 steps", "reverse_sde", {"steps": 1000}),
}  # fmt: skip


def run_sampler(name: str, model, d, x_T: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The row ``name`` of :data:`ROWS` from ``x_T``, its noise from ``gen``."""
    _, key, options = ROWS[name]
    entry = sample.SAMPLERS[key]
    return entry.sampler(model, d, x_T=x_T, generator=gen, **{**entry.options, **options})


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }


def save(path: Path, data: dict) -> None:
    from ddpm_lib._atomic import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode())


def run_one(name: str, model: CallCounter, d, x_T: torch.Tensor, seed: int, classifier) -> dict:
    description = ROWS[name][0]
    gen = torch.Generator().manual_seed(seed + 1)
    load_before = load_average()
    model.reset()
    start = time.perf_counter()
    samples = run_sampler(name, model, d, x_T.clone(), gen)
    wall = time.perf_counter() - start
    nfe = model.calls
    n = x_T.shape[0]
    fid = mnist_fid(samples.clamp(-1.0, 1.0), classifier=classifier)
    counts = torch.bincount(predict(classifier, samples), minlength=10).tolist()
    return {
        "sampler": description,
        "nfe": nfe,
        "wall_s": round(wall, 2),
        "s_per_100": round(wall * 100 / n, 2),
        "fid": round(fid.fid, 3),
        "fid_floor": round(fid.floor, 3),
        "n": n,
        "classes_covered": sum(c > 0 for c in counts),
        "class_counts": counts,
        "load_before": load_before,
        "load_after": load_average(),
        "threads": torch.get_num_threads(),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200, help="digits per sampler (>= 2)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file (merged into)")
    p.add_argument(
        "--samplers",
        nargs="+",
        default=list(ROWS),
        choices=list(ROWS),
        metavar="NAME",
        help=f"subset to run, from: {' '.join(ROWS)}",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of x_T (noise uses seed + 1)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)
    if not 2 <= args.n <= 60000:
        p.error(f"--n must be in [2, 60000], got {args.n}")
    if args.threads is not None:
        if args.threads < 1:
            p.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)

    data: dict = {}
    if args.out.exists():
        data = json.loads(args.out.read_text())
        if data.get("n") != args.n or data.get("seed") != args.seed:
            p.error(
                f"{args.out} holds n={data.get('n')}, seed={data.get('seed')}; this run asks for "
                f"n={args.n}, seed={args.seed}: use another --out"
            )
    data.setdefault("n", args.n)
    data.setdefault("seed", args.seed)
    data.setdefault("model", "mnist-unet")
    data.setdefault("results", {})
    data.setdefault("runs", [])
    run = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_before": load_average(),
        "samplers": args.samplers,
    }
    data["runs"].append(run)

    model, d = ddpm_lib.pretrained("mnist-unet")
    counted = CallCounter(model).eval()
    classifier = load_classifier()
    data["fid_floor"] = round(fid_floor(args.n, classifier), 3)
    x_T = torch.randn((args.n, *SHAPE), generator=torch.Generator().manual_seed(args.seed))
    save(args.out, data)
    print(f"n = {args.n}, FID floor {data['fid_floor']:.2f}, threads {torch.get_num_threads()}")
    for name in args.samplers:
        r = run_one(name, counted, d, x_T, args.seed, classifier)
        data["results"][name] = r
        run["load_after"] = load_average()
        run["ended"] = r["finished"]
        save(args.out, data)
        print(
            f"{name:>15}: NFE {r['nfe']:5d}  {r['wall_s']:8.1f} s  {r['s_per_100']:7.1f} s/100  "
            f"FID {r['fid']:7.2f} (floor {r['fid_floor']:.2f})  classes {r['classes_covered']}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
