"""Tuning within a budget: Optuna's TPE sampler over the knobs that matter, judged on the
validation rows only.

Every trial trains a copy of the spec with sampled learning rates, widths, dropout, embedding
scale, numeric encoding and weight decay, and is scored by the validation metric that early
stopping watched (``metrics[monitor]`` at the best epoch).  No trial scores the test rows: they
stay unseen until the tuned spec is trained once for real.  Trial 0 is the spec as given, so the
best spec is never worse than it on the validation rows.  A budget is a number of trials, a
number of minutes, or both (whichever ends first); a stop event ends it between trials and
interrupts the trial under way.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from studio_core.common.errors import Cancelled, StudioError
from studio_core.common.metrics import MAXIMISE
from studio_core.data.workspace import Workspace
from studio_core.spec.schema import CPU_BATCH_SIZE, Spec

NUMERIC_CHOICES = ("as given", "standardize", "periodic", "piecewise")
WIDTHS = (64, 128, 256, 512)


@dataclass(frozen=True)
class Trial:
    """One finished trial: its validation score, what it tried, and how long it took."""

    number: int
    value: float | None  # None: the trial failed (its message says why)
    seconds: float
    params: dict
    best_epoch: int = 0
    message: str = ""


@dataclass(frozen=True)
class TuneResult:
    best_spec: Spec
    best_value: float
    monitor: str
    default_value: float | None  # trial 0: the spec as given
    trials: tuple[Trial, ...]

    def table(self) -> pd.DataFrame:
        """One row per trial: number, validation score, seconds, best epoch, the knobs."""
        return pd.DataFrame([{"trial": t.number, f"validation {self.monitor}": t.value, "seconds": round(t.seconds, 2),
                              "best epoch": t.best_epoch, **t.params, **({"failed": t.message} if t.message else {})} for t in self.trials])


def apply_params(base: Spec, params: dict) -> Spec:
    """The base spec with a trial's knobs set (keys absent from ``params`` keep the base's value)."""
    spec = copy.deepcopy(base)
    t, m, f = spec.train, spec.model, spec.features
    if "deep_lr" in params:
        t.deep_lr = float(params["deep_lr"])
    if "wide_lr" in params:
        t.wide_lr = float(params["wide_lr"])
    if "width" in params and "layers" in params:
        m.hidden_units = [max(16, int(params["width"]) // 2**i) for i in range(int(params["layers"]))]
    if "dropout" in params:
        m.dropout = float(params["dropout"])
    if "embedding_scale" in params:
        for c in f.categorical:
            c.embedding_dim = max(2, round(c.embedding_dim * float(params["embedding_scale"])))
    if params.get("numeric", "as given") != "as given":
        for n in f.numeric:
            if n.transform != "bucketize":
                n.transform = params["numeric"]
    if "periodic_scale" in params:
        m.periodic_scale = float(params["periodic_scale"])
    if "weight_decay" in params:
        t.deep_optimizer, t.weight_decay = "adamw", float(params["weight_decay"])
    if "batch_size" in params:
        t.batch_size = int(params["batch_size"])
    return spec


def _sample(trial, base: Spec) -> dict:
    """The search space: log-uniform rates and decay, a width and depth, dropout, an embedding
    scale, one numeric encoding for every numeric column, the periodic frequency scale."""
    p = {"deep_lr": trial.suggest_float("deep_lr", 3e-4, 1e-2, log=True)}
    if base.model.wide:
        p["wide_lr"] = trial.suggest_float("wide_lr", 5e-3, 0.3, log=True)
    p["width"] = trial.suggest_categorical("width", WIDTHS)
    p["layers"] = trial.suggest_int("layers", 1, 3)
    p["dropout"] = trial.suggest_float("dropout", 0.0, 0.4)
    if base.features.categorical:
        p["embedding_scale"] = trial.suggest_categorical("embedding_scale", (0.5, 1.0, 2.0))
    if base.features.numeric:
        p["numeric"] = trial.suggest_categorical("numeric", NUMERIC_CHOICES)
        p["periodic_scale"] = trial.suggest_float("periodic_scale", 0.01, 1.0, log=True)
    p["weight_decay"] = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
    p["batch_size"] = trial.suggest_categorical("batch_size", (256, 512, 1024))
    return p


def _as_given(base: Spec) -> dict:
    """Trial 0's parameters: the base spec's own values in the search space's terms (trial 0
    trains the base spec itself; these only tell the sampler where it stood)."""
    m, t = base.model, base.train
    width = m.hidden_units[0] if m.hidden_units else 256
    def clip(x: float, lo: float, hi: float) -> float:
        return min(max(float(x), lo), hi)

    p = {"deep_lr": clip(t.deep_lr, 3e-4, 1e-2), "width": min(WIDTHS, key=lambda w: abs(w - width)),
         "layers": min(3, max(1, len(m.hidden_units))), "dropout": clip(m.dropout, 0.0, 0.4),
         "batch_size": min((256, 512, 1024), key=lambda b: abs(b - (t.batch_size or CPU_BATCH_SIZE))), "weight_decay": clip(t.weight_decay, 1e-6, 1e-2)}
    if m.wide:
        p["wide_lr"] = clip(t.wide_lr, 5e-3, 0.3)
    if base.features.categorical:
        p["embedding_scale"] = 1.0
    if base.features.numeric:
        p["numeric"], p["periodic_scale"] = "as given", clip(m.periodic_scale, 0.01, 1.0)
    return p


def check_budget(trials: int | None, minutes: float | None) -> None:
    """Refuse a missing or empty budget (the CLI calls it before reading any data)."""
    if trials is None and minutes is None:
        raise StudioError("no tuning budget given; pass a number of trials (--trials N), of minutes (--minutes M), or both")
    if trials is not None and trials < 1 or minutes is not None and minutes <= 0:
        raise StudioError("the tuning budget must be at least 1 trial (--trials) or more than 0 minutes (--minutes)")


def tune(base: Spec, ws: Workspace, trials: int | None = 20, minutes: float | None = None, seed: int = 0,
         on_trial: Callable[[Trial, int], None] | None = None, stop_event: threading.Event | None = None) -> TuneResult:
    """Search ``trials`` trials and/or ``minutes`` of wall time; ``on_trial(trial, planned)``
    after each one (``planned`` 0 when only minutes bound it)."""
    import optuna

    from studio_core.runs.train import train

    check_budget(trials, minutes)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    found: list[Trial] = []
    monitor = {"name": ""}
    stop_event = stop_event or threading.Event()

    def objective(trial) -> float:
        if stop_event.is_set():
            trial.study.stop()
            raise optuna.TrialPruned()
        params = _sample(trial, base)  # trial 0 draws the enqueued values: the base spec's own
        spec = base if trial.number == 0 else apply_params(base, params)
        started = time.perf_counter()
        try:
            out = train(spec, ws, stop_event=stop_event, score_test=False)
        except Cancelled:
            trial.study.stop()
            raise optuna.TrialPruned() from None
        except StudioError as exc:  # a diverged or too-large trial: recorded, the search goes on
            done = Trial(trial.number, None, time.perf_counter() - started, params, 0, str(exc)[:200])
            found.append(done)
            if on_trial:
                on_trial(done, trials or 0)
            return math.nan
        monitor["name"] = out.metrics["monitor"]
        value = float(out.metrics[monitor["name"]])
        done = Trial(trial.number, value, time.perf_counter() - started, params, int(out.metrics["best_epoch"]))
        found.append(done)
        if on_trial:
            on_trial(done, trials or 0)
        return value if monitor["name"] in MAXIMISE else -value

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial(_as_given(base))
    study.optimize(objective, n_trials=trials, timeout=minutes * 60 if minutes else None, catch=())
    ok = [t for t in found if t.value is not None]
    if stop_event.is_set() and not ok:
        raise Cancelled("tuning cancelled before a trial finished")
    if not ok:
        raise StudioError(f"every tuning trial failed; the first said: {found[0].message if found else 'nothing ran'}")
    sign = 1 if monitor["name"] in MAXIMISE else -1
    best = max(ok, key=lambda t: sign * t.value)
    best_spec = base if best.number == 0 else apply_params(base, best.params)
    default = next((t.value for t in found if t.number == 0), None)
    return TuneResult(best_spec, best.value, monitor["name"], default, tuple(found))
