"""Throughput of ddpm_lib's U-Net presets and of a peer U-Net, measured in one run on this device.

The peer is diffusers' ``UNet2DModel`` with the configuration of the Hugging Face diffusion course's
MNIST example (block_out_channels (32, 64, 64), two ResNet layers per block, attention in the two
lower blocks). Both are trained with the same Algorithm 1 step (forward, backward, AdamW) on real
MNIST batches and sampled with the same DDIM loop, so the ratio compares the networks alone.

    pip install diffusers            # only for the peer; everything else is ddpm_lib's
    python benchmarks/bench.py --presets tiny mnist --peer --threads 2

Prints a Markdown table (paste into BENCHMARKS.md) and writes JSON with every raw timing.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from ddpm_lib import config as cfg_mod
from ddpm_lib.data import images_to_model, load_mnist
from ddpm_lib.models import UNet, count_parameters
from ddpm_lib.sample import ddim


def peer_model() -> torch.nn.Module:
    """diffusers' UNet2DModel as configured in the HF diffusion course (Unit 1, MNIST)."""
    from diffusers import UNet2DModel

    net = UNet2DModel(
        sample_size=28,
        in_channels=1,
        out_channels=1,
        layers_per_block=2,
        block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    )

    class Peer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x, t, labels=None):
            return self.net(x, t).sample

    return Peer()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_throughput(model, x_data, T, batch, steps, device, generator) -> list[float]:
    """Seconds per Algorithm 1 step (forward + backward + AdamW), after 2 warm-up steps."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ab = torch.cumprod(1 - torch.linspace(1e-4, 0.02, T, dtype=torch.float64), 0).float().to(device)
    ab = torch.cat([torch.ones(1, device=device), ab])
    times = []
    model.train()
    for i in range(steps + 2):
        idx = torch.randint(0, x_data.shape[0], (batch,), generator=generator)
        x0 = x_data[idx].to(device)
        t = torch.randint(1, T + 1, (batch,), generator=generator).to(device)
        eps = torch.randn(x0.shape, generator=generator).to(device)
        _sync(device)
        start = time.perf_counter()
        x_t = ab[t].sqrt().view(-1, 1, 1, 1) * x0 + (1 - ab[t]).sqrt().view(-1, 1, 1, 1) * eps
        loss = (model(x_t, t) - eps).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return times


def sample_time(model, diffusion, n, steps, device) -> float:
    """Seconds for DDIM with ``steps`` model evaluations of ``n`` images (after one warm-up step)."""
    model.eval()
    kw = {"n": n, "device": device, "threshold": "static"}
    ddim(model, diffusion, steps=1, generator=torch.Generator().manual_seed(0), **kw)
    _sync(device)
    start = time.perf_counter()
    ddim(model, diffusion, steps=steps, generator=torch.Generator().manual_seed(0), **kw)
    _sync(device)
    return time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--presets", nargs="+", default=["tiny", "mnist"], choices=sorted(cfg_mod.PRESETS)
    )
    p.add_argument("--peer", action="store_true", help="also measure diffusers' UNet2DModel")
    p.add_argument("--batch", type=int, default=64, help="training batch size (the same for all)")
    p.add_argument("--steps", type=int, default=6, help="timed training steps per model")
    p.add_argument("--sample-n", type=int, default=64, help="images per sampling batch")
    p.add_argument("--sample-steps", type=int, default=5, help="DDIM steps timed (then scaled)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", type=Path, default=None, help="write raw results here")
    args = p.parse_args(argv)
    for name in ("batch", "steps", "sample_n", "sample_steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x_data = images_to_model(load_mnist("train").images[:8192])
    models = [(name, UNet(cfg_mod.get_config(name))) for name in args.presets]
    if args.peer:
        models.append(("diffusers UNet2DModel (HF course MNIST)", peer_model()))
    diffusion = cfg_mod.get_config("tiny").diffusion()
    rows = []
    for name, model in models:
        torch.manual_seed(0)
        model = model.to(device)
        times = train_throughput(model, x_data, diffusion.T, args.batch, args.steps, device,
                                 torch.Generator().manual_seed(0))  # fmt: skip
        per_step = statistics.median(times)
        s = sample_time(model, diffusion, args.sample_n, args.sample_steps, device)
        per_eval = s / args.sample_steps
        rows.append(
            {
                "model": name,
                "params": count_parameters(model),
                "train_img_per_s": args.batch / per_step,
                "train_step_s": times,
                "eval_s_per_batch": per_eval,
                "ddim50_s": 50 * per_eval,
                "ancestral1000_s": 1000 * per_eval,
            }
        )
        print(f"measured {name}", file=sys.stderr)
    machine = (
        torch.cuda.get_device_name(device) if device.type == "cuda"
        else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    )  # fmt: skip
    print(f"\nDevice: {machine}; torch {torch.__version__}; train batch {args.batch}; "
          f"sampling batch {args.sample_n}\n")  # fmt: skip
    print(
        "| model | params | train img/s | one eval of the batch (s) | DDIM-50 (s) | ancestral 1000 (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['params'] / 1e6:.2f} M | {r['train_img_per_s']:.0f} | "
              f"{r['eval_s_per_batch']:.3f} | {r['ddim50_s']:.1f} | {r['ancestral1000_s']:.0f} |")  # fmt: skip
    if args.peer and len(rows) > 1:
        peer = rows[-1]
        for r in rows[:-1]:
            print(f"\n{r['model']} vs peer: training {r['train_img_per_s'] / peer['train_img_per_s']:.2f}x "
                  f"the peer's img/s, sampling {peer['eval_s_per_batch'] / r['eval_s_per_batch']:.2f}x "
                  "the peer's speed", end="")  # fmt: skip
        print()
    if args.json:
        args.json.write_text(json.dumps({"device": machine, "torch": torch.__version__,
                                         "args": {k: str(v) for k, v in vars(args).items()},
                                         "rows": rows}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
