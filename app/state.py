"""The studio's one session object and the process-wide resources it points to.

Everything a page needs lives in one typed ``StudioSession`` under one ``session_state`` key.
Workspaces and the job registry live in ``st.cache_resource`` (outside any session), keyed by an
unguessable owner token kept in the URL, so a browser refresh re-attaches to the same tables
and runs, and another session cannot reach them without the token.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from studio_core.errors import StudioError
from studio_core.jobs import JobRegistry, JobSnapshot, configure_threads
from studio_core.results import run_label
from studio_core.runs import Run, load_run
from studio_core.spec import Spec
from studio_core.suggest import Suggestion
from studio_core.tasks import Slots, Task
from studio_core.workspace import Workspace

KEY = "studio"
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data"
UPLOAD_ROOT = Path(os.environ.get("WDSTUDIO_UPLOADS", Path(tempfile.gettempdir()) / "wdstudio-uploads"))
SESSION_MEMORY = os.environ.get("WDSTUDIO_SESSION_MEMORY", "4GB")  # DuckDB memory_limit of each session
QUERY_TIMEOUT_S = float(os.environ.get("WDSTUDIO_QUERY_TIMEOUT_S", "30"))
SESSION_TTL_S = float(os.environ.get("WDSTUDIO_SESSION_TTL_S", str(2 * 3600)))  # idle this long: jobs cancelled, tables released


@dataclass
class StudioSession:
    owner: str
    base: Workspace  # the session's DuckDB database; pages reach it through ``ws``
    spool: Path  # the only folder (besides the samples) this session's DuckDB may read: uploads land here
    table: str = ""
    spec: Spec | None = None
    suggestion: Suggestion | None = None
    job_ids: list[str] = field(default_factory=list)
    selected_job: str = ""
    polling: str = ""  # the job whose live view is polling
    explain_jobs: dict[str, Task] = field(default_factory=dict)  # run id -> its latest SHAP task
    exports: dict[str, Task] = field(default_factory=dict)  # run id -> its latest bundle export
    last_seen: float = field(default_factory=time.time)
    closed: bool = False  # released after being idle: a returning tab gets a fresh session for its token
    _cursors: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    @property
    def ws(self) -> Workspace:
        """The workspace as this thread sees it: its own DuckDB cursor on the session's database.
        Two tabs on one token run their scripts on two threads at once, and one connection
        shared between threads hands one thread's result to the other."""
        ws = getattr(self._cursors, "ws", None)
        if ws is None:
            ws = self._cursors.ws = self.base.fork()
        return ws

    def touch(self) -> None:
        """Mark the session as in use (every page run and every poll of a live view)."""
        self.last_seen = time.time()


@st.cache_resource
def slots() -> Slots:
    """Server-wide cap on heavy background work (training, explanations, exports): the rest
    queue.  Torch's intra-op threads are split between the slots so concurrent jobs do not
    oversubscribe the cores (the setting is process-wide)."""
    cap = Slots(int(os.environ.get("WDSTUDIO_MAX_JOBS", "2")))
    configure_threads(cap.capacity)
    return cap


@st.cache_resource
def registry() -> JobRegistry:
    return JobRegistry(Path(os.environ.get("WDSTUDIO_RUNS", "runs/studio")), slots())


@st.cache_resource
def _workspaces() -> tuple[dict[str, StudioSession], threading.Lock]:
    return {}, threading.Lock()


def new_session(token: str, job_ids: list[str] | None = None) -> StudioSession:
    """A session with its own sandboxed DuckDB (one thread, bounded memory, reads only its
    upload folder and the samples, configuration locked, user queries timed out)."""
    spool = UPLOAD_ROOT / token
    spool.mkdir(parents=True, exist_ok=True)
    ws = Workspace(threads=1, memory_limit=SESSION_MEMORY, allowed_dirs=[spool, SAMPLE_DIR], query_timeout_s=QUERY_TIMEOUT_S)
    return StudioSession(token, ws, spool, job_ids=list(job_ids or []))


def release(s: StudioSession) -> None:
    """Free an abandoned session: cancel its training, explanation and export jobs, delete its
    uploads folder and drop its tables.  Finished runs stay on disk for its token."""
    s.closed = True
    for job in registry().owned(s.owner):
        if job.snapshot().active:
            job.cancel()
    for task in [*s.explain_jobs.values(), *s.exports.values()]:
        task.cancel()
    shutil.rmtree(s.spool, ignore_errors=True)
    try:  # its tables go with the connection (a tab still holding the object gets a fresh session)
        s.base.con.close()
    except Exception:  # noqa: BLE001 - already closed, or in use by a job that is stopping
        pass


def sweep_idle(sessions: dict[str, StudioSession], now: float) -> list[str]:
    """Release every session idle for longer than SESSION_TTL_S; returns their tokens."""
    gone = [token for token, s in sessions.items() if now - s.last_seen > SESSION_TTL_S]
    for token in gone:
        release(sessions.pop(token))
    return gone


def session() -> StudioSession:
    """This browser session's state, re-attached after a refresh through ``?s=<token>``."""
    current = st.session_state.get(KEY)
    if current is not None and not current.closed:
        current.touch()
        if st.query_params.get("s") != current.owner:
            st.query_params["s"] = current.owner  # page switches drop query params; keep the token
        return current
    if current is not None:  # released while idle: same token, runs read back, tables gone
        st.query_params["s"] = current.owner
        st.warning(f"This session was idle for over {SESSION_TTL_S / 3600:g} h: its tables and running jobs were released. "
                   "Finished runs are still here; load your data again to keep working.")
    sessions, lock = _workspaces()
    token = st.query_params.get("s", "")
    with lock:
        sweep_idle(sessions, time.time())
        found = sessions.get(token) if token else None
        if found is None and token and len(token) == 32 and token.isalnum():
            # unknown token, e.g. after a server restart: its finished runs are read back from disk
            found = sessions[token] = new_session(token, registry().restore(token))
        if found is None:
            token = secrets.token_hex(16)
            found = sessions[token] = new_session(token)
    st.query_params["s"] = token
    st.session_state[KEY] = found
    return found


def pick_finished_run(s: StudioSession, key: str) -> tuple[JobSnapshot, Run]:
    """A selectbox of this session's finished runs (latest first chosen) and the loaded run;
    stops the page with a hint when there is none yet, or with the error when it is damaged."""
    snaps = [j.snapshot() for j in (registry().get(i, s.owner) for i in s.job_ids) if j is not None]
    done = [d for d in snaps if d.status == "done"]
    if not done:
        st.info("Runs still training appear here when they finish." if s.job_ids else "Train a model on the Train page first.")
        st.stop()

    names = {d.id: run_label(s.job_ids.index(d.id) + 1, d.status, d.metrics) for d in done}
    pick = st.selectbox("Run", list(names), index=len(names) - 1, format_func=names.get, key=key)
    snap = next(d for d in done if d.id == pick)
    try:
        return snap, load_run(snap.run_dir)
    except StudioError as exc:
        st.error(str(exc))
        st.stop()
