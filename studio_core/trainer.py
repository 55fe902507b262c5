"""A small, model-agnostic training loop (in the spirit of minGPT's trainer).

It knows tensors, a model, a loss, optimisers and a validation function -- nothing about Wide &
Deep.  Batches come from a ``Batches`` source (tensors permuted once per epoch, or encoded
blocks streamed from disk; see ``batches.py``), never assembled row by row.  It publishes frozen
``Progress`` records to listeners, so a CLI progress bar and the studio's background job are
both thin adapters.  It warms up the learning rate, clips gradients, reduces the learning rate
on plateaus, stops early restoring the best weights, ends within an optional wall-clock budget
(the epoch under way is cut short, validated and kept if it is the best), uses mixed precision on
CUDA, stops within a batch when ``stop_event`` is set, and raises ``TrainingDiverged`` on a
NaN/inf loss.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import torch
from torch import nn

from .batches import TensorBatches
from .errors import Cancelled, TrainingDiverged


class Batches(Protocol):
    """What ``Trainer.fit`` reads rows from (``batches.TensorBatches`` / ``BlockBatches``)."""

    n_rows: int

    def steps(self) -> int: ...
    def epoch(self, epoch: int) -> Iterator[Sequence[torch.Tensor]]: ...
    def in_order(self, batch_size: int) -> Iterator[Sequence[torch.Tensor]]: ...

MAXIMISE = {"auc", "accuracy", "r2"}


@dataclass(frozen=True)
class Progress:
    """One immutable progress record: kind is "step", "epoch" or "end"."""

    kind: str
    epoch: int
    epochs: int
    step: int
    total_steps: int
    train_loss: float | None
    val: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    lrs: tuple[float, ...] = ()
    rows_per_s: float = 0.0
    eta_s: float = 0.0
    elapsed_s: float = 0.0
    message: str = ""


@dataclass
class TrainerConfig:
    epochs: int = 5
    batch_size: int = 512
    warmup_steps: int = 0
    grad_clip: float = 0.0
    early_stopping_patience: int = 0
    plateau_patience: int = 1
    plateau_factor: float = 0.5
    monitor: str = "loss"
    device: str = "cpu"
    mixed_precision: bool = True
    seed: int = 0
    step_records_per_epoch: int = 20
    eval_batch_size: int = 65536
    max_seconds: float = 0.0  # wall-clock budget of the training loop (validation included); 0 = none


@dataclass
class TrainResult:
    history: list[dict[str, Any]]
    best_epoch: int
    best_metrics: dict[str, float]
    train_seconds: float
    rows_per_s: float
    stopped_early: bool
    stopped_by_budget: bool = False


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        optimizers: Sequence[torch.optim.Optimizer],
        config: TrainerConfig,
        evaluate: Callable[[torch.Tensor, torch.Tensor], dict[str, float]],
        clip_parameters: Sequence[nn.Parameter] = (),
        after_step: Callable[[], None] | None = None,
        mean_over_processes: Callable[[float], float] | None = None,
    ):
        """``mean_over_processes`` averages a figure over the processes training together (the
        identity in one process): the loss shown is then the global batch's, and a NaN on any
        process stops every process at the same step instead of leaving the others waiting."""
        self.model, self.loss_fn, self.optimizers, self.config = model, loss_fn, list(optimizers), config
        self.evaluate, self.clip_parameters, self.after_step = evaluate, list(clip_parameters), after_step
        self.mean_over_processes = mean_over_processes or (lambda value: value)
        self.listeners: list[Callable[[Progress], None]] = []
        self.stop_event = threading.Event()
        self.device = torch.device(config.device)
        for opt in self.optimizers:
            for g in opt.param_groups:
                g.setdefault("initial_lr", g["lr"])
        mode = "max" if config.monitor in MAXIMISE else "min"
        self.plateaus = [torch.optim.lr_scheduler.ReduceLROnPlateau(o, mode, config.plateau_factor, config.plateau_patience) for o in self.optimizers]
        self.amp_dtype = None
        if self.device.type == "cuda" and config.mixed_precision:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

    def publish(self, record: Progress) -> None:
        for listener in list(self.listeners):
            listener(record)

    def outputs(self, batches: Iterable[Sequence[torch.Tensor]], n_inputs: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Outputs for every batch (its first ``n_inputs`` tensors feed the model) and the
        batches' targets (the tensor after the inputs, when there is one), on the CPU."""
        self.model.eval()
        outs, targets = [], []
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            for batch in batches:
                if self.stop_event.is_set():
                    raise Cancelled()
                outs.append(self.model(*[t.to(self.device, non_blocking=True) for t in batch[:n_inputs]]).float().cpu())
                targets.extend(batch[n_inputs : n_inputs + 1])
        if not outs:  # no rows here (a distributed rank can hold none): empty, not None, so gathering still works
            return torch.zeros(0), torch.zeros(0)
        return torch.cat(outs), (torch.cat(targets) if targets else None)

    def _set_warmup_lr(self, step: int, warmup: int) -> None:
        if step <= warmup:
            scale = min(1.0, (step + 1) / max(1, warmup))
            for opt in self.optimizers:
                for g in opt.param_groups:
                    g["lr"] = g["initial_lr"] * scale

    def fit(self, train: Batches | Sequence[torch.Tensor], val: Batches | Sequence[torch.Tensor]) -> TrainResult:
        """Train on batches of (*inputs, target); validate on ``val`` after every epoch.  Plain
        tensor sequences are served by ``TensorBatches`` (a seeded permutation per epoch)."""
        cfg = self.config
        if not hasattr(train, "epoch"):
            train = TensorBatches(train, cfg.batch_size, cfg.seed)
        if not hasattr(val, "in_order"):
            val = TensorBatches(val, cfg.eval_batch_size)
        n = train.n_rows
        steps_per_epoch = train.steps()
        total_steps = steps_per_epoch * cfg.epochs
        record_every = max(1, steps_per_epoch // max(1, cfg.step_records_per_epoch))
        warmup = min(cfg.warmup_steps, total_steps // 5)  # never spend most of a short run warming up
        maximise = cfg.monitor in MAXIMISE
        best_value, best_epoch, best_state, best_metrics = None, 0, None, {}
        history: list[dict[str, Any]] = []
        step, rows_done, train_time, bad_epochs, stopped_early, out_of_time = 0, 0, 0.0, 0, False, False
        started = time.perf_counter()
        smooth = None
        for epoch in range(1, cfg.epochs + 1):
            self.model.train()
            t0 = time.perf_counter()
            epoch_loss, epoch_rows = 0.0, 0
            for cpu_batch in train.epoch(epoch):
                if self.stop_event.is_set():
                    raise Cancelled()
                if cfg.max_seconds > 0 and epoch_rows and self._over_budget(started):
                    out_of_time = True  # this partial epoch is still validated (and kept if it is the best)
                    break
                *inputs, target = [t.to(self.device, non_blocking=True) for t in cpu_batch]
                self._set_warmup_lr(step, warmup)
                for opt in self.optimizers:
                    opt.zero_grad(set_to_none=True)
                with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
                    output = self.model(*inputs)
                loss = self.loss_fn(output.float(), target)
                value = self.mean_over_processes(float(loss.detach()))
                if not math.isfinite(value):
                    raise TrainingDiverged(
                        f"the training loss became {value} at epoch {epoch}, step {step + 1}; "
                        "lower the learning rates, enable gradient clipping, or check numeric columns for extreme values"
                    )
                self.scaler.scale(loss).backward()
                if cfg.grad_clip > 0 and self.clip_parameters:
                    for opt in self.optimizers:
                        self.scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(self.clip_parameters, cfg.grad_clip)
                for opt in self.optimizers:
                    self.scaler.step(opt)
                self.scaler.update()
                if self.after_step is not None:
                    self.after_step()
                rows = len(target)
                step += 1
                epoch_loss += value * rows
                epoch_rows += rows
                smooth = value if smooth is None else 0.9 * smooth + 0.1 * value
                if step % record_every == 0:
                    elapsed = train_time + time.perf_counter() - t0
                    rate = (rows_done + epoch_rows) / max(elapsed, 1e-9)
                    self.publish(Progress("step", epoch, cfg.epochs, step, total_steps, smooth, lrs=self._lrs(), rows_per_s=rate,
                                          eta_s=self._eta((total_steps - step) * cfg.batch_size / max(rate, 1e-9), started),
                                          elapsed_s=time.perf_counter() - started))
            train_time += time.perf_counter() - t0
            rows_done += epoch_rows
            outputs, val_target = self.outputs(val.in_order(cfg.eval_batch_size), n_inputs=len(inputs))
            if self.mean_over_processes(float(bool(torch.isfinite(outputs).all()))) < 1.0:
                raise TrainingDiverged(
                    f"the model's outputs on validation rows became infinite or NaN at epoch {epoch}; "
                    "lower the learning rates, enable gradient clipping, or check numeric columns for extreme values"
                )
            metrics = self.evaluate(outputs, val_target)
            value = metrics[cfg.monitor]
            improved = best_value is None or (value > best_value if maximise else value < best_value)
            if improved:
                best_value, best_epoch, best_metrics = value, epoch, dict(metrics)
                best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                bad_epochs = 0
            else:
                bad_epochs += 1
            if step > warmup:
                for plateau in self.plateaus:
                    plateau.step(value)
            rate = rows_done / max(train_time, 1e-9)
            entry = {"epoch": epoch, "step": step, "train_loss": epoch_loss / max(epoch_rows, 1), **{f"val_{k}": v for k, v in metrics.items()},
                     "lrs": list(self._lrs()), "rows_per_s": rate, "elapsed_s": time.perf_counter() - started}
            history.append(entry)
            self.publish(Progress("epoch", epoch, cfg.epochs, step, total_steps, entry["train_loss"], MappingProxyType(dict(metrics)),
                                  self._lrs(), rate, self._eta((cfg.epochs - epoch) * n / max(rate, 1e-9), started), entry["elapsed_s"]))
            if cfg.early_stopping_patience and bad_epochs >= cfg.early_stopping_patience and epoch < cfg.epochs:
                stopped_early = True
                break
            if epoch < cfg.epochs and (out_of_time or (cfg.max_seconds > 0 and self._over_budget(started))):
                out_of_time = True
                break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        rate = rows_done / max(train_time, 1e-9)
        self.publish(Progress("end", best_epoch, cfg.epochs, step, total_steps, None, MappingProxyType(dict(best_metrics)), self._lrs(), rate, 0.0,
                              time.perf_counter() - started, "stopped early" if stopped_early else "out of time" if out_of_time else "finished"))
        return TrainResult(history, best_epoch, best_metrics, train_time, rate, stopped_early, out_of_time)

    def _eta(self, seconds: float, started: float) -> float:
        """The time left at this pace, never past the wall-clock budget."""
        if self.config.max_seconds > 0:
            seconds = min(seconds, max(0.0, self.config.max_seconds - (time.perf_counter() - started)))
        return seconds

    def _over_budget(self, started: float) -> bool:
        """Whether the wall-clock budget is spent -- on any process, so all of them stop at the same step."""
        return self.mean_over_processes(float(time.perf_counter() - started >= self.config.max_seconds)) > 0

    def _lrs(self) -> tuple[float, ...]:
        return tuple(float(g["lr"]) for opt in self.optimizers for g in opt.param_groups)
