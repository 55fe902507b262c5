"""The one live view of background work (training, tuning, SHAP, scoring, export): queue
position, progress, cancel, the outcome, and whatever the work draws of its own progress.

A fragment polls the task every second while it is queued or running; when it ends, one full
rerun draws the result and stops the polling.  The fragment sits in its own container, so its
reruns never clear what the page draws after it.  Cancel is the task's ``cancel`` everywhere:
the work stops at its next check and DuckDB is interrupted.
"""

from collections.abc import Callable

import streamlit as st
from plain import plain
from state import StudioSession

from studio_core.jobs.tasks import Task, TaskSnapshot


def task_view(s: StudioSession, task: Task, progress: Callable[[TaskSnapshot], tuple[float, str]], what: str, key: str,
              body: Callable[[TaskSnapshot], None] | None = None, slot: str = "slot") -> None:
    """``progress(snapshot) -> (fraction, text)`` while running; ``what`` names the work in
    messages; ``body(snapshot)`` draws the work's own figures (a training's curves) on every poll
    and after the end; ``slot`` names what the queue waits for."""

    was_active = task.snapshot().active  # one reading decides polling, so an end between two readings still reruns the app

    @st.fragment(run_every=1.0 if was_active else None)
    def view() -> None:
        s.touch()  # watching a live view is activity, not idleness
        t = task.snapshot()
        if t.status == "queued":
            st.progress(0.0, text=f"Waiting for a free {slot}: number {t.queue_position} in the queue")
        elif t.active:
            fraction, text = progress(t)
            st.progress(min(max(fraction, 0.0), 1.0), text=text)
        if t.active and st.button("Cancel", key=f"{key}_cancel"):
            task.cancel()
        if t.status in ("failed", "interrupted"):
            st.error(f"{what} {t.status}: {plain(t.error)}")
        elif t.status == "cancelled":
            st.warning(f"{what} was cancelled.")
        if body is not None:
            body(t)
        if not t.active and (was_active or s.polling == t.id):
            s.polling = ""
            st.rerun(scope="app")
        if t.active:
            s.polling = t.id

    with st.container():
        view()
