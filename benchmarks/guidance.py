"""Chapter 7's guidance tables: classifier guidance, classifier-free guidance, thresholding and
inpainting on the shipped MNIST networks, measured with the evaluator classifier, on CPU.

Every row draws ``--n`` digits (requested labels 0, 1, ..., 9, 0, ... or, for inpainting, ``--n``
test digits) and records the evaluator's accuracy on the requested (or original) label, the
MNIST-FID with its real-data floor at the same n, the class counts, the within-class diversity
(mean pairwise pixel distance between samples of one requested label, averaged over labels; the
test set's own value is stored as ``diversity_real``), the network evaluations per step and the
wall time. Rows:

* ``classifier-<γ>``: unconditional ``mnist-unet`` + ``mnist-noisy-classifier`` at scale γ;
* ``cfg-<s>``: ``mnist-unet-cfg`` at guidance scale s;
* ``threshold-<kind>-<s>``: CFG at a high scale with ``threshold`` none / static / dynamic, with
  the fraction of x̂_0 pixels outside [-1, 1] averaged over the steps;
* ``inpaint-*``: ``sample.inpaint`` on test digits (mask, model, label as named in the row).

All sampling rows use DDIM (eta 0, ``--steps``) from the same seeded x_T. Each row is written to
the JSON as soon as it finishes (a killed run keeps what it measured; ``--rows`` re-runs some)::

    python benchmarks/guidance.py --n 500                     # every row (about 30 min, 2 cores)
    python benchmarks/guidance.py --n 8 --rows cfg-3 --out /tmp/smoke.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

import ddpm_lib
from ddpm_lib import sample
from ddpm_lib.data import images_to_model, load_mnist
from ddpm_lib.metrics import fid_floor, load_classifier, mnist_fid, predict, within_class_spread
from ddpm_lib.models import CallCounter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from samplers import load_average, machine, save  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "ddpm_lib" / "weights" / "guidance-cpu.json"
SHAPE = (1, 28, 28)
HIGH_SCALE = 7.0


def masks() -> dict[str, torch.Tensor]:
    """The inpainting masks (1 = known pixel), ``[1, 1, 28, 28]``."""
    top = torch.zeros(1, 1, 28, 28)
    top[..., :14, :] = 1.0
    box = torch.ones(1, 1, 28, 28)
    box[..., 8:20, 8:20] = 0.0
    rand = (torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(7)) < 0.2).float()
    return {"bottom-half": top, "box": box, "random-80": rand}


class Setup:
    """Everything the rows share: networks (counted), x_T, labels, test digits, the evaluator."""

    def __init__(self, n: int, seed: int, steps: int) -> None:
        unet, self.d = ddpm_lib.pretrained("mnist-unet")
        cfg, _ = ddpm_lib.pretrained("mnist-unet-cfg")
        self.unet, self.cfg = CallCounter(unet).eval(), CallCounter(cfg).eval()
        self.clf = CallCounter(ddpm_lib.pretrained("mnist-noisy-classifier").model).eval()
        self.evaluator = load_classifier()
        self.n, self.seed, self.steps = n, seed, steps
        self.x_T = torch.randn((n, *SHAPE), generator=torch.Generator().manual_seed(seed))
        self.labels = torch.arange(n) % 10
        test = load_mnist("test")
        idx = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(seed))[:n]
        self.test_x = images_to_model(test.images[idx])
        self.test_y = torch.as_tensor(test.labels)[idx].long()


def _ddim(s: Setup, callback, model, **kw) -> torch.Tensor:
    """DDIM from the shared x_T, x̂_0 clamped (``threshold="static"``) unless ``kw`` says."""
    entry = sample.SAMPLERS["ddim"]
    options = {**entry.options, "steps": s.steps, "threshold": "static", **kw}
    return entry.sampler(model, s.d, x_T=s.x_T.clone(), labels=s.labels, callback=callback,
                         **options)  # fmt: skip


def classifier_row(gamma: float) -> Callable:
    def run(s: Setup, callback):
        x = _ddim(s, callback, s.unet, classifier=s.clf, classifier_scale=gamma)
        return x, s.labels, {"method": "classifier", "scale": gamma, "model": "mnist-unet"}

    return run


def cfg_row(scale: float, threshold: str | None = None) -> Callable:
    def run(s: Setup, callback):
        extra = {} if threshold is None else {"threshold": threshold, "clip_samples": False}
        x = _ddim(s, callback, s.cfg, guidance_scale=scale, **extra)
        info = {"method": "cfg", "scale": scale, "model": "mnist-unet-cfg"}
        if threshold is not None:
            info.update(method="threshold", threshold=threshold)
            info["outside_fraction_samples"] = round(float((x.abs() > 1).double().mean()), 5)
        return x.clamp(-1, 1), s.labels, info

    return run


def inpaint_row(
    mask: str,
    conditional: bool,
    label: str = "original",
    resample: int = 1,
    steps: int = 0,
    reconstruction: float = 0.0,
):
    def run(s: Setup, callback):
        m = masks()[mask]
        want = s.test_y if label == "original" else torch.full_like(s.test_y, int(label))
        kw = {"labels": want, "guidance_scale": 3.0} if conditional else {}
        kw["reconstruction_scale"] = reconstruction
        gen = torch.Generator().manual_seed(s.seed + 1)
        model = s.cfg if conditional else s.unet
        x = sample.inpaint(model, s.d, x_known=s.test_x, mask=m, resample=resample,
                           steps=steps or s.steps, generator=gen, threshold="static",
                           callback=callback, **kw)  # fmt: skip
        masked_acc = float(
            (predict(s.evaluator, m * s.test_x - (1 - m)) == s.test_y).double().mean()
        )
        info = {
            "method": "inpaint",
            "mask": mask,
            "known_fraction": round(float(m.mean()), 4),
            "model": "mnist-unet-cfg" if conditional else "mnist-unet",
            "label": label,
            "scale": 3.0 if conditional else None,
            "resample": resample,
            "reconstruction_scale": reconstruction,
            "steps": steps or s.steps,
            "accuracy_masked_input": round(masked_acc, 4),
            "known_pixels_max_error": float((m * (x - s.test_x)).abs().max()),
        }
        return x, want, info

    return run


ROWS: dict[str, Callable] = {
    **{f"classifier-{g:g}": classifier_row(g) for g in (0.0, 1.0, 2.0, 3.0, 5.0, 10.0)},
    **{f"cfg-{s:g}": cfg_row(s) for s in (0.0, 1.0, 2.0, 3.0, 5.0)},
    **{
        f"threshold-{k}-{HIGH_SCALE:g}": cfg_row(HIGH_SCALE, k)
        for k in ("none", "static", "dynamic")
    },
    "inpaint-bottom-half": inpaint_row("bottom-half", False),
    "inpaint-bottom-half-r8": inpaint_row("bottom-half", False, resample=8),
    "inpaint-bottom-half-rg4": inpaint_row("bottom-half", False, reconstruction=4.0),
    "inpaint-box": inpaint_row("box", False),
    "inpaint-random-80": inpaint_row("random-80", False),
    "inpaint-bottom-half-cfg": inpaint_row("bottom-half", True),
    "inpaint-bottom-half-cfg-3": inpaint_row("bottom-half", True, label="3"),
}


def run_row(name: str, s: Setup) -> dict:
    record: list[float] = []

    def recording(step: sample.Step) -> None:  # how far the model's x̂_0 leaves [-1, 1] per pass
        record.append(float((step.x0_hat.abs() > 1).double().mean()))

    for net in (s.unet, s.cfg, s.clf):
        net.reset()
    load_before, start = load_average(), time.perf_counter()
    x, want, info = ROWS[name](s, recording)
    wall = time.perf_counter() - start
    fid = mnist_fid(x, classifier=s.evaluator)
    pred = predict(s.evaluator, x)
    nfe = s.unet.calls + s.cfg.calls
    per = s.n * (len(record) or 1)  # sample-steps
    return {
        "steps": s.steps,
        **info,
        "n": s.n,
        "accuracy": round(float((pred == want).double().mean()), 4),
        "fid": round(fid.fid, 3),
        "fid_floor": round(fid.floor, 3),
        "class_counts": torch.bincount(pred, minlength=10).tolist(),
        "diversity": round(within_class_spread(x, want), 4),
        "x0_outside_fraction": round(sum(record) / max(len(record), 1), 5),
        "x0_outside_by_step": [round(v, 5) for v in record],
        "network_calls": nfe,
        "network_calls_per_step": round(nfe / (len(record) or 1), 3),
        "unet_evals_per_sample_step": round((s.unet.images + s.cfg.images) / per, 3),
        "classifier_evals_per_sample_step": round(s.clf.images / per, 3),
        "wall_s": round(wall, 2),
        "s_per_100": round(wall * 100 / s.n, 2),
        "load_before": load_before,
        "load_after": load_average(),
        "threads": torch.get_num_threads(),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500, help="digits per row (>= 10)")
    p.add_argument("--steps", type=int, default=25, help="DDIM / inpainting steps")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file (merged into)")
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS), metavar="NAME")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)
    if not 10 <= args.n <= 10000:
        p.error(f"--n must be in [10, 10000], got {args.n}")
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    data: dict = {}
    if args.out.exists():
        data = json.loads(args.out.read_text())
        key = (data.get("n"), data.get("seed"), data.get("steps"))
        if key != (args.n, args.seed, args.steps):
            p.error(f"{args.out} holds (n, seed, steps) = {key}: use another --out")
    for k, v in (("n", args.n), ("seed", args.seed), ("steps", args.steps)):
        data.setdefault(k, v)
    data.setdefault("sampler", f"DDIM, {args.steps} steps, eta 0 (inpainting: {args.steps} steps)")
    data.setdefault("results", {})
    data.setdefault("runs", [])
    run = {
        "command": shlex.join(["python", "benchmarks/guidance.py", *(argv or sys.argv[1:])]),
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "rows": args.rows,
    }
    data["runs"].append(run)
    s = Setup(args.n, args.seed, args.steps)
    data["fid_floor"] = round(fid_floor(args.n, s.evaluator), 3)
    data["diversity_real"] = round(within_class_spread(s.test_x, s.test_y), 4)
    save(args.out, data)
    print(f"n = {args.n}, FID floor {data['fid_floor']:.2f}, diversity {data['diversity_real']}")
    for name in args.rows:
        r = run_row(name, s)
        data["results"][name] = r
        run["ended"] = r["finished"]
        save(args.out, data)
        print(
            f"{name:>28}: acc {r['accuracy']:.3f}  FID {r['fid']:6.2f}  div {r['diversity']:.2f}  "
            f"x0 out {r['x0_outside_fraction']:.4f}  {r['unet_evals_per_sample_step']:.1f} evals  "
            f"{r['wall_s']:.0f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
