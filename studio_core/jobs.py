"""Training on a background thread, observed through immutable snapshots.

A ``TrainingJob`` owns its thread, a lock, a stop event and the progress history; the UI (or any
caller) only ever reads ``snapshot()``, so the training thread never touches UI state.  The
``JobRegistry`` hands out unguessable ids and checks the owner on every lookup, so one session
cannot see or cancel another's jobs.
"""

from __future__ import annotations

import secrets
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Cancelled, StudioError
from .spec import Spec
from .trainer import Progress
from .workspace import Workspace

MAX_STEP_POINTS = 2000


@dataclass(frozen=True)
class JobSnapshot:
    id: str
    status: str  # "running" | "done" | "failed" | "cancelled"
    epochs: tuple[Progress, ...] = ()
    steps: tuple[tuple[int, float], ...] = ()
    last: Progress | None = None
    error: str = ""
    run_dir: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0
    finished: float | None = None

    @property
    def active(self) -> bool:
        return self.status == "running"


class TrainingJob:
    def __init__(self, job_id: str, owner: str, spec: Spec, ws: Workspace, run_dir: Path):
        self.id, self.owner, self.spec, self.run_dir = job_id, owner, spec, run_dir
        self._ws = ws
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._epochs: list[Progress] = []
        self._steps: list[tuple[int, float]] = []
        self._last: Progress | None = None
        self._status, self._error, self._metrics = "running", "", {}
        self._started, self._finished = time.time(), None
        self._thread = threading.Thread(target=self._run, name=f"train-{job_id[:8]}", daemon=True)

    def start(self) -> TrainingJob:
        self._thread.start()
        return self

    def _listen(self, p: Progress) -> None:
        with self._lock:
            self._last = p
            if p.kind == "epoch":
                self._epochs.append(p)
            elif p.kind == "step" and p.train_loss is not None:
                self._steps.append((p.step, p.train_loss))
                if len(self._steps) > MAX_STEP_POINTS:
                    self._steps = self._steps[::2]

    def _run(self) -> None:
        from .pipeline import train

        try:
            outcome = train(self.spec, self._ws, self.run_dir, [self._listen], self._stop)
            status, error, metrics = "done", "", outcome.metrics
        except Cancelled:
            status, error, metrics = "cancelled", "", {}
        except StudioError as exc:
            status, error, metrics = "failed", str(exc), {}
        except Exception as exc:  # a bug: keep the server alive and tell the user
            status, error, metrics = "failed", f"unexpected error: {type(exc).__name__}: {exc}", {}
            traceback.print_exc()
        with self._lock:
            self._status, self._error, self._metrics, self._finished = status, error, metrics, time.time()

    def cancel(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return JobSnapshot(self.id, self._status, tuple(self._epochs), tuple(self._steps), self._last, self._error,
                               str(self.run_dir) if self._status == "done" else "", dict(self._metrics), self._started, self._finished)


class JobRegistry:
    """Process-wide list of jobs; every lookup is checked against the caller's owner id."""

    def __init__(self, runs_root: str | Path):
        self.runs_root = Path(runs_root)
        self._jobs: dict[str, TrainingJob] = {}
        self._lock = threading.Lock()

    def submit(self, owner: str, spec: Spec, ws: Workspace) -> str:
        job_id = secrets.token_hex(16)
        job = TrainingJob(job_id, owner, spec, ws.fork(), self.runs_root / owner / job_id)
        with self._lock:
            self._jobs[job_id] = job
        job.start()
        return job_id

    def get(self, job_id: str, owner: str) -> TrainingJob | None:
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and secrets.compare_digest(job.owner, owner) else None

    def restore(self, owner: str) -> list[str]:
        """Re-list the owner's finished runs from disk (after a server restart), oldest first."""
        from .runs import RUN_FILES

        folder = self.runs_root / owner
        found = sorted((d for d in folder.glob("*") if d.is_dir() and all((d / f).is_file() for f in RUN_FILES)),
                       key=lambda d: (d / "metrics.json").stat().st_mtime) if folder.is_dir() else []
        ids = []
        with self._lock:
            for d in found:
                if d.name not in self._jobs:
                    self._jobs[d.name] = FinishedJob(d.name, owner, d)
                ids.append(d.name)
        return ids

    def owned(self, owner: str) -> list[TrainingJob]:
        with self._lock:
            return [j for j in self._jobs.values() if j.owner == owner]


class FinishedJob(TrainingJob):
    """A run found on disk: no thread, its history replayed as epoch records."""

    def __init__(self, job_id: str, owner: str, run_dir: Path):
        import json
        from types import MappingProxyType

        self.id, self.owner, self.run_dir = job_id, owner, run_dir
        self._lock = threading.Lock()
        self._stop = threading.Event()
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
        n = len(history)
        self._epochs = [Progress("epoch", h["epoch"], n, h["step"], history[-1]["step"], h["train_loss"],
                                 MappingProxyType({k[4:]: v for k, v in h.items() if k.startswith("val_") and v is not None}),
                                 tuple(h.get("lrs", ())), h.get("rows_per_s", 0.0), 0.0, h.get("elapsed_s", 0.0)) for h in history]
        self._steps, self._last = [], self._epochs[-1] if self._epochs else None
        self._status, self._error, self._metrics = "done", "", metrics
        mtime = (run_dir / "metrics.json").stat().st_mtime
        self._started, self._finished = mtime, mtime

    def start(self) -> FinishedJob:
        return self

    def join(self, timeout: float | None = None) -> None:
        return None
