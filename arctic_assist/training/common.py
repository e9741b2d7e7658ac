"""Shared Lightning infrastructure for every trainer (PixelDINO, its baselines, COBRA).

Typical use in a command's ``main(argv)``::

    parser = argparse.ArgumentParser(prog="python -m arctic_assist.training mymethod")
    parser.add_argument("--data", required=True)
    add_trainer_args(parser, default_steps=2000)
    args = parser.parse_args(argv)
    setup_runtime(args)                          # seed, torch threads
    trainer = build_trainer(args, extra_callbacks=[])
    trainer.fit(module, train_dataloaders=loader, ckpt_path=resume_checkpoint(args))
    emit("done", output=str(out))                # with --progress json

``--progress json`` prints one JSON object per line on stdout, for the plugin to parse::

    {"event": "start", "total": 2000}
    {"event": "progress", "step": 10, "total": 2000, "loss": 0.41, "eta_s": 95.2, ...}
    {"event": "checkpoint", "step": 500, "path": ".../step=500.ckpt"}
    {"event": "done", "output": "model.onnx", ...}
    {"event": "error", "message": "..."}

Lightning's own console output goes to stderr in that mode (its progress bar is off).
Multi-GPU / multi-node: ``torchrun --nproc-per-node 4 -m arctic_assist.training pixeldino
... --devices 4 --strategy ddp`` (Lightning reads the torchrun environment).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any
from collections.abc import Iterable

import torch
import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

PROGRESS_MODES = ("bar", "json", "none")


# ----------------------------------------------------------------------------- CLI arguments


def add_trainer_args(
    parser: argparse.ArgumentParser,
    *,
    default_steps: int = 1000,
    default_checkpoint_every: int = 500,
) -> argparse.ArgumentParser:
    """Add the options every trainer shares (steps, devices, precision, checkpoints, ...)."""
    g = parser.add_argument_group("training loop (Lightning)")
    g.add_argument(
        "--steps",
        type=int,
        default=default_steps,
        help="number of training steps (batches) (default: %(default)s)",
    )
    g.add_argument(
        "--accelerator",
        default="auto",
        help="auto, cpu, gpu, cuda, mps (default: auto = GPU when present)",
    )
    g.add_argument(
        "--devices",
        default="auto",
        help="number of devices, a list like '0,1', or auto (default: auto)",
    )
    g.add_argument("--num-nodes", type=int, default=1, help="nodes for multi-node DDP")
    g.add_argument(
        "--strategy",
        default="auto",
        help="Lightning strategy: auto, ddp, ddp_find_unused_parameters_true, ...",
    )
    g.add_argument(
        "--precision",
        default="auto",
        help="auto (bf16-mixed on GPUs that support it, else 16-mixed; 32 on "
        "CPU), or any Lightning precision: 32, 16-mixed, bf16-mixed",
    )
    g.add_argument(
        "--checkpoint-every",
        type=int,
        default=default_checkpoint_every,
        help="save a checkpoint every N steps (0: only at the end)",
    )
    g.add_argument(
        "--resume",
        default=None,
        metavar="CKPT|last",
        help="resume from a checkpoint file, or 'last' (the newest in --log-dir)",
    )
    g.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        default=None,
        help="bar (terminal), json (one JSON object per line, for the plugin) "
        "or none (default: bar in a terminal, else none)",
    )
    g.add_argument(
        "--log-dir",
        default="runs",
        help="folder of CSV logs and checkpoints (default: %(default)s)",
    )
    g.add_argument("--run-name", default=None, help="sub-folder name under --log-dir")
    g.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    g.add_argument("--num-workers", type=int, default=0, help="data-loader worker processes")
    g.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    return parser


def setup_runtime(args: argparse.Namespace) -> None:
    """Seed everything and set the CPU thread count; quiet Lightning in JSON mode."""
    if getattr(args, "threads", None):
        torch.set_num_threads(int(args.threads))
    L.seed_everything(int(getattr(args, "seed", 0)), workers=True, verbose=False)
    if progress_mode(args) != "bar":
        for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
            logging.getLogger(name).setLevel(logging.WARNING)


def progress_mode(args: argparse.Namespace) -> str:
    mode = getattr(args, "progress", None)
    if mode is None:
        mode = "bar" if sys.stderr.isatty() else "none"
    return mode


def is_gpu_accelerator(accelerator: str) -> bool:
    acc = (accelerator or "auto").lower()
    if acc in ("gpu", "cuda"):
        return True
    return acc == "auto" and torch.cuda.is_available()


def default_precision(accelerator: str = "auto") -> str:
    """bf16-mixed on GPUs with bf16, 16-mixed on older GPUs, 32-true on the CPU."""
    if is_gpu_accelerator(accelerator):
        try:
            if torch.cuda.is_bf16_supported():
                return "bf16-mixed"
        except Exception:  # no CUDA runtime
            pass
        return "16-mixed"
    return "32-true"


def _devices(value: Any) -> Any:
    if isinstance(value, int) or value in (None, "auto"):
        return value or "auto"
    text = str(value)
    if "," in text:
        return [int(v) for v in text.split(",") if v.strip()]
    try:
        return int(text)
    except ValueError:
        return text


def run_dir(args: argparse.Namespace) -> Path:
    """``--log-dir/--run-name`` (the run name defaults to the command name or 'run')."""
    name = getattr(args, "run_name", None) or getattr(args, "method", None) or "run"
    return Path(getattr(args, "log_dir", "runs")) / name


def resume_checkpoint(args: argparse.Namespace) -> str | None:
    """The checkpoint to resume from: ``--resume PATH``, or the newest one for 'last'.

    The file is first read weights-only (:func:`.checkpoint.load_checkpoint_file`), so a
    crafted checkpoint is refused before Lightning unpickles it."""
    path = _resume_path(args)
    if path is not None:
        from .checkpoint import load_checkpoint_file

        load_checkpoint_file(path)
    return path


def _resume_path(args: argparse.Namespace) -> str | None:
    resume = getattr(args, "resume", None)
    if not resume:
        return None
    if resume != "last":
        if not Path(resume).is_file():
            raise FileNotFoundError(f"--resume: checkpoint '{resume}' does not exist")
        return str(resume)
    ckpts = sorted((run_dir(args) / "checkpoints").glob("*.ckpt"), key=os.path.getmtime)
    if not ckpts:
        raise FileNotFoundError(
            f"--resume last: no checkpoint under {run_dir(args) / 'checkpoints'}"
        )
    last = run_dir(args) / "checkpoints" / "last.ckpt"
    return str(last if last.is_file() else ckpts[-1])


# ----------------------------------------------------------------------------- progress


def emit(event: str, **fields: Any) -> None:
    """Print one JSON progress object on stdout (flushed), e.g. ``emit('done', output=p)``."""
    doc = {"event": event, **fields}
    sys.stdout.write(json.dumps(doc, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu().tolist() if value.numel() > 1 else float(value)
    if isinstance(value, Path):
        return str(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _steps_per_batch(pl_module: L.LightningModule) -> int:
    return max(1, int(getattr(pl_module, "optimizer_steps_per_batch", 1)))


def batch_step(trainer: L.Trainer, pl_module: L.LightningModule) -> int:
    """Training batches done (Lightning's global_step counts every optimizer.step())."""
    return trainer.global_step // _steps_per_batch(pl_module)


class JsonProgress(Callback):
    """One JSON line per ``every`` steps (and at most one per ``min_interval_s``) on stdout.

    Each line carries ``step``, ``total``, ``loss`` (the value returned by / logged in the
    training step), ``eta_s``, ``elapsed_s`` and the other scalars logged with
    ``prog_bar=True``.
    """

    def __init__(self, every: int = 1, min_interval_s: float = 1.0) -> None:
        self.every = max(1, int(every))
        self.min_interval_s = float(min_interval_s)
        self._t0 = 0.0
        self._start_step = 0
        self._last = 0.0
        self._last_ckpt_step = -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = self._last = time.monotonic()
        self._start_step = batch_step(trainer, pl_module)
        if trainer.is_global_zero:
            emit("start", step=self._start_step, total=self._total(trainer, pl_module))

    @staticmethod
    def _total(trainer: L.Trainer, pl_module: L.LightningModule) -> int:
        return int(trainer.max_steps // _steps_per_batch(pl_module))

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if not trainer.is_global_zero:
            return
        step = batch_step(trainer, pl_module)
        total = self._total(trainer, pl_module)
        now = time.monotonic()
        if step < total and (step % self.every or now - self._last < self.min_interval_s):
            return
        self._last = now
        loss = None
        if isinstance(outputs, dict) and "loss" in outputs:
            loss = outputs["loss"]
        elif isinstance(outputs, torch.Tensor):
            loss = outputs
        metrics = {
            k: float(v)
            for k, v in trainer.callback_metrics.items()
            if isinstance(v, torch.Tensor) and v.numel() == 1
        }
        if loss is None:
            loss = metrics.get("loss", metrics.get("train/loss"))
        done = step - self._start_step
        elapsed = now - self._t0
        eta = elapsed / done * (total - step) if done > 0 else None
        emit(
            "progress",
            step=step,
            total=total,
            loss=None if loss is None else float(loss),
            eta_s=None if eta is None else round(eta, 1),
            elapsed_s=round(elapsed, 1),
            metrics=metrics,
        )

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        step = batch_step(trainer, pl_module)
        if trainer.is_global_zero and step != self._last_ckpt_step:  # 'last' + 'step=N' once
            self._last_ckpt_step = step
            emit("checkpoint", step=step)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if trainer.is_global_zero:
            emit("error", message=f"{type(exception).__name__}: {exception}")


class StepCheckpoint(ModelCheckpoint):
    """ModelCheckpoint counting training *batches* (for modules that step >1 optimizer)."""

    def __init__(self, dirpath: str | Path, every: int, steps_per_batch: int = 1) -> None:
        super().__init__(
            dirpath=str(dirpath),
            filename="step={step}",
            every_n_train_steps=max(1, every * steps_per_batch) if every else None,
            save_last=True,
            save_top_k=-1,
            auto_insert_metric_name=False,
        )


# ----------------------------------------------------------------------------- trainer


def build_trainer(
    args: argparse.Namespace,
    extra_callbacks: Iterable[Callback] = (),
    *,
    steps_per_batch: int = 1,
    **trainer_kwargs: Any,
) -> L.Trainer:
    """A ``lightning.Trainer`` from the shared options.

    ``max_steps = --steps * steps_per_batch`` (pass 2 for a module that steps two
    optimizers per batch with manual optimisation, and set its attribute
    ``optimizer_steps_per_batch = 2`` so progress and checkpoints count batches);
    a CSV logger under ``--log-dir/<run>``; a checkpoint every ``--checkpoint-every``
    steps plus ``last.ckpt``; progress bar or JSON lines as ``--progress`` says.
    """
    mode = progress_mode(args)
    out = run_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    precision = args.precision
    if precision in (None, "auto"):
        precision = default_precision(args.accelerator)
    callbacks: list[Callback] = [
        StepCheckpoint(out / "checkpoints", int(args.checkpoint_every or 0), steps_per_batch)
    ]
    if mode == "json":
        total = int(args.steps)
        callbacks.append(JsonProgress(every=max(1, total // 200)))
    callbacks.extend(extra_callbacks)
    kwargs: dict[str, Any] = dict(
        accelerator=args.accelerator,
        devices=_devices(args.devices),
        num_nodes=int(getattr(args, "num_nodes", 1) or 1),
        strategy=getattr(args, "strategy", "auto") or "auto",
        precision=precision,
        max_steps=int(args.steps) * int(steps_per_batch),
        max_epochs=-1,
        logger=CSVLogger(str(out), name="logs", version=""),
        callbacks=callbacks,
        enable_progress_bar=(mode == "bar"),
        enable_model_summary=(mode == "bar"),
        log_every_n_steps=max(1, min(50, int(args.steps) // 20 or 1)),
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=str(out),
        deterministic=False,
    )
    kwargs.update(trainer_kwargs)
    return L.Trainer(**kwargs)


def cosine_warmup_lambda(
    total_steps: int, warmup_steps: int, lr: float, lr_start: float = 1e-7, lr_end: float = 0.0
):
    """LambdaLR factor: linear ``lr_start -> lr`` over warm-up, then cosine to ``lr_end``."""
    total_steps = max(1, int(total_steps))
    warmup_steps = max(0, min(int(warmup_steps), total_steps - 1))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (lr_start + (lr - lr_start) * step / warmup_steps) / lr
        t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return (lr_end + (lr - lr_end) * 0.5 * (1.0 + math.cos(math.pi * t))) / lr

    return factor


def run_cli(fn, *args: Any, json_mode: bool = False, **kwargs: Any) -> int:
    """Call ``fn``; in JSON mode turn an exception into an ``error`` line and exit code 1."""
    try:
        return int(fn(*args, **kwargs) or 0)
    except Exception as exc:  # reported to the caller
        if json_mode:
            emit("error", message=f"{type(exc).__name__}: {exc}")
            return 1
        raise
