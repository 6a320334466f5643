r"""The inner loop of :func:`ddpm_lib.train.train`: device/precision/data set-up, one optimiser step
of Algorithm 1, checkpoints, and the files written at the end of a run."""

from __future__ import annotations

import contextlib
import hashlib
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from ddpm_lib import io
from ddpm_lib.config import Config
from ddpm_lib.diffusion import Diffusion
from ddpm_lib.train import distributed
from ddpm_lib.train.checkpoint import TrainState, save_checkpoint
from ddpm_lib.train.dataset import Dataset
from ddpm_lib.train.distributed import SINGLE, World
from ddpm_lib.train.ema import EMA
from ddpm_lib.train.lr import lr_warmup
from ddpm_lib.train.progress import Callback, TrainProgress


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or inf; the run stopped and its last good checkpoint is kept."""


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed for one named random stream of the run, e.g. ``derive_seed(0, "noise")``."""
    text = ":".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def algorithm1_loss(
    model,
    x0: torch.Tensor,
    labels: torch.Tensor | None,
    diffusion: Diffusion,
    generator: torch.Generator,
    autocast=contextlib.nullcontext,
    shard: slice | None = None,
) -> torch.Tensor:
    r"""One draw of :math:`L_\text{simple}` (Ho et al. 2020, Algorithm 1 / Eq. 14), fp32 scalar:
    :math:`t \sim \mathcal U\{1..T\}`, :math:`\epsilon \sim \mathcal N(0, I)` from ``generator`` (in
    that order, as :func:`ddpm_lib.bound.loss_simple` draws them), then
    :math:`\mathrm{mean}\,(\epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}
    \epsilon, t[, y]))^2` with :math:`x_t` from :meth:`ddpm_lib.Diffusion.q_sample` (whose checks
    read nothing back from the device: no GPU sync per step). ``x0`` ``[B, 1, 28, 28]``;
    ``diffusion`` on ``x0``'s device; ``labels`` ``[B]`` or None; the model runs under
    ``autocast()`` (unlike ``loss_simple``, which calls it through ``Diffusion.call_model``).

    With ``shard`` (data-parallel training), ``x0`` and ``labels`` are the global batch: t and
    eps are drawn for all of it, as one process would, and the loss is the mean over the shard."""
    B, T = x0.shape[0], diffusion.T
    t = torch.randint(1, T + 1, (B,), generator=generator, device=generator.device)
    eps = torch.randn(x0.shape, generator=generator, device=generator.device, dtype=x0.dtype)
    if shard is not None:
        x0, t, eps = x0[shard], t[shard], eps[shard]
        labels = None if labels is None else labels[shard]
    t, eps = t.to(x0.device), eps.to(x0.device)
    x_t = diffusion.q_sample(x0, t, eps)
    if x0.device.type == "cuda":
        x_t = x_t.contiguous(memory_format=torch.channels_last)
    with autocast():
        eps_pred = model(x_t, t) if labels is None else model(x_t, t, labels)
    return (eps - eps_pred.float()).square().mean()


class Say:
    """Status lines on stderr (through tqdm, so they do not break the bar); silent if disabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, message: str) -> None:
        if self.enabled:
            from tqdm.auto import tqdm

            tqdm.write(message, file=sys.stderr)


def _grad_scaler():
    """A CUDA GradScaler (``torch.amp.GradScaler`` from torch 2.3, ``torch.cuda.amp`` before)."""
    scaler = getattr(torch.amp, "GradScaler", None)
    return scaler("cuda") if scaler is not None else torch.cuda.amp.GradScaler()


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


class Run:
    """The state of one training run on one device, and its step/checkpoint loop."""

    def __init__(
        self,
        config: Config,
        device,
        precision,
        dataset: Dataset,
        steps_per_epoch,
        ckpt_path: Path,
        say: Say,
        world: World = SINGLE,
    ) -> None:
        self.config, self.device, self.precision, self.world = config, device, precision, world
        self.spe, self.ckpt_path, self.say = steps_per_epoch, ckpt_path, say
        cuda = device.type == "cuda"
        model = io.build_model(config, derive_seed(config.seed, "init")).to(device)
        self.model = model.to(memory_format=torch.channels_last) if cuda else model
        self.model.train()
        self.ema = EMA(self.model, config.ema_decay)
        self.opt = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.lr,
            weight_decay=config.weight_decay,
            fused=cuda or None,
        )
        self.schedule_lr(0)
        self.scaler = _grad_scaler() if precision == "fp16" else None
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.autocast = (
            (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
        )
        self.gens = {
            name: torch.Generator(device=device).manual_seed(derive_seed(config.seed, name))
            for name in ("data", "noise")
        }
        self.x0 = dataset.x0.to(device)
        self.labels = None if dataset.labels is None else dataset.labels.to(device)
        self.data_info = {"n": dataset.n, "sha256": dataset.fingerprint}
        self.diffusion = config.diffusion().to(device)
        forward: torch.nn.Module = self.model
        if world.size > 1:  # averages the gradients of the ranks' shards during backward
            from torch.nn.parallel import DistributedDataParallel

            forward = DistributedDataParallel(
                self.model, device_ids=[device.index] if cuda else None
            )
        self.forward = torch.compile(forward) if config.compile else forward
        self.shard = distributed.shard(world, config.batch_size) if world.size > 1 else None
        self.perm: torch.Tensor | None = None
        self.step = 0
        self.losses: list[float] = []  # L_simple of every step so far (float32 values)
        self.pending: list[torch.Tensor] = []
        self.segments: list[dict[str, Any]] = []
        self.segment: dict[str, Any] = {}
        self.last_ckpt_step: int | None = None

    def restore(self, saved: TrainState) -> None:
        """Continue from ``saved`` (same config and data, checked by the caller)."""
        io.load_state_dict_checked(self.model, saved.model, self.ckpt_path)
        io.load_state_dict_checked(self.ema.model, saved.ema, self.ckpt_path)
        try:
            self.opt.load_state_dict(saved.optimizer)
        except (ValueError, KeyError, RuntimeError) as e:
            raise ValueError(f"{self.ckpt_path}: the optimizer state does not fit: {e}") from e
        for group in self.opt.param_groups:  # the kernel choice is the device's, not the file's
            group["fused"], group["foreach"] = (True if self.device.type == "cuda" else None), None
        self.schedule_lr(saved.step)
        if self.scaler is not None and saved.scaler is not None:
            self.scaler.load_state_dict(saved.scaler)
        for name, gen in self.gens.items():
            if saved.rng_devices.get(name) == self.device.type:
                gen.set_state(saved.rng[name])
            else:
                warnings.warn(
                    f"the checkpoint's {name!r} generator lived on "
                    f"{saved.rng_devices.get(name)!r}, this run is on {self.device.type!r}: "
                    "it is re-seeded, so the run will not be bitwise identical to an "
                    "uninterrupted one",
                    stacklevel=3,
                )
                gen.manual_seed(derive_seed(self.config.seed, name, "resume", saved.step))
        self.perm = None if saved.perm is None else saved.perm.to(self.device)
        self.step = saved.step
        self.losses = saved.losses.float().tolist()
        self.segments = list(saved.info.get("segments", []))
        self.last_ckpt_step = saved.step

    def schedule_lr(self, step: int) -> None:
        """The learning rate from optimiser step ``step`` on: torch's ``LambdaLR`` with a linear
        warm-up over ``config.warmup_steps`` (:func:`ddpm_lib.train.lr.lr_warmup`), then
        ``config.lr``. Its state is the step alone, so a resumed run rebuilds it from the
        checkpoint's step (old checkpoints included)."""
        for group in self.opt.param_groups:
            group["initial_lr"] = self.config.lr
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lr_warmup(self.config.warmup_steps), last_epoch=step - 1
        )

    # ------------------------------------------------------------------------------ one step
    def train_step(self) -> None:
        config, s, B = self.config, self.step, self.config.batch_size
        i = s % self.spe
        if i == 0:  # a new epoch: a fresh permutation of the data set
            self.perm = torch.randperm(
                self.x0.shape[0], generator=self.gens["data"], device=self.device
            )
        assert self.perm is not None, "checkpoint without the permutation of a running epoch"
        idx = self.perm[i * B : (i + 1) * B]
        x0, labels = self.x0[idx], None
        if self.labels is not None:
            labels = self.labels[idx]
            if config.label_dropout > 0:  # classifier-free guidance (Ho & Salimans 2022)
                drop = torch.rand(B, generator=self.gens["data"], device=self.device)
                labels = labels.masked_fill(drop < config.label_dropout, config.num_classes)
        if config.dropout > 0:  # dropout draws from the global RNG: pin it to (seed, step[, rank])
            rank = (self.world.rank,) if self.world.size > 1 else ()
            torch.manual_seed(derive_seed(config.seed, "dropout", s, *rank))
        loss = algorithm1_loss(
            self.forward, x0, labels, self.diffusion, self.gens["noise"], self.autocast, self.shard
        )
        self.pending.append(loss.detach())
        if self.device.type == "cpu":
            self.flush()  # free on the CPU: a NaN stops the run before it reaches the weights
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.opt)
        else:
            loss.backward()
        if config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        self.sched.step()
        self.ema.update(self.model, s + 1)
        self.step = s + 1

    def flush(self) -> None:
        """Move pending losses to the CPU history; a NaN/inf raises :class:`NonFiniteLossError`."""
        if not self.pending:
            return
        values = distributed.mean(self.world, torch.stack(self.pending).float()).cpu()
        self.pending = []
        bad = (~torch.isfinite(values)).nonzero()
        if len(bad):
            j = int(bad[0])
            last = (
                f"the last good checkpoint {self.ckpt_path} (step {self.last_ckpt_step}) is kept"
                if self.last_ckpt_step is not None
                else "no checkpoint was written"
            )
            raise NonFiniteLossError(
                f"non-finite loss L_simple = {float(values[j])} at step {len(self.losses) + j + 1}: "
                f"training stopped; {last}. Lower config.lr (now {self.config.lr}) or set "
                f"config.grad_clip (now {self.config.grad_clip}) and start a new run"
            )
        self.losses.extend(values.tolist())

    # ------------------------------------------------------------------------- checkpoints
    def state(self) -> TrainState:
        self.flush()
        return TrainState(
            config=self.config,
            step=self.step,
            model=_cpu_state(self.model),
            ema=_cpu_state(self.ema.model),
            optimizer=self.opt.state_dict(),
            scaler=None if self.scaler is None else self.scaler.state_dict(),
            rng={name: gen.get_state() for name, gen in self.gens.items()},
            rng_devices={name: self.device.type for name in self.gens},
            perm=None if self.perm is None else self.perm.to("cpu"),
            losses=torch.tensor(self.losses, dtype=torch.float32),
            info={"data": self.data_info, "segments": [*self.segments, dict(self.segment)]},
        )

    def checkpoint(self) -> None:
        if self.world.main:
            save_checkpoint(self.ckpt_path, self.state())
        else:
            self.flush()  # the losses are averaged over the ranks: every rank takes part
        self.last_ckpt_step = self.step

    def _time_is_up(self, up: bool, steps_done: int, every: int) -> bool:
        """One process decides alone; several follow rank 0's clock, asked every ``every`` steps
        (a collective per step would stall a GPU), so that all of them stop at the same step."""
        if self.world.size == 1:
            return up
        return steps_done % every == 0 and distributed.agree(self.world, up, self.device)

    def run(
        self,
        step_limit: int,
        limit_reason: str,
        max_seconds: float | None,
        checkpoint_every: int,
        progress: bool,
        callback: Callback | None = None,
        callback_every: int = 50,
    ) -> str:
        """Train until ``step_limit`` or ``max_seconds``; checkpoint every ``checkpoint_every``
        steps and at the end; report to ``callback`` (rank 0 only) every ``callback_every`` steps
        and at the end, its time not counted as training time. Returns why it stopped."""
        from tqdm.auto import tqdm

        cuda = self.device.type == "cuda"
        flush_every = 25 if cuda else 1
        start_step, stopped_by = self.step, limit_reason
        self.segment = {
            "start_step": start_step,
            "end_step": start_step,
            "seconds": 0.0,
            "images_per_sec": 0.0,
            "device": str(self.device),
            "precision": self.precision,
            "stopped_by": None,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "world_size": self.world.size,
        }
        bar = tqdm(
            total=step_limit,
            initial=self.step,
            disable=not (progress and self.world.main),
            unit="step",
            desc="train",
            dynamic_ncols=True,
        )
        t0 = time.perf_counter()
        io_seconds = 0.0

        def report(final: bool) -> float:
            """Call the callback; return the seconds it took."""
            if callback is None or not self.world.main:
                return 0.0
            self.flush()
            c = time.perf_counter()
            seconds = c - t0 - io_seconds
            images = (self.step - start_step) * self.config.batch_size
            callback(TrainProgress(self.step, step_limit, torch.tensor(self.losses),
                                   seconds, images / max(seconds, 1e-9), self.ema.model,
                                   self.config.diffusion(), final))  # fmt: skip
            self.ema.model.eval()  # whatever the callback did, the EMA copy stays in eval mode
            return time.perf_counter() - c

        def timing(stop: str | None) -> None:
            if cuda:
                torch.cuda.synchronize(self.device)
            seconds = time.perf_counter() - t0
            images = (self.step - start_step) * self.config.batch_size
            self.segment.update(
                end_step=self.step,
                seconds=seconds,
                stopped_by=stop,
                images_per_sec=images / max(seconds - io_seconds, 1e-9),
            )

        fork = [self.device.index] if cuda else []
        benchmark = torch.backends.cudnn.benchmark
        try:
            torch.backends.cudnn.benchmark = cuda or benchmark
            with torch.random.fork_rng(devices=fork):
                while self.step < step_limit:
                    if max_seconds is not None and self._time_is_up(
                        time.perf_counter() - t0 >= max_seconds, self.step - start_step, flush_every
                    ):
                        stopped_by = "max_seconds"
                        break
                    self.train_step()
                    bar.update(1)
                    if self.step % flush_every == 0:
                        self.flush()
                        recent = sum(self.losses[-10:]) / len(self.losses[-10:])
                        rate = (
                            (self.step - start_step)
                            * self.config.batch_size
                            / (time.perf_counter() - t0 - io_seconds)
                        )
                        bar.set_postfix(
                            loss=f"{float(recent):.4f}", img_s=f"{rate:.0f}", refresh=False
                        )
                    if self.step % callback_every == 0 and self.step < step_limit:
                        io_seconds += report(final=False)
                    if self.step % checkpoint_every == 0 and self.step < step_limit:
                        c = time.perf_counter()
                        timing(None)
                        self.checkpoint()
                        io_seconds += time.perf_counter() - c
                io_seconds += report(final=True)
                timing(stopped_by)
                self.checkpoint()
        finally:
            torch.backends.cudnn.benchmark = benchmark
            bar.close()
        seg = self.segment
        self.say(
            f"stopped by {stopped_by} at step {self.step}: {seg['images_per_sec']:.0f} img/s "
            f"on {self.device} ({self.precision}), {seg['seconds']:.1f} s"
        )
        return stopped_by
