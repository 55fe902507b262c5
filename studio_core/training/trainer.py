"""A small, model-agnostic training loop (in the spirit of minGPT's trainer).

It knows tensors, a model, a loss, optimisers and a validation function -- nothing about Wide &
Deep.  Batches come from a ``Batches`` source (tensors permuted once per epoch, or encoded
blocks streamed from disk; see ``batches.py``), never assembled row by row.  It publishes frozen
``Progress`` records to listeners, so a CLI progress bar and the studio's background job are
both thin adapters.  Its policies are callbacks (``callbacks.py``): learning-rate warm-up,
gradient clipping, the NaN/inf guard (``TrainingDiverged``), keeping the best epoch's weights
with early stopping, the learning-rate plateau and the wall-clock budget.  The loop itself
moves batches, runs the model, steps the optimisers, validates each epoch, uses mixed precision
on CUDA and stops within a batch when ``stop_event`` is set.

On a GPU the host never waits for the device inside an epoch except every ``sync_every``
steps: the batch losses are summed on the device and read once per window, and that window's
mean is what the loss callbacks (the NaN/inf guard among them) and the progress records see.
A NaN in any batch makes the window's sum NaN, so the guard still stops training, at most
``sync_every`` steps later.  The cancel check reads a host-side event every step.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

import torch
from torch import nn

from studio_core.common.errors import Cancelled
from studio_core.training.batches import TensorBatches
from studio_core.training.callbacks import Callback, Fit, TimeBudget, default_callbacks
from studio_core.training.progress import Progress


class Batches(Protocol):
    """What ``Trainer.fit`` reads rows from (``batches.TensorBatches`` / ``BlockBatches``)."""

    n_rows: int

    def steps(self) -> int: ...
    def epoch(self, epoch: int) -> Iterator[Sequence[torch.Tensor]]: ...
    def in_order(self, batch_size: int) -> Iterator[Sequence[torch.Tensor]]: ...


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
    sync_every: int = 0  # read the loss from the device every N steps; 0 = auto (1 on the CPU, 50 elsewhere)


@dataclass
class TrainResult:
    history: list[dict[str, Any]]
    best_epoch: int
    best_metrics: dict[str, float]
    train_seconds: float
    rows_per_s: float
    stopped_early: bool
    stopped_by_budget: bool = False
    device_peak_gib: float | None = None  # the most device memory allocated while training (GPU only)


class LossWindow:
    """The training losses of the steps since the host last read one: summed on the device
    (weighted by rows), so adding a batch never waits for the device; ``take`` reads the
    window's mean (one wait) and starts a new window."""

    def __init__(self, device: torch.device):
        self.device = device
        self.sum, self.rows, self.steps = torch.zeros((), device=device), 0, 0

    def add(self, loss: torch.Tensor, rows: int) -> None:
        self.sum += loss.detach() * rows
        self.rows += rows
        self.steps += 1

    def take(self) -> tuple[float, int, int]:
        """(mean loss, rows, steps) of the window, which is then empty."""
        got = (float(self.sum) / max(self.rows, 1), self.rows, self.steps)
        self.sum, self.rows, self.steps = torch.zeros((), device=self.device), 0, 0
        return got


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
        callbacks: Sequence[Callback] | None = None,
    ):
        """``mean_over_processes`` averages a figure over the processes training together (the
        identity in one process): the loss shown is then the global batch's, and a NaN on any
        process stops every process at the same step instead of leaving the others waiting.
        ``callbacks``: the training policies (see ``callbacks.py``); by default the ones
        ``config`` asks for, clipping ``clip_parameters`` and running ``after_step``."""
        self.model, self.loss_fn, self.optimizers, self.config = model, loss_fn, list(optimizers), config
        self.evaluate = evaluate
        self.callbacks = list(callbacks) if callbacks is not None else default_callbacks(config, clip_parameters, after_step)
        self.mean_over_processes = mean_over_processes or (lambda value: value)
        self.listeners: list[Callable[[Progress], None]] = []
        self.stop_event = threading.Event()
        self.device = torch.device(config.device)
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
                outs.append(self.model(*[t.to(self.device, non_blocking=True) for t in batch[:n_inputs]]).float())
                targets.extend(batch[n_inputs : n_inputs + 1])
        if not outs:  # no rows here (a distributed rank can hold none): empty, not None, so gathering still works
            return torch.zeros(0), torch.zeros(0)
        # gathered where they were computed, then copied to the host once
        return torch.cat(outs).cpu(), (torch.cat([t.to(self.device) for t in targets]).cpu() if targets else None)

    def fit(self, train: Batches | Sequence[torch.Tensor], val: Batches | Sequence[torch.Tensor]) -> TrainResult:
        """Train on batches of (*inputs, target); validate on ``val`` after every epoch.  Plain
        tensor sequences are served by ``TensorBatches`` (a seeded permutation per epoch).  The
        policies (warm-up, clipping, the NaN guard, best epoch and early stopping, plateau, time
        budget) are ``self.callbacks``; this loop only calls their hooks."""
        cfg = self.config
        if not hasattr(train, "epoch"):
            train = TensorBatches(train, cfg.batch_size, cfg.seed)
        if not hasattr(val, "in_order"):
            val = TensorBatches(val, cfg.eval_batch_size)
        n, steps_per_epoch = train.n_rows, train.steps()
        fit = Fit(self, cfg.epochs, steps_per_epoch * cfg.epochs)
        sync_every = cfg.sync_every or (1 if self.device.type == "cpu" else 50)
        record_every = max(1, steps_per_epoch // max(1, cfg.step_records_per_epoch))
        history: list[dict[str, Any]] = []
        rows_done, train_time, smooth, n_inputs = 0, 0.0, None, 0
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._hook("fit_start", fit)
        for epoch in range(1, cfg.epochs + 1):
            fit.epoch, fit.epoch_steps = epoch, 0
            self.model.train()
            t0 = time.perf_counter()
            epoch_loss, epoch_rows = 0.0, 0
            window = LossWindow(self.device)
            for cpu_batch in train.epoch(epoch):
                if self.stop_event.is_set():
                    raise Cancelled()
                self._hook("batch_start", fit)
                if fit.cut_epoch:
                    break
                *inputs, target = [t.to(self.device, non_blocking=True) for t in cpu_batch]
                n_inputs = len(inputs)
                for opt in self.optimizers:
                    opt.zero_grad(set_to_none=True)
                with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
                    output = self.model(*inputs)
                loss = self.loss_fn(output.float(), target)
                window.add(loss, len(target))
                self.scaler.scale(loss).backward()
                self._hook("after_backward", fit)
                for opt in self.optimizers:
                    self.scaler.step(opt)
                self.scaler.update()
                fit.step += 1
                fit.epoch_steps += 1
                self._hook("after_step", fit)
                if fit.step % sync_every and fit.epoch_steps < steps_per_epoch:
                    continue
                value, rows = self._read_loss(fit, window)  # one wait for the device per window
                epoch_loss, epoch_rows = epoch_loss + value * rows, epoch_rows + rows
                smooth = value if smooth is None else 0.9 * smooth + 0.1 * value
                if fit.step % record_every < sync_every:  # the first read at or after each record point
                    rate = (rows_done + epoch_rows) / max(train_time + time.perf_counter() - t0, 1e-9)
                    eta = self._eta(fit, (fit.total_steps - fit.step) * cfg.batch_size / max(rate, 1e-9))
                    self.publish(Progress("step", epoch, cfg.epochs, fit.step, fit.total_steps, smooth, lrs=self._lrs(), rows_per_s=rate,
                                          eta_s=eta, elapsed_s=fit.elapsed(), device_memory_gib=self._device_memory()))
            if window.steps:  # an epoch cut short (time budget) leaves a window unread
                value, rows = self._read_loss(fit, window)
                epoch_loss, epoch_rows = epoch_loss + value * rows, epoch_rows + rows
            self._synchronize()  # the epoch's device work is done before its time is taken
            train_time += time.perf_counter() - t0
            rows_done += epoch_rows
            outputs, val_target = self.outputs(val.in_order(cfg.eval_batch_size), n_inputs=n_inputs)
            self._hook("outputs", fit, outputs)
            metrics = self.evaluate(outputs, val_target)
            self._hook("epoch_end", fit, metrics)
            rate = rows_done / max(train_time, 1e-9)
            entry = {"epoch": epoch, "step": fit.step, "train_loss": epoch_loss / max(epoch_rows, 1), **{f"val_{k}": v for k, v in metrics.items()},
                     "lrs": list(self._lrs()), "rows_per_s": rate, "elapsed_s": fit.elapsed()}
            if self.device.type == "cuda":
                entry["device_memory_gib"] = self._device_memory()
            history.append(entry)
            self.publish(Progress("epoch", epoch, cfg.epochs, fit.step, fit.total_steps, entry["train_loss"], MappingProxyType(dict(metrics)),
                                  self._lrs(), rate, self._eta(fit, (cfg.epochs - epoch) * n / max(rate, 1e-9)), entry["elapsed_s"],
                                  device_memory_gib=self._device_memory()))
            if fit.stop:
                break
        if fit.best_state is not None:
            self.model.load_state_dict(fit.best_state)
        rate = rows_done / max(train_time, 1e-9)
        self.publish(Progress("end", fit.best_epoch, cfg.epochs, fit.step, fit.total_steps, None, MappingProxyType(dict(fit.best_metrics)),
                              self._lrs(), rate, 0.0, fit.elapsed(), fit.stop or "finished", device_memory_gib=self._device_memory()))
        return TrainResult(history, fit.best_epoch, fit.best_metrics, train_time, rate, fit.stop == "stopped early", fit.stop == "out of time",
                           self._device_memory())

    def _read_loss(self, fit: Fit, window: LossWindow) -> tuple[float, int]:
        """The window's mean training loss averaged over the processes, handed to the ``loss``
        callbacks, and its rows."""
        value, rows, steps = window.take()
        fit.window_first = fit.step - steps + 1
        value = self.mean_over_processes(value)
        self._hook("loss", fit, value)
        return value, rows

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _device_memory(self) -> float | None:
        """The most GPU memory allocated since training began, in GiB (None off CUDA)."""
        return round(torch.cuda.max_memory_allocated(self.device) / 2**30, 3) if self.device.type == "cuda" else None

    def _hook(self, name: str, fit: Fit, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, name)(fit, *args)

    def _eta(self, fit: Fit, seconds: float) -> float:
        """The time left at this pace, never past a time budget."""
        for callback in self.callbacks:
            if isinstance(callback, TimeBudget):
                seconds = min(seconds, callback.time_left(fit))
        return seconds

    def _lrs(self) -> tuple[float, ...]:
        return tuple(float(g["lr"]) for opt in self.optimizers for g in opt.param_groups)
