"""The training policies ``Trainer.fit`` runs as callbacks: warm-up, gradient clipping, a step
after each optimiser step (the wide part's L1 proximal shrink), the NaN/inf guard, keeping the
best epoch with early stopping, the learning-rate plateau, and the wall-clock budget.

Each is a small object with its own state and unit tests; the loop only calls the hooks in
order (``Callback``'s methods, all optional) and reads ``Fit.stop``.  ``default_callbacks``
builds the set a ``TrainerConfig`` asks for, in the order the loop has always applied them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from studio_core.common.errors import TrainingDiverged
from studio_core.common.metrics import MAXIMISE

if TYPE_CHECKING:  # annotations only: the trainer imports this module, not the other way round
    from studio_core.training.trainer import Trainer, TrainerConfig


@dataclass
class Fit:
    """The mutable state of one ``Trainer.fit`` that callbacks read and write."""

    trainer: Trainer
    epochs: int
    total_steps: int
    warmup: int = 0
    epoch: int = 0
    step: int = 0  # optimiser steps taken so far
    epoch_steps: int = 0  # of them in the epoch under way
    window_first: int = 1  # the first step whose loss is in the figure the ``loss`` hook is reading
    started: float = field(default_factory=time.perf_counter)
    stop: str = ""  # why training ends after this epoch: "stopped early", "out of time"
    cut_epoch: bool = False  # end the epoch under way now (it is still validated)
    best_value: float | None = None
    best_epoch: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_state: dict[str, torch.Tensor] | None = None

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return self.trainer.optimizers

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


class Callback:
    """One training policy.  Hooks, in the loop's order: ``fit_start``; per batch
    ``batch_start`` (may set ``fit.cut_epoch``), ``after_backward`` (gradients ready, before the
    optimisers step), ``after_step``, then every ``sync_every`` steps ``loss`` (the mean loss of
    steps ``fit.window_first`` to ``fit.step``, averaged over the processes);
    per epoch ``outputs`` (the validation outputs), ``epoch_end`` (the validation metrics; may
    set ``fit.stop``)."""

    def fit_start(self, fit: Fit) -> None: ...
    def batch_start(self, fit: Fit) -> None: ...
    def loss(self, fit: Fit, value: float) -> None: ...
    def after_backward(self, fit: Fit) -> None: ...
    def after_step(self, fit: Fit) -> None: ...
    def outputs(self, fit: Fit, outputs: torch.Tensor) -> None: ...
    def epoch_end(self, fit: Fit, metrics: dict[str, float]) -> None: ...


class WarmUp(Callback):
    """A linear learning-rate ramp over the first ``steps`` steps (at most a fifth of the run, so
    a short run is never mostly warm-up), from each group's ``initial_lr``."""

    def __init__(self, steps: int):
        self.steps = steps

    def fit_start(self, fit: Fit) -> None:
        fit.warmup = min(self.steps, fit.total_steps // 5)
        for opt in fit.optimizers:
            for g in opt.param_groups:
                g.setdefault("initial_lr", g["lr"])

    def batch_start(self, fit: Fit) -> None:
        if fit.step <= fit.warmup:
            scale = min(1.0, (fit.step + 1) / max(1, fit.warmup))
            for opt in fit.optimizers:
                for g in opt.param_groups:
                    g["lr"] = g["initial_lr"] * scale


class GradClip(Callback):
    """Clip the gradient norm of ``parameters`` to ``max_norm`` (unscaled first under AMP)."""

    def __init__(self, max_norm: float, parameters: Sequence[nn.Parameter]):
        self.max_norm, self.parameters = max_norm, list(parameters)

    def after_backward(self, fit: Fit) -> None:
        if self.max_norm > 0 and self.parameters:
            for opt in fit.optimizers:
                fit.trainer.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(self.parameters, self.max_norm)


class AfterStep(Callback):
    """Run ``fn`` after every optimiser step (e.g. ``pipeline.build_optimizers``' L1 shrink)."""

    def __init__(self, fn: Callable[[], None]):
        self.fn = fn

    def after_step(self, fit: Fit) -> None:
        self.fn()


class L1Proximal(Callback):
    """The proximal step of an L1 penalty (soft threshold, as in FTRL-proximal): after each step,
    every weight of ``weight`` moves ``lr * l1`` towards zero and stops there."""

    def __init__(self, weight: nn.Parameter, optimizer: torch.optim.Optimizer, l1: float):
        self.weight, self.optimizer, self.l1 = weight, optimizer, l1

    def after_step(self, fit: Fit | None = None) -> None:
        with torch.no_grad():
            shrink = self.optimizer.param_groups[0]["lr"] * self.l1
            self.weight.copy_(torch.sign(self.weight) * torch.clamp(self.weight.abs() - shrink, min=0.0))


class NonFiniteGuard(Callback):
    """Stop with ``TrainingDiverged`` on a NaN/inf training loss or validation output -- on every
    process at the same step (the loss is already averaged; outputs are checked by vote)."""

    ADVICE = "lower the learning rates, enable gradient clipping, or check numeric columns for extreme values"

    def loss(self, fit: Fit, value: float) -> None:
        if not math.isfinite(value):
            steps = f"step {fit.step}" if fit.window_first >= fit.step else f"steps {fit.window_first}-{fit.step}"
            raise TrainingDiverged(f"the training loss became {value} at epoch {fit.epoch}, {steps}; {self.ADVICE}")

    def outputs(self, fit: Fit, outputs: torch.Tensor) -> None:
        if fit.trainer.mean_over_processes(float(bool(torch.isfinite(outputs).all()))) < 1.0:
            raise TrainingDiverged(f"the model's outputs on validation rows became infinite or NaN at epoch {fit.epoch}; {self.ADVICE}")


class BestEpoch(Callback):
    """Keep the best epoch's weights and metrics by ``monitor``; with ``patience`` > 0, stop
    after that many epochs without improvement (never after the last planned one)."""

    def __init__(self, monitor: str, patience: int = 0):
        self.monitor, self.patience, self.bad_epochs = monitor, patience, 0

    def epoch_end(self, fit: Fit, metrics: dict[str, float]) -> None:
        value = metrics[self.monitor]
        better = fit.best_value is None or (value > fit.best_value if self.monitor in MAXIMISE else value < fit.best_value)
        if better:
            fit.best_value, fit.best_epoch, fit.best_metrics = value, fit.epoch, dict(metrics)
            fit.best_state = {k: v.detach().clone() for k, v in fit.trainer.model.state_dict().items()}
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
        if self.patience and self.bad_epochs >= self.patience and fit.epoch < fit.epochs:
            fit.stop = "stopped early"


class Plateau(Callback):
    """Multiply every optimiser's learning rate by ``factor`` after ``patience`` epochs without
    improvement of ``monitor`` (torch's ReduceLROnPlateau), once warm-up is over."""

    def __init__(self, monitor: str, factor: float, patience: int):
        self.monitor, self.factor, self.patience = monitor, factor, patience
        self.schedulers: list[Any] = []

    def fit_start(self, fit: Fit) -> None:
        mode = "max" if self.monitor in MAXIMISE else "min"
        self.schedulers = [torch.optim.lr_scheduler.ReduceLROnPlateau(o, mode, self.factor, self.patience) for o in fit.optimizers]

    def epoch_end(self, fit: Fit, metrics: dict[str, float]) -> None:
        if fit.step > fit.warmup:
            for s in self.schedulers:
                s.step(metrics[self.monitor])


class TimeBudget(Callback):
    """End training once ``seconds`` have passed: inside an epoch after its first step (that
    partial epoch is still validated and kept if it is the best), or at an epoch's end.  Decided
    on any process for all of them, so every process stops at the same step."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def spent(self, fit: Fit) -> bool:
        return fit.trainer.mean_over_processes(float(fit.elapsed() >= self.seconds)) > 0

    def batch_start(self, fit: Fit) -> None:
        if fit.epoch_steps and not fit.cut_epoch and self.spent(fit):  # the epoch has trained at least once
            fit.cut_epoch = True

    def epoch_end(self, fit: Fit, metrics: dict[str, float]) -> None:
        if not fit.stop and (fit.cut_epoch or (fit.epoch < fit.epochs and self.spent(fit))):
            fit.stop = "out of time"

    def time_left(self, fit: Fit) -> float:
        return max(0.0, self.seconds - fit.elapsed())


def default_callbacks(config: TrainerConfig, clip_parameters: Sequence[nn.Parameter] = (),
                      after_step: Callable[[], None] | None = None) -> list[Callback]:
    """The policies a ``TrainerConfig`` asks for, in the order they have always run."""
    found: list[Callback] = [WarmUp(config.warmup_steps), NonFiniteGuard(), GradClip(config.grad_clip, clip_parameters)]
    if after_step is not None:
        found.append(AfterStep(after_step))
    found += [BestEpoch(config.monitor, config.early_stopping_patience), Plateau(config.monitor, config.plateau_factor, config.plateau_patience)]
    if config.max_seconds > 0:
        found.append(TimeBudget(config.max_seconds))
    return found
