"""Tuning as a background ``Task`` (the Train page): queued behind the server's cap like a
training, cancellable, and publishing each finished trial as it lands.

The finished trials live in a ``TuneLog`` whose ``trials`` tuple is replaced, never mutated,
so the page reads an immutable snapshot on its own thread while the search goes on.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from studio_core.data.workspace import Workspace
from studio_core.jobs.tasks import Report, Slots, Task
from studio_core.runs.tune import Trial, TuneResult, tune
from studio_core.spec.schema import Spec


@dataclass
class TuneLog:
    """What the search has found so far (replaced as a whole on each trial)."""

    trials: tuple[Trial, ...] = field(default_factory=tuple)
    planned: int = 0


@dataclass(frozen=True)
class TuneJob:
    task: Task
    log: TuneLog
    spec: Spec  # the spec the search started from


def tune_task(spec: Spec, ws: Workspace, trials: int | None, minutes: float | None, seed: int = 0,
              slots: Slots | None = None) -> TuneJob:
    """A started search over ``spec`` on ``ws`` (a fork the task may use on its thread)."""
    log = TuneLog(planned=int(trials or 0))

    def work(report: Report, stop: threading.Event) -> TuneResult:
        def landed(trial: Trial, planned: int) -> None:
            log.trials = (*log.trials, trial)
            report(len(log.trials), planned, f"trial {trial.number + 1} done")

        report(0, int(trials or 0), "starting")
        try:
            return tune(spec, ws, trials, minutes, seed, landed, stop)
        finally:
            ws.con.close()

    return TuneJob(Task("tune", work, slots, on_cancel=ws.con.interrupt).start(), log, spec)
