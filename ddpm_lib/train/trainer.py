r"""Algorithm 1 of Ho et al. (2020) for real: train :math:`\epsilon_\theta` on MNIST, resumably.

Each optimiser step draws a batch :math:`x_0` from the data set, :math:`t \sim \mathcal U\{1..T\}`
and :math:`\epsilon \sim \mathcal N(0, I)`, and takes an AdamW step on

.. math:: L_\text{simple}(\theta) = \big\|\epsilon - \epsilon_\theta\big(\sqrt{\bar\alpha_t}\,x_0
    + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t\big)\big\|^2 \qquad \text{(Ho et al. 2020, Eq. 14)}

with a linear learning-rate warm-up, gradient-norm clipping and an EMA of the weights
(:mod:`ddpm_lib.train.ema`), which is what is saved, evaluated and sampled from.

Design: the whole data set lives on the training device and a batch is an index draw from a
``torch.Generator`` (a fresh permutation per epoch; no DataLoader). All randomness comes from
explicit generators (``data``: permutations and label dropout; ``noise``: :math:`t` and
:math:`\epsilon`) plus dropout, which uses the global RNG and is therefore re-seeded from
``(seed, step)`` before every step inside :func:`torch.random.fork_rng` (the caller's global RNG
state is left untouched). Their states go into every checkpoint, so on the CPU a run killed at any
instant and resumed gives bitwise the same weights as an uninterrupted one."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ddpm_lib import io
from ddpm_lib.config import Config, config_mismatch
from ddpm_lib.diffusion import Diffusion
from ddpm_lib.models.unet import UNet
from ddpm_lib.train import distributed, loop
from ddpm_lib.train.arguments import (
    ParameterError,
    check_positive,
    check_run_dir,
    resolve_device,
    resolve_precision,
)
from ddpm_lib.train.checkpoint import TrainState, load_checkpoint
from ddpm_lib.train.dataset import Dataset, prepare_data
from ddpm_lib.train.progress import Callback

STOP_REASONS = ("steps", "epochs", "max_seconds", "already_finished")


class TrainResult(NamedTuple):
    """What :func:`train` returns.

    ``model``: the EMA U-Net in eval mode on the training device; ``diffusion``: its schedule;
    ``steps``: optimiser steps of the whole run so far; ``seconds``: training wall time of all
    segments of the run; ``images_per_sec``: throughput of the latest segment that trained;
    ``final_loss``: mean :math:`L_\\text{simple}` of the last ``min(100, steps)`` steps (NaN if none);
    ``losses``: float32 ``[steps]``, the loss of every step; ``stopped_by``: one of
    :data:`STOP_REASONS`; ``device``, ``precision`` (resolved: fp32/bf16/fp16); ``out_dir``;
    ``resumed_from``: the step the run was resumed at, or None."""

    model: UNet
    diffusion: Diffusion
    config: Config
    steps: int
    seconds: float
    images_per_sec: float
    final_loss: float
    losses: torch.Tensor
    stopped_by: str
    device: str
    precision: str
    out_dir: Path
    resumed_from: int | None


def train(
    config: Config | None,
    out_dir: str | os.PathLike[str],
    *,
    steps: int | None = None,
    epochs: float | None = None,
    max_seconds: float | None = None,
    seed: int | None = None,
    checkpoint_every: int = 1000,
    resume: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
    data: object = None,
    limit_data: int | None = None,
    callback: Callback | None = None,
    callback_every: int = 50,
) -> TrainResult:
    """Train (or resume) a DDPM run in ``out_dir``; the same behaviour as ``python -m ddpm_lib.train``.

    Args:
        config: the run's :class:`~ddpm_lib.config.Config`; with ``resume=True`` it may be None
            (then the checkpoint's config is used), otherwise it must equal the checkpoint's.
        out_dir: run directory; receives ``model.safetensors`` (EMA weights, config embedded),
            ``config.json``, ``metrics.json`` and ``checkpoint.safetensors``.
        steps: stop after this many optimiser steps of the whole run (not of this call).
        epochs: stop after this many passes over the data, ``ceil(epochs * (N // batch_size))`` steps.
        max_seconds: wall-clock budget of *this call's* training loop (e.g. a Colab session).
            Training stops at whichever of the three comes first; with neither ``steps`` nor
            ``epochs`` given, ``steps = config.train_steps``.
        seed: replaces ``config.seed`` if given (weights, batches, noise, dropout all derive from it).
        checkpoint_every: write ``checkpoint.safetensors`` every this many steps (and at the end).
        resume: continue the run in ``out_dir`` from its checkpoint; a finished run is a no-op
            (its outputs are rewritten from the checkpoint). Without it an existing run is refused.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...; default CUDA if available, else CPU.
        progress: show a tqdm progress bar (loss, images/s) and status lines.
        data: images to train on instead of the 60k MNIST training set: an ``MNISTSplit``, an
            ``(images, labels)`` pair or an images tensor (uint8 ``[N, 28, 28]`` or float
            ``[N, 1, 28, 28]`` in [-1, 1]); labels are needed for a conditional config.
        limit_data: use only the first ``limit_data`` images (for tests and quick runs).
        callback: ``callback(progress)`` with a :class:`~ddpm_lib.train.progress.TrainProgress`
            every ``callback_every`` steps and once at the end of the call (rank 0 only), e.g. a
            live loss curve and sample grid in a notebook
            (:class:`ddpm_lib.viz.training.LiveTraining`). Its time is not counted in
            ``images_per_sec``; it cannot change the run (the training draws from its own
            generators, and the global RNG state is restored after the loop).

    Under ``torchrun --nproc_per_node=N`` (see :mod:`ddpm_lib.train.distributed`) every process
    calls this function: ``config.batch_size`` is the global batch, split over the N processes;
    rank 0 writes the files; all of them return the same result.

    Raises:
        ParameterError: (a ValueError whose ``param`` names the parameter) a bad argument (with
            its allowed range), an existing run without ``resume``, no checkpoint with ``resume``,
            a config or data set that differs from the checkpoint's (naming the fields), an
            impossible precision for the device.
        NonFiniteLossError: the loss became NaN/inf; the last good checkpoint is kept.
    """
    for name, value, integer in (
        ("steps", steps, True),
        ("epochs", epochs, False),
        ("max_seconds", max_seconds, False),
        ("checkpoint_every", checkpoint_every, True),
        ("callback_every", callback_every, True),
    ):
        if value is not None or name in ("checkpoint_every", "callback_every"):
            check_positive(name, value, integer)
    if config is not None and not isinstance(config, Config):
        raise TypeError(f"config must be a ddpm_lib.config.Config or None, got {type(config)}")
    if callback is not None and not callable(callback):
        raise ParameterError("callback", f"callback must be callable or None, got {callback!r}")
    if config is None and not resume:
        raise ParameterError(
            "config", "config=None is only allowed with resume=True (the checkpoint's config)"
        )
    if seed is not None and config is not None:
        try:
            config = Config.from_dict({**config.to_dict(), "seed": seed})
        except ValueError as e:
            raise ParameterError("seed", str(e)) from e
    world = distributed.world_from_env()
    out = Path(out_dir)
    ckpt_path = check_run_dir(out, resume)
    saved = None
    if resume:
        saved = load_checkpoint(ckpt_path)
        if config is None:
            config = saved.config
            if seed is not None and seed != config.seed:
                raise ParameterError(
                    "seed", f"seed={seed} differs from the checkpoint's seed {config.seed}"
                )
        diff = config_mismatch(config, saved.config)
        if diff:
            detail = ", ".join(
                f"{f} (given {getattr(config, f)!r}, checkpoint {getattr(saved.config, f)!r})"
                for f in diff
            )
            raise ParameterError(
                "config",
                f"the config differs from the one of the checkpoint {ckpt_path} in: {detail}; "
                f"resume with the checkpoint's config or start a new run in another directory",
            )
    assert config is not None
    dev = resolve_device(device)
    precision = resolve_precision(config.precision, dev)
    try:
        distributed.shard(world, config.batch_size)  # the global batch must split evenly
    except ValueError as e:
        raise ParameterError("batch_size", str(e)) from e
    dev = distributed.start(world, dev)
    try:
        return _train(
            config,
            out,
            saved,
            dict(steps=steps, epochs=epochs, max_seconds=max_seconds),
            checkpoint_every,
            dev,
            precision,
            progress,
            prepare_data(data, config, limit_data),
            world,
            (callback, callback_every),
        )
    finally:
        distributed.stop(world)


def _train(
    config: Config,
    out: Path,
    saved: TrainState | None,
    limits_given: dict[str, float | None],
    checkpoint_every: int,
    dev: torch.device,
    precision: str,
    progress: bool,
    dataset: Dataset,
    world: distributed.World,
    reporting: tuple[Callback | None, int] = (None, 50),
) -> TrainResult:
    """:func:`train` once its arguments are checked; runs on every rank of a torchrun world."""
    steps, epochs = limits_given["steps"], limits_given["epochs"]
    max_seconds = limits_given["max_seconds"]
    ckpt_path = out / io.CHECKPOINT_FILE
    if saved is not None:
        want = saved.info.get("data", {})
        if want.get("sha256") != dataset.fingerprint:
            raise ParameterError(
                "data",
                f"the training data differs from the checkpoint's (checkpoint: {want.get('n')} "
                f"images, now: {dataset.n}); pass the same data / limit_data as the first run",
            )
    steps_per_epoch = dataset.n // config.batch_size
    if steps is None and epochs is None:
        steps = config.train_steps
    limits = []
    if steps is not None:
        limits.append((steps, "steps"))
    if epochs is not None:
        limits.append((max(1, math.ceil(epochs * steps_per_epoch)), "epochs"))
    step_limit, limit_reason = min(limits)
    # Every rank has read what it needs (the run directory's state, the checkpoint) before rank 0
    # changes anything in it.
    distributed.barrier(world)
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
        if saved is not None:
            _remove_stale_temp_files(out)
    say = loop.Say(progress and world.main)

    if saved is not None and saved.step >= step_limit:
        say(
            f"the run in {out} already reached step {saved.step} (target {step_limit}); "
            f"nothing to train, outputs rewritten from the checkpoint"
        )
        if world.main:
            write_outputs(out, saved)
        ema = io.build_model(config)
        io.load_state_dict_checked(ema, saved.ema, ckpt_path)
        return _result(
            saved, ema.to(dev).eval(), "already_finished", dev, precision, out, saved.step
        )

    run = loop.Run(config, dev, precision, dataset, steps_per_epoch, ckpt_path, say, world)
    resumed_from = None
    if saved is not None:
        run.restore(saved)
        resumed_from = saved.step
        say(f"resuming {out} at step {saved.step} of {step_limit}")
    stopped_by = run.run(
        step_limit, limit_reason, max_seconds, checkpoint_every, progress, *reporting
    )
    state = run.state()
    if world.main:
        write_outputs(out, state)
    return _result(state, run.ema.model.eval(), stopped_by, dev, precision, out, resumed_from)


def _remove_stale_temp_files(out: Path) -> None:
    """Temporary files of writes that a kill interrupted (see ddpm_lib.io.atomic_write_bytes)."""
    for name in (io.CHECKPOINT_FILE, io.MODEL_FILE, io.CONFIG_FILE, io.METRICS_FILE):
        for tmp in out.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def _result(state, ema_model, stopped_by, dev, precision, out, resumed_from) -> TrainResult:
    segments = state.info.get("segments", [])
    trained = [s for s in segments if s["end_step"] > s["start_step"]]
    losses = state.losses
    tail = losses[-min(100, len(losses)) :] if len(losses) else losses
    return TrainResult(
        model=ema_model,
        diffusion=state.config.diffusion(),
        config=state.config,
        steps=state.step,
        seconds=float(sum(s["seconds"] for s in segments)),
        images_per_sec=float(trained[-1]["images_per_sec"]) if trained else 0.0,
        final_loss=float(tail.mean()) if len(tail) else math.nan,
        losses=losses,
        stopped_by=stopped_by,
        device=str(dev),
        precision=precision,
        out_dir=out,
        resumed_from=resumed_from,
    )


# ------------------------------------------------------------------------------------ outputs
def _mean(x: torch.Tensor) -> float | None:
    return float(x.double().mean()) if len(x) else None


def metrics_summary(state: TrainState) -> dict[str, Any]:
    """The content of ``metrics.json`` (JSON-safe; missing numbers are null)."""
    losses, S = state.losses, state.step
    segments = state.info.get("segments", [])
    trained = [s for s in segments if s["end_step"] > s["start_step"]]
    last = segments[-1] if segments else {}
    n = state.info["data"]["n"]
    tenth = max(1, S // 10)
    edges = sorted({round(S * k / min(S, 100)) for k in range(min(S, 100) + 1)}) if S else [0]
    return {
        "steps": S,
        "epochs": S * state.config.batch_size / n,
        "num_images": n,
        "batch_size": state.config.batch_size,
        "seed": state.config.seed,
        "seconds": sum(s["seconds"] for s in segments),
        "images_per_sec": trained[-1]["images_per_sec"] if trained else None,
        "device": last.get("device"),
        "precision": last.get("precision"),
        "stopped_by": last.get("stopped_by"),
        "final_loss": _mean(losses[-min(100, S) :]) if S else None,
        "loss_first_10pct": _mean(losses[:tenth]) if S else None,
        "loss_last_10pct": _mean(losses[-tenth:]) if S else None,
        "loss_curve": {
            "step": edges[1:],
            "mean_loss": [_mean(losses[a:b]) for a, b in zip(edges, edges[1:], strict=False)],
        },
        "segments": segments,
        "torch": torch.__version__,
    }


def write_outputs(out: Path, state: TrainState) -> None:
    """``model.safetensors`` (EMA), ``config.json`` and ``metrics.json`` from a final state."""
    io.save_model(out / io.MODEL_FILE, state.ema, state.config)
    io.write_json(out / io.CONFIG_FILE, state.config.to_dict())
    io.write_json(out / io.METRICS_FILE, metrics_summary(state))
