"""Command line of the trainer: ``python -m ddpm_lib.train --preset tiny --out runs/tiny --steps 500``.

Same behaviour as :func:`ddpm_lib.train.train`. Every bad flag value exits with status 2 and a
message naming the flag; a non-finite loss exits with status 1 (the last good checkpoint is kept).

Under ``torchrun --nproc_per_node=N -m ddpm_lib.train ...`` the same flags train with N data-parallel
processes (:mod:`ddpm_lib.train.distributed`); only rank 0 writes files and prints.

Examples::

    python -m ddpm_lib.train --preset tiny --out runs/tiny --steps 500 --seed 0
    python -m ddpm_lib.train --preset mnist --out runs/mnist --max-seconds 3600   # a Colab session
    python -m ddpm_lib.train --out runs/mnist --resume --max-seconds 3600         # the next one
    python -m ddpm_lib.train --preset tiny --out /tmp/t --steps 20 --limit-data 512 \\
        --set dropout=0.1 --set channel_mults=[1,2] --no-progress
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from ddpm_lib import io
from ddpm_lib._validate import check_int, check_number
from ddpm_lib.config import PRESETS, Config, get_config
from ddpm_lib.train.arguments import ParameterError, check_run_dir

# The parameter a ParameterError of train() names -> the flag that set it
_FLAGS = {
    "out_dir": "--out",
    "resume": "--resume",
    "steps": "--steps",
    "epochs": "--epochs",
    "max_seconds": "--max-seconds",
    "checkpoint_every": "--checkpoint-every",
    "seed": "--seed",
    "device": "--device",
    "batch_size": "--batch-size",
    "limit_data": "--limit-data",
    "precision": "--set precision",
}


def _number(name: str, integer: bool, lo: int = 1):
    """An argparse type: the text as an int ``>= lo`` (or a finite float ``> 0``), checked by
    :func:`ddpm_lib._validate.check_int` (or ``check_number``), whose message names ``name``."""

    def parse(text: str):
        try:
            value: object = int(text) if integer else float(text)
        except ValueError:
            value = text
        try:
            return (
                check_int(name, value, lo)
                if integer
                else check_number(name, value, 0, lo_open=True)
            )
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return parse


def _assignment(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected field=value (e.g. dropout=0.1), got {text!r}")
    words = {"true": True, "false": False, "none": None, "null": None}
    if raw.strip().lower() in words:
        return name.strip(), words[raw.strip().lower()]
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a bare word such as cosine or bf16
    return name.strip(), value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ddpm_lib.train",
        description="Train a DDPM noise-prediction U-Net on MNIST (Ho et al. 2020, Algorithm 1).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="config preset (required unless --resume, which defaults to the run's)",
    )
    p.add_argument("--out", required=True, type=Path, help="run directory")
    p.add_argument(
        "--steps",
        type=_number("steps", True),
        help="total optimiser steps of the run (default: config.train_steps)",
    )
    p.add_argument(
        "--epochs", type=_number("epochs", False), help="stop after this many passes over the data"
    )
    p.add_argument(
        "--max-seconds",
        type=_number("max_seconds", False),
        help="wall-clock budget of this invocation's training loop",
    )
    p.add_argument(
        "--seed",
        type=_number("seed", True, 0),
        help="seed of every random draw (default: the config's seed)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=_number("checkpoint_every", True),
        default=1000,
        help="write checkpoint.safetensors every K steps (and at the end)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: cuda if any)")
    p.add_argument("--batch-size", type=_number("batch_size", True), help="override")
    p.add_argument("--lr", type=_number("lr", False), help="override peak lr")
    p.add_argument(
        "--limit-data",
        type=_number("limit_data", True),
        help="train on the first N MNIST training images only (tests, quick runs)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar or status lines")
    p.add_argument(
        "--set",
        dest="overrides",
        type=_assignment,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override any Config field (JSON value), repeatable",
    )
    return p


def _config(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Config | None:
    overrides = dict(args.overrides)
    flags = {"batch_size": args.batch_size, "lr": args.lr, "seed": args.seed}
    if args.preset is None:
        if not overrides and args.batch_size is None and args.lr is None:
            return None  # --resume: the checkpoint's config (the seed is checked by train)
        from ddpm_lib.train.checkpoint import load_checkpoint

        base = load_checkpoint(args.out / io.CHECKPOINT_FILE).config
    else:
        base = PRESETS[args.preset]
    try:
        config = get_config(args.preset, **overrides) if args.preset else None
        if config is None:
            config = Config.from_dict({**base.to_dict(), **overrides})
    except (ValueError, TypeError) as e:
        parser.error(f"argument --set: {e}")
    for field, flag in (("batch_size", "--batch-size"), ("lr", "--lr"), ("seed", "--seed")):
        if flags[field] is not None:
            try:
                config = dataclasses.replace(config, **{field: flags[field]})
            except ValueError as e:
                parser.error(f"argument {flag}: {e}")
    return config


def _error(parser: argparse.ArgumentParser, e: ValueError) -> NoReturn:
    """Exit with status 2, naming the flag behind a :class:`ParameterError` where there is one."""
    flag = _FLAGS.get(e.param) if isinstance(e, ParameterError) else None
    parser.error(f"argument {flag}: {e}" if flag else str(e))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ddpm_lib.train.loop import NonFiniteLossError
    from ddpm_lib.train.trainer import train

    out: Path = args.out
    try:
        check_run_dir(out, args.resume)
    except ParameterError as e:
        _error(parser, e)
    if not args.resume and args.preset is None:
        parser.error(
            f"argument --preset: required for a new run (one of {', '.join(sorted(PRESETS))})"
        )
    config = _config(args, parser)
    try:
        result = train(
            config,
            out,
            steps=args.steps,
            epochs=args.epochs,
            max_seconds=args.max_seconds,
            seed=None if config else args.seed,
            checkpoint_every=args.checkpoint_every,
            resume=args.resume,
            device=args.device,
            progress=not args.no_progress,
            limit_data=args.limit_data,
        )
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        _error(parser, e)
    from ddpm_lib.train.distributed import world_from_env

    if not world_from_env().main:
        return 0
    if result.stopped_by == "already_finished":
        print(f"nothing to do: the run in {out} already finished at step {result.steps}")
    else:
        print(
            f"{result.steps} steps ({result.stopped_by}), {result.images_per_sec:.1f} img/s on "
            f"{result.device} ({result.precision}), final loss {result.final_loss:.4f}; "
            f"wrote {out / io.MODEL_FILE}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
