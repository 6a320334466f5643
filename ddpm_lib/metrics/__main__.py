"""Command line of ``ddpm_lib.metrics``.

Train the FID classifier (writes ``DIR/classifier.safetensors`` and ``DIR/classifier.json``)::

    python -m ddpm_lib.metrics train-classifier --out runs/classifier --epochs 4 --seed 0

Print the real-data FID floor (n real training images against the test set) with the shipped
classifier::

    python -m ddpm_lib.metrics floor --n 1000 10000
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from ..train.classifier import add_training_arguments


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m ddpm_lib.metrics", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train-classifier", help="train the MNIST classifier used by the FID")
    add_training_arguments(tr, epochs=4)
    fl = sub.add_parser("floor", help="print the real-data FID floor for some sample counts")
    fl.add_argument("--n", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args(argv)

    if args.cmd == "train-classifier":
        from ..train.classifier import train_classifier

        command = shlex.join(["python", "-m", "ddpm_lib.metrics", *argv])
        r = train_classifier(
            args.out,
            epochs=args.epochs,
            seed=args.seed,
            batch_size=args.batch_size,
            lr=args.lr,
            max_shift=args.max_shift,
            command=command,
        )
        print(f"test accuracy {r.test_accuracy:.4f}, {r.wall_time_s:.0f} s -> {r.weights_path}")
    else:
        from .fid import fid_floor

        for n in args.n:
            start = time.perf_counter()
            print(f"n = {n}: FID floor {fid_floor(n):.4f} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
