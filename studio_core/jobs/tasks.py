"""Background work with progress, cancel and a server-wide cap, observed through snapshots.

A ``Task`` runs ``work(report, stop)`` on a daemon thread: ``report(done, total, message)``
publishes progress, ``stop`` is an Event the work checks to cancel.  Callers (the UI) only read
immutable ``TaskSnapshot``s, so the thread never touches UI state.  ``Slots`` caps how many heavy
tasks run at once across the whole server; the others wait in a FIFO queue whose position the
snapshot shows.
"""

from __future__ import annotations

import secrets
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from studio_core.common.errors import Cancelled, StudioError

Report = Callable[[int, int, str], None]


def keep_interrupting(thread: threading.Thread, interrupt: Callable[[], None], every_s: float = 0.2, for_s: float = 60.0) -> None:
    """Call ``interrupt`` now and then every ``every_s`` until ``thread`` ends (at most ``for_s``):
    a DuckDB interrupt only stops the query running at that moment, and a cancelled job may be
    just about to start its next one."""

    def loop() -> None:
        deadline = time.time() + for_s
        while thread.is_alive() and time.time() < deadline:
            try:
                interrupt()
            except Exception:  # noqa: BLE001 - closed: nothing left to interrupt
                pass
            thread.join(every_s)

    if thread.is_alive():
        threading.Thread(target=loop, name="interrupt", daemon=True).start()


class Slots:
    """A counting semaphore with a visible FIFO queue."""

    def __init__(self, capacity: int):
        self.capacity = max(1, int(capacity))
        self._running = 0
        self._queue: deque[object] = deque()
        self._cond = threading.Condition()

    def acquire(self, ticket: object, stop: threading.Event) -> bool:
        """Wait for a slot in arrival order; False if ``stop`` was set while waiting."""
        with self._cond:
            self._queue.append(ticket)
            while self._queue[0] is not ticket or self._running >= self.capacity:
                if stop.is_set():
                    self._queue.remove(ticket)
                    self._cond.notify_all()
                    return False
                self._cond.wait(0.2)
            self._queue.popleft()
            self._running += 1
            self._cond.notify_all()
            return True

    def release(self) -> None:
        with self._cond:
            self._running -= 1
            self._cond.notify_all()

    def position(self, ticket: object) -> int:
        """1 for the next task to start, 2 after it...; 0 when not waiting."""
        with self._cond:
            return self._queue.index(ticket) + 1 if ticket in self._queue else 0

    def load(self) -> tuple[int, int]:
        """(running, waiting)."""
        with self._cond:
            return self._running, len(self._queue)


@dataclass(frozen=True)
class TaskSnapshot:
    id: str
    kind: str
    status: str  # "queued" | "running" | "done" | "failed" | "cancelled" | "interrupted" (a server stopped under it)
    done: int = 0
    total: int = 0
    message: str = ""
    error: str = ""
    result: Any = None
    queue_position: int = 0
    started: float = 0.0
    finished: float | None = None
    eta_s: float | None = None  # seconds left at the pace since the first progress report
    progress: Any = None  # the work's own immutable progress payload, if it publishes one (training: its curves)

    def eta_text(self) -> str:
        """' · about 40 s left' once the pace is known, else ''."""
        if self.eta_s is None or self.status != "running":
            return ""
        left = self.eta_s
        return f" · about {left:.0f} s left" if left < 90 else f" · about {left / 60:.0f} min left"

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")


class Task:
    """Background work on a daemon thread, read through ``snapshot()``.

    Subclasses (the training job) add their own stages through three hooks: ``_failure`` maps
    an exception to (status, message), ``_cleanup`` runs when the work ends however it ends,
    and ``_ending`` runs just before the final status is published (a status file written
    there is on disk by the time anyone sees the end)."""

    def __init__(self, kind: str, work: Callable[[Report, threading.Event], Any], slots: Slots | None = None,
                 on_cancel: Callable[[], None] | None = None, task_id: str | None = None):
        """``on_cancel`` runs when the task is cancelled, on the caller's thread: it stops work
        that does not check ``stop`` (``Connection.interrupt`` for a DuckDB query)."""
        self.id, self.kind = task_id or secrets.token_hex(16), kind
        self._work, self._slots, self._on_cancel = work, slots, on_cancel
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._status, self._done, self._total, self._message, self._error = "queued", 0, 0, "", ""
        self._result: Any = None
        self._progress: Any = None
        self._started, self._finished = time.time(), None
        self._pace_from: tuple[float, int] | None = None
        self._last_report = 0.0
        self._thread = threading.Thread(target=self._run, name=f"{kind}-{self.id[:8]}", daemon=True)

    def start(self) -> Task:
        self._thread.start()
        return self

    def settle(self, status: str, error: str = "", result: Any = None, progress: Any = None, at: float | None = None) -> Self:
        """Put a task that never ran in its final state: work found ended on disk after a
        restart.  It has no thread; cancel and join do nothing."""
        with self._lock:
            self._status, self._error, self._result, self._progress = status, error, result, progress
            self._started = self._finished = at if at is not None else time.time()
        return self

    def _report(self, done: int, total: int, message: str = "") -> None:
        now = time.time()
        with self._lock:
            if self._pace_from is None or done < self._pace_from[1] or message != self._message:
                self._pace_from = (now, done)  # a new stage starts its own pace
            self._last_report = now
            self._done, self._total, self._message = done, total, message

    def publish(self, progress: Any) -> None:
        """Replace the progress payload (an immutable object, e.g. a training's curves so far)."""
        with self._lock:
            self._progress = progress

    def _run(self) -> None:
        if self._slots is not None and not self._slots.acquire(self, self._stop):
            self._cleanup()
            self._ending("cancelled", "", None)
            with self._lock:
                self._status, self._finished = "cancelled", time.time()
            return
        with self._lock:
            self._status = "running"
        result, error = None, ""
        try:
            result = self._work(self._report, self._stop)
            status = "done"
        except Exception as exc:
            status, error = self._failure(exc)
        finally:
            if self._slots is not None:
                self._slots.release()
            self._cleanup()
        self._ending(status, error, result)
        with self._lock:
            self._status, self._error, self._result, self._finished = status, error, result, time.time()

    def _failure(self, exc: Exception) -> tuple[str, str]:
        """(status, message) of work that raised ``exc``."""
        if isinstance(exc, Cancelled) or self._stop.is_set():  # interrupted on cancel: a DuckDB query raises its own error
            return "cancelled", ""
        if isinstance(exc, StudioError):
            return "failed", str(exc)
        traceback.print_exc()  # a bug: keep the server alive and tell the user
        return "failed", f"unexpected error in {self.kind}: {type(exc).__name__}: {exc}"

    def _cleanup(self) -> None:
        """Runs when the work has ended, on the task's thread (nothing by default)."""

    def _ending(self, status: str, error: str, result: Any) -> None:
        """Runs before the final status is published (nothing by default)."""

    def cancel(self) -> None:
        """Stop the task: the work sees ``stop`` set, and ``on_cancel`` interrupts what does not
        look (a DuckDB query), again and again until the thread ends."""
        self._stop.set()
        if self._on_cancel is not None:
            keep_interrupting(self._thread, self._on_cancel)

    def join(self, timeout: float | None = None) -> None:
        if self._thread.ident is not None:  # a settled task never started a thread
            self._thread.join(timeout)

    def snapshot(self) -> TaskSnapshot:
        position = self._slots.position(self) if self._slots is not None else 0
        with self._lock:
            return TaskSnapshot(self.id, self.kind, self._status, self._done, self._total, self._message, self._error,
                                self._result, position, self._started, self._finished, self._eta(), self._progress)

    def _eta(self) -> float | None:
        """Seconds left at the pace since the stage's first report, counted down since the last."""
        if self._pace_from is None or self._done <= self._pace_from[1] or self._total < self._done:
            return None
        t0, d0 = self._pace_from
        per_unit = (self._last_report - t0) / (self._done - d0)
        return max(0.0, per_unit * (self._total - self._done) - (time.time() - self._last_report))
