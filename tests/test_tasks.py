"""Background tasks: a bug inside one is reported to its user, never raised into the server."""

from __future__ import annotations

import threading

from studio_core.common.errors import StudioError
from studio_core.jobs.tasks import Slots, Task


def _wait(task: Task) -> None:
    task.join(10)
    assert not task.snapshot().active


def test_an_exception_inside_a_task_marks_it_failed_with_a_message_and_frees_its_slot():
    slots = Slots(1)

    def broken(report, stop: threading.Event):
        report(1, 3, "working")
        raise RuntimeError("index out of range in column 'age'")

    task = Task("explain", broken, slots).start()
    _wait(task)
    snap = task.snapshot()
    assert snap.status == "failed" and "RuntimeError" in snap.error and "column 'age'" in snap.error and snap.done == 1
    assert slots.load() == (0, 0)
    ok = Task("export", lambda report, stop: 42, slots).start()
    _wait(ok)
    assert ok.snapshot().status == "done" and ok.snapshot().result == 42


def test_a_studio_error_is_shown_as_is_and_cancel_stops_cooperative_work():
    def refuses(report, stop):
        raise StudioError("load table 'adult' first")

    task = Task("explain", refuses).start()
    _wait(task)
    assert (task.snapshot().status, task.snapshot().error) == ("failed", "load table 'adult' first")

    def patient(report, stop):
        from studio_core.common.errors import Cancelled

        stop.wait(10)
        raise Cancelled()

    slow = Task("explain", patient).start()
    slow.cancel()
    _wait(slow)
    assert slow.snapshot().status == "cancelled"
