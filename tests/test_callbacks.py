"""The trainer's policies one by one (issue 15): warm-up ramps, the plateau lowers the learning
rate, clipping clips, the L1 proximal step shrinks by lr * l1, the best epoch is kept and early
stopping waits its patience, the guard stops on NaN, the time budget cuts an epoch; and a
trainer given only its own callbacks runs none of the defaults."""

from __future__ import annotations

import pytest
import torch

from studio_core.common.errors import TrainingDiverged
from studio_core.training.callbacks import (
    BestEpoch,
    Fit,
    GradClip,
    L1Proximal,
    NonFiniteGuard,
    Plateau,
    TimeBudget,
    WarmUp,
    default_callbacks,
)
from studio_core.training.progress import Progress
from studio_core.training.trainer import Trainer, TrainerConfig


def _trainer(lr: float = 0.1, **config) -> Trainer:
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    return Trainer(model, torch.nn.functional.mse_loss, [opt], TrainerConfig(**config), lambda out, y: {"loss": 0.0})


def _fit(trainer: Trainer, total_steps: int = 100, epochs: int = 10) -> Fit:
    return Fit(trainer, epochs, total_steps)


def test_warm_up_ramps_the_learning_rate_linearly_then_holds():
    trainer = _trainer(lr=0.2)
    fit, warm = _fit(trainer, total_steps=1000), WarmUp(10)
    warm.fit_start(fit)
    seen = []
    for step in range(14):
        fit.step = step
        warm.batch_start(fit)
        seen.append(trainer.optimizers[0].param_groups[0]["lr"])
    assert seen[:10] == pytest.approx([0.2 * (s + 1) / 10 for s in range(10)]) and seen[10:] == pytest.approx([0.2] * 4)
    short = _fit(_trainer(), total_steps=20)
    WarmUp(100).fit_start(short)
    assert short.warmup == 4  # never more than a fifth of the run


def test_the_plateau_lowers_the_learning_rate_after_its_patience():
    trainer = _trainer(lr=0.4)
    fit, plateau = _fit(trainer), Plateau("auc", factor=0.5, patience=1)
    plateau.fit_start(fit)
    fit.step = 10
    lrs = []
    for auc in (0.70, 0.75, 0.74, 0.73, 0.72):
        plateau.epoch_end(fit, {"auc": auc})
        lrs.append(trainer.optimizers[0].param_groups[0]["lr"])
    assert lrs == pytest.approx([0.4, 0.4, 0.4, 0.2, 0.2])  # 2 epochs without a better AUC, then halved; the count restarts
    fit.step, fit.warmup = 3, 5  # still warming up: the plateau waits
    before = trainer.optimizers[0].param_groups[0]["lr"]
    for auc in (0.1, 0.1, 0.1):
        plateau.epoch_end(fit, {"auc": auc})
    assert trainer.optimizers[0].param_groups[0]["lr"] == before


def test_clipping_clips_the_gradient_norm():
    trainer = _trainer()
    params = list(trainer.model.parameters())
    for p in params:
        p.grad = torch.full_like(p, 10.0)
    GradClip(1.0, params).after_backward(_fit(trainer))
    assert float(torch.cat([p.grad.flatten() for p in params]).norm()) == pytest.approx(1.0, rel=1e-5)
    for p in params:
        p.grad = torch.full_like(p, 0.01)
    GradClip(1.0, params).after_backward(_fit(trainer))
    assert all(torch.equal(p.grad, torch.full_like(p, 0.01)) for p in params)  # under the norm: untouched


def test_the_l1_proximal_step_shrinks_each_weight_by_lr_times_l1_and_stops_at_zero():
    weight = torch.nn.Parameter(torch.tensor([[0.5], [-0.5], [0.01], [-0.02], [0.0]]))
    opt = torch.optim.Adagrad([weight], lr=0.1)
    L1Proximal(weight, opt, l1=0.2).after_step()  # shrink = 0.1 * 0.2 = 0.02
    assert weight.detach().flatten().tolist() == pytest.approx([0.48, -0.48, 0.0, 0.0, 0.0])


def test_best_epoch_keeps_the_best_weights_and_early_stopping_waits_its_patience():
    trainer = _trainer()
    fit, best = _fit(trainer, epochs=10), BestEpoch("rmse", patience=2)
    for epoch, rmse in enumerate((3.0, 2.0, 2.5, 2.1), start=1):
        fit.epoch = epoch
        with torch.no_grad():
            trainer.model.weight.fill_(epoch)
        best.epoch_end(fit, {"rmse": rmse})
        assert fit.stop == ("stopped early" if epoch == 4 else "")
    assert fit.best_epoch == 2 and fit.best_value == 2.0 and float(fit.best_state["weight"][0, 0]) == 2.0
    last = _fit(trainer, epochs=2)
    keep = BestEpoch("auc", patience=1)
    for epoch, auc in ((1, 0.9), (2, 0.8)):
        last.epoch = epoch
        keep.epoch_end(last, {"auc": auc})
    assert last.stop == "" and last.best_epoch == 1  # no early stop reported after the last planned epoch


def test_the_guard_stops_on_a_nan_loss_or_nan_outputs():
    fit, guard = _fit(_trainer()), NonFiniteGuard()
    guard.loss(fit, 0.3)
    with pytest.raises(TrainingDiverged, match="lower the learning rates"):
        guard.loss(fit, float("nan"))
    with pytest.raises(TrainingDiverged, match="validation rows"):
        guard.outputs(fit, torch.tensor([0.1, float("inf")]))


def test_the_time_budget_cuts_the_epoch_under_way_after_its_first_step():
    fit, budget = _fit(_trainer(), epochs=5), TimeBudget(0.0)
    fit.epoch = 1
    budget.batch_start(fit)
    assert not fit.cut_epoch  # no step in this epoch yet: train at least one
    fit.epoch_steps = 1
    budget.batch_start(fit)
    assert fit.cut_epoch
    budget.epoch_end(fit, {})
    assert fit.stop == "out of time"
    roomy = _fit(_trainer(), epochs=5)
    roomy.epoch, roomy.epoch_steps = 1, 3
    TimeBudget(3600).batch_start(roomy)
    TimeBudget(3600).epoch_end(roomy, {})
    assert not roomy.cut_epoch and roomy.stop == ""


def test_a_trainer_runs_exactly_the_callbacks_it_is_given():
    """With only BestEpoch: no warm-up (the first step already uses the full learning rate)
    and no early stop, whatever the config says."""
    x, y = torch.randn(64, 3), torch.randn(64)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    config = TrainerConfig(epochs=4, batch_size=16, warmup_steps=1000, early_stopping_patience=1, monitor="loss")
    calls = iter([{"loss": v} for v in (1.0, 2.0, 3.0, 4.0)])
    trainer = Trainer(lambda_model(model), torch.nn.functional.mse_loss, [opt], config, lambda out, t: next(calls), callbacks=[BestEpoch("loss")])
    records: list[Progress] = []
    trainer.listeners.append(records.append)
    result = trainer.fit((x, y), (x, y))
    assert len(result.history) == 4 and result.best_epoch == 1 and not result.stopped_early
    assert {r.lrs[0] for r in records if r.kind == "step"} == {0.05}
    kinds = [type(c).__name__ for c in default_callbacks(config)]
    assert kinds == ["WarmUp", "NonFiniteGuard", "GradClip", "BestEpoch", "Plateau"]  # and no TimeBudget without max_seconds


def lambda_model(linear: torch.nn.Linear) -> torch.nn.Module:
    class Squeezed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = linear

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x).squeeze(-1)

    return Squeezed()
