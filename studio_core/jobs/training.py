"""Training as a background ``Task``, observed through the same immutable snapshots as every
other task: the curves so far are its progress payload (``TrainingProgress``), the run its
result (``TrainedRun``).  The UI only ever reads ``snapshot()``, so the training thread never
touches UI state.  The
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

from studio_core.common.errors import StudioError
from studio_core.data.workspace import Workspace
from studio_core.jobs.tasks import Report, Slots, Task, TaskSnapshot
from studio_core.spec.schema import Spec
from studio_core.training.progress import Progress

MAX_STEP_POINTS = 2000


@dataclass(frozen=True)
class TrainingProgress:
    """A training job's progress payload (``TaskSnapshot.progress``): its curves so far."""

    epochs: tuple[Progress, ...] = ()
    steps: tuple[tuple[int, float], ...] = ()  # (step, train loss), thinned to at most MAX_STEP_POINTS
    last: Progress | None = None


@dataclass(frozen=True)
class TrainedRun:
    """A training job's result (``TaskSnapshot.result`` once done): where the run is, its figures."""

    run_dir: str
    metrics: dict[str, Any] = field(default_factory=dict)


def run_metrics(snap: TaskSnapshot) -> dict[str, Any]:
    """The run's metrics of a finished training's snapshot, ``{}`` while it runs or if it failed."""
    return snap.result.metrics if isinstance(snap.result, TrainedRun) else {}


def configure_threads(concurrent_jobs: int) -> int:
    """Give each of ``concurrent_jobs`` jobs an equal share of the cores as torch intra-op
    threads (at least one): with two cores and two jobs, one thread each -- two-thread jobs
    side by side wait on each other at every parallel region and run several times slower."""
    import os

    import torch

    n = max(1, (os.cpu_count() or 1) // max(1, concurrent_jobs))
    torch.set_num_threads(n)
    return n


def _marker(run_dir: Path) -> Path:
    """The job's status file beside its run directory: written when the job is queued and when
    it ends, so a server killed mid-training leaves a "running" marker and no run directory."""
    return run_dir.parent / ".jobs" / f"{run_dir.name}.json"


def _write_marker(run_dir: Path, record: dict[str, Any]) -> None:
    import json
    import os

    path = _marker(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{secrets.token_hex(4)}")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    os.replace(tmp, path)


def _read_marker(run_dir: Path) -> dict[str, Any]:
    import json

    try:
        record = json.loads(_marker(run_dir).read_text(encoding="utf-8"))
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


class TrainingJob(Task):
    """One training as a ``Task`` of kind "train".  ``cancel`` also interrupts the DuckDB query
    the job is running (a trillion-row ``data.sql`` stops at once); the data stage (split,
    preprocessing, tensors: everything before the first progress report) is interrupted after
    ``data_timeout_s``.  A status file beside the run says queued/running/ended, so a restarted
    server can tell the runs that landed from the ones it was killed under."""

    def __init__(self, job_id: str, owner: str, spec: Spec | None, ws: Workspace | None, run_dir: Path, slots: Slots | None = None,
                 data_timeout_s: float | None = None):
        super().__init__("train", self._train, slots, on_cancel=self._interrupt, task_id=job_id)
        self.owner, self.spec, self.run_dir = owner, spec, run_dir
        self._ws, self._data_timeout_s, self._data_timed_out = ws, data_timeout_s, False

    @classmethod
    def restored(cls, job_id: str, owner: str, run_dir: Path, status: str, error: str = "", at: float | None = None) -> TrainingJob:
        """A job found on disk after a restart, settled in its final state: a finished run with
        its history replayed as epoch records, or one that failed, was cancelled or interrupted."""
        job = cls(job_id, owner, None, None, run_dir)
        if status != "done":
            return job.settle(status, error, at=at)
        from types import MappingProxyType

        from studio_core.runs.store import read_record

        metrics, history = read_record(run_dir)
        n = len(history)
        epochs = tuple(Progress("epoch", h["epoch"], n, h["step"], history[-1]["step"], h["train_loss"],
                                MappingProxyType({k[4:]: v for k, v in h.items() if k.startswith("val_") and v is not None}),
                                tuple(h.get("lrs", ())), h.get("rows_per_s", 0.0), 0.0, h.get("elapsed_s", 0.0)) for h in history)
        mtime = (run_dir / "metrics.json").stat().st_mtime
        return job.settle("done", "", TrainedRun(str(run_dir), metrics), TrainingProgress(epochs, (), epochs[-1] if epochs else None), mtime)

    def start(self) -> TrainingJob:
        _write_marker(self.run_dir, {"status": "running", "started": self._started})
        super().start()
        return self

    def _interrupt(self) -> None:
        ws = self._ws
        if ws is not None:
            try:
                ws.con.interrupt()
            except Exception:  # noqa: BLE001 - closed under us: nothing left to stop
                pass

    def _data_stage_over(self) -> None:
        """The data-stage timer fired: stop the job if it has not started training yet."""
        with self._lock:
            if self._progress is not None or self._status != "running":  # training has started
                return
            self._data_timed_out = True
        self._stop.set()
        self._interrupt()

    def _listen(self, p: Progress) -> None:
        """Each progress record extends the curves published as the task's payload (the one
        copy of them), and a step record sets the bar's position and text."""
        cur = self._progress or TrainingProgress()
        epochs, steps = cur.epochs, cur.steps
        if p.kind == "epoch":
            epochs += (p,)
        elif p.kind == "step" and p.train_loss is not None:
            steps += ((p.step, p.train_loss),)
            if len(steps) > MAX_STEP_POINTS:
                steps = steps[::2]
        self.publish(TrainingProgress(epochs, steps, p))
        if p.total_steps:
            memory = f" · GPU memory {p.device_memory_gib:.2f} GiB" if p.device_memory_gib is not None else ""
            self._report(p.step, p.total_steps, f"epoch {p.epoch}/{p.epochs} · {p.rows_per_s:,.0f} rows/s{memory} · ETA {p.eta_s:.0f}s")

    def _train(self, report: Report, stop: threading.Event) -> TrainedRun:
        from studio_core.runs.train import train

        timer = threading.Timer(self._data_timeout_s, self._data_stage_over) if self._data_timeout_s else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            _write_marker(self.run_dir, {"status": "running", "started": self._started, "running_since": time.time()})
            outcome = train(self.spec, self._ws, self.run_dir, [self._listen], stop)
        finally:
            if timer is not None:
                timer.cancel()
        return TrainedRun(str(self.run_dir), dict(outcome.metrics))

    def _failure(self, exc: Exception) -> tuple[str, str]:
        if self._data_timed_out:
            return "failed", (f"reading the data took longer than {self._data_timeout_s:g} s (WDSTUDIO_DATA_TIMEOUT_S) and was stopped; "
                              "train on a smaller table or a query with filters")
        # a cancel, or a released session closing the connection a preparing job reads
        return super()._failure(exc)

    def _cleanup(self) -> None:
        """A finished job keeps no cursor on the session's database (nor its temp tables)."""
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.con.close()
            except Exception:  # noqa: BLE001 - the session's connection was closed under it already
                pass

    def _ending(self, status: str, error: str, result: Any) -> None:
        try:
            record = {"status": status, "error": error, "started": self._started, "finished": time.time()}
            previous = _read_marker(self.run_dir)
            if "running_since" in previous:
                record["running_since"] = previous["running_since"]
            _write_marker(self.run_dir, record)
        except OSError:
            traceback.print_exc()  # the run itself (if any) is already safely on disk


class BaselineJob(TrainingJob):
    """A baseline (``runs.baselines``: LightGBM, constant) of a finished run, on its split, as a
    job of the same list: it queues, reports, cancels and restores like a training."""

    def __init__(self, job_id: str, owner: str, kind: str, base_run: Path, ws: Workspace, run_dir: Path, slots: Slots | None = None):
        super().__init__(job_id, owner, None, ws, run_dir, slots)
        self.baseline_kind, self.base_run = kind, base_run

    def _train(self, report: Report, stop: threading.Event) -> TrainedRun:
        from studio_core.runs.baselines import train_baseline
        from studio_core.runs.folder import run_record

        _write_marker(self.run_dir, {"status": "running", "started": self._started, "running_since": time.time()})
        report(0, 1, f"training the {self.baseline_kind} baseline")
        done = train_baseline(self.baseline_kind, *run_record(self.base_run), self._ws, self.run_dir)
        return TrainedRun(str(done.run_dir), dict(done.metrics))


class JobRegistry:
    """Process-wide list of jobs; every lookup is checked against the caller's owner id."""

    def __init__(self, runs_root: str | Path, slots: Slots | None = None, jobs_per_owner: int | None = None,
                 data_timeout_s: float | None = None):
        self.runs_root = Path(runs_root)
        self.slots, self.jobs_per_owner, self.data_timeout_s = slots, jobs_per_owner, data_timeout_s
        self._jobs: dict[str, TrainingJob] = {}
        self._lock = threading.Lock()

    def active(self, owner: str) -> int:
        """How many of the owner's jobs are queued or running."""
        return sum(1 for j in self.owned(owner) if j.snapshot().active)

    def submit(self, owner: str, spec: Spec, ws: Workspace) -> str:
        """Start a training job for ``owner``; refused when the owner already has
        ``jobs_per_owner`` jobs queued or running (one user cannot fill the queue)."""
        if self.jobs_per_owner is not None and self.active(owner) >= self.jobs_per_owner:
            raise StudioError(f"you already have {self.jobs_per_owner} trainings queued or running, this server's limit per session "
                              "(WDSTUDIO_SESSION_JOBS); wait for one to finish or cancel one")
        job_id = secrets.token_hex(16)
        job = TrainingJob(job_id, owner, spec, ws.fork(), self.runs_root / owner / job_id, self.slots, self.data_timeout_s)
        return self._start(job)

    def submit_baseline(self, owner: str, kind: str, base_job_id: str, ws: Workspace) -> str:
        """Start the ``kind`` baseline (``runs.baselines.KINDS``) of the owner's finished run
        ``base_job_id``, on that run's split; refused as ``submit`` is, and for another owner's run."""
        base = self.get(base_job_id, owner)
        if base is None or base.snapshot().status != "done":
            raise StudioError("that run is not a finished run of this session; pick one that has finished")
        if self.jobs_per_owner is not None and self.active(owner) >= self.jobs_per_owner:
            raise StudioError(f"you already have {self.jobs_per_owner} trainings queued or running, this server's limit per session "
                              "(WDSTUDIO_SESSION_JOBS); wait for one to finish or cancel one")
        job_id = secrets.token_hex(16)
        return self._start(BaselineJob(job_id, owner, kind, base.run_dir, ws.fork(), self.runs_root / owner / job_id, self.slots))

    def _start(self, job: TrainingJob) -> str:
        try:
            job.start()
        except OSError as exc:  # its status file could not be written: nothing was started
            raise StudioError(f"could not write to the runs folder {self.runs_root} ({exc}); free disk space or fix its permissions") from None
        with self._lock:
            self._jobs[job.id] = job
        return job.id

    def get(self, job_id: str, owner: str) -> TrainingJob | None:
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and secrets.compare_digest(job.owner, owner) else None

    def restore(self, owner: str) -> list[str]:
        """Re-list the owner's runs from disk after a server restart, oldest first: finished runs
        come back whole; a job whose marker still says "running" (the server died under it) comes
        back as "interrupted", failed and cancelled ones with their message."""
        import json

        from studio_core.runs.folder import is_run_dir

        folder = self.runs_root / owner
        if not folder.is_dir():
            return []
        found: dict[str, tuple[float, TrainingJob]] = {}
        for d in folder.glob("*"):
            if d.is_dir() and not d.name.startswith(".") and is_run_dir(d):  # any kind of run: a network, a LightGBM baseline
                mtime = (d / "metrics.json").stat().st_mtime
                try:
                    found[d.name] = (mtime, TrainingJob.restored(d.name, owner, d, "done"))
                except Exception as exc:  # noqa: BLE001 - one damaged run is listed as such; the others load
                    reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
                    found[d.name] = (mtime, TrainingJob.restored(d.name, owner, d, "failed", f"this run's files are damaged ({reason}); train it again", mtime))
        for m in (folder / ".jobs").glob("*.json") if (folder / ".jobs").is_dir() else []:
            job_id = m.stem
            if job_id in found:
                continue
            try:
                record = json.loads(m.read_text(encoding="utf-8"))
                status = str(record.get("status", "running"))
                started = float(record.get("started", m.stat().st_mtime))
            except (OSError, ValueError, TypeError, AttributeError):
                continue
            if status in ("done", "queued"):
                status = "running"  # a marker without its run directory: the run never landed
            error = {"running": "the server stopped while this run was training; nothing of it was saved, start it again"}.get(
                status, str(record.get("error", "")))
            found[job_id] = (started, TrainingJob.restored(job_id, owner, folder / job_id, "interrupted" if status == "running" else status, error, started))
        ids = []
        with self._lock:
            for job_id, (_, job) in sorted(found.items(), key=lambda kv: kv[1][0]):
                if job_id not in self._jobs:
                    self._jobs[job_id] = job
                ids.append(job_id)
        return ids

    def owned(self, owner: str) -> list[TrainingJob]:
        with self._lock:
            return [j for j in self._jobs.values() if j.owner == owner]
