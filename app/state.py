"""The studio's one session object and the process-wide resources it points to.

Everything a page needs lives in one typed ``StudioSession`` under one ``session_state`` key.
Workspaces, the job registry and the job cap live in the engine's ``hub`` (module-level, so no
client message such as ``clear_cache`` can wipe them), keyed by an unguessable owner token kept
in the URL: a browser refresh re-attaches to the same tables and runs, and another session
cannot reach them without the token.  Tokens are issued by the server only; an unknown token is
accepted only when its runs are on disk (the server restarted) and is never created on request.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
from plain import plain

from studio_core.common.errors import StudioError
from studio_core.compare.leaderboard import kind_of
from studio_core.compare.slices import SliceBoard
from studio_core.data.workspace import Bounds, Workspace
from studio_core.features.suggest import Suggestion
from studio_core.jobs.hub import Hub, hub
from studio_core.jobs.tasks import Slots, Task, TaskSnapshot
from studio_core.jobs.training import JobRegistry, configure_threads, run_metrics
from studio_core.jobs.tune_job import TuneJob
from studio_core.runs.lightgbm_run import LightGBMRun
from studio_core.runs.results import run_label
from studio_core.runs.store import Run, load_run, load_scorer
from studio_core.spec.schema import Spec

os.umask(0o077)  # everything the server writes (uploads, spill files, runs) is readable by its own user only
KEY = "studio"
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data"
BASELINE_KINDS = ("LightGBM", "constant")  # runs written with a "kind": yardsticks on the Compare page
TOKEN = re.compile(r"[0-9a-f]{32}")


@dataclass
class StudioSession:
    owner: str
    base: Workspace  # the session's DuckDB database; pages reach it through ``ws``
    spool: Path  # the only folder (besides the samples) this session's DuckDB may read: uploads and spill files
    table: str = ""
    spec: Spec | None = None
    suggestion: Suggestion | None = None
    job_ids: list[str] = field(default_factory=list)
    selected_job: str = ""
    polling: str = ""  # the job whose live view is polling
    explain_jobs: dict[str, Task] = field(default_factory=dict)  # run id -> its latest SHAP task
    exports: dict[str, Task] = field(default_factory=dict)  # run id -> its latest bundle export
    predicts: dict[str, Task] = field(default_factory=dict)  # run id (or "bundle") -> its latest scoring of a table
    tune: TuneJob | None = None  # the latest tuning search
    compared: list[str] = field(default_factory=list)  # finished runs the Compare page has offered (later ones join its selection)
    report: tuple[str, bytes] | None = None  # the Compare page's last built report: (what it shows, the HTML)
    slices: tuple[str, SliceBoard] | None = None  # the Compare page's last slice board: (what it shows, the SliceBoard)
    last_seen: float = field(default_factory=time.time)
    closed: bool = False  # released after being idle: a returning tab gets a fresh session for its token
    slow_tables: set[str] = field(default_factory=set)  # tables whose row count ran past the query timeout
    uploads: int = 0  # bumps the uploader's key once files are spooled: the browser's copies are let go
    database: Path | None = None  # the DuckDB file holding the tables (see ``workspace_file``)
    notice: str = ""  # said once on the next page (e.g. the saved tables could not be opened)
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

    def disk_used(self) -> int:
        """Bytes of the session's disk: its tables' database file, uploads and DuckDB's spill files."""
        kept = [self.database, self.database.with_name(self.database.name + ".wal")] if self.database else []
        return sum(f.stat().st_size for f in self.spool.rglob("*") if f.is_file()) + sum(f.stat().st_size for f in kept if f.is_file())

    def close(self) -> None:
        """Close the session's connection (its tables stay in its database file) and delete its
        folder of uploads and spill files."""
        self.closed = True
        try:
            self.base.con.close()
        except Exception:  # noqa: BLE001 - already closed, or in use by a job that is stopping
            pass
        shutil.rmtree(self.spool, ignore_errors=True)


def slots() -> Slots:
    """Server-wide cap on heavy background work (training, explanations, exports): the rest
    queue.  Torch's intra-op threads are split between the slots so concurrent jobs do not
    oversubscribe the cores (the setting is process-wide)."""
    server = hub()
    if server.threads_set != server.slots.capacity:  # once per server, not on every page run
        configure_threads(server.slots.capacity)
        server.threads_set = server.slots.capacity
    return server.slots


def registry() -> JobRegistry:
    return hub().registry


def new_session(token: str, job_ids: list[str] | None = None, server: Hub | None = None) -> StudioSession:
    """A session with its own sandboxed DuckDB: one thread, bounded memory, its own folder for
    uploads and spill files (inside its sandbox, so no other session can list or read them) with
    a disk budget, reads only that folder and the samples, configuration locked, every query
    and every load timed out."""
    server = server or hub()
    lim = server.limits
    spool = server.uploads_root / token
    spool.mkdir(parents=True, exist_ok=True, mode=0o700)
    (spool / "spill").mkdir(exist_ok=True, mode=0o700)
    bounds = Bounds(max_load_bytes=lim.session_disk_bytes, load_timeout_s=lim.load_timeout_s, max_temp_bytes=lim.session_disk_bytes)
    database = workspace_file(server, token)
    options = dict(threads=1, memory_limit=lim.session_memory, allowed_dirs=[spool, SAMPLE_DIR], query_timeout_s=lim.query_timeout_s,
                   temp_directory=spool / "spill", bounds=bounds)
    notice = ""
    try:
        ws = Workspace(**options, database=database)
    except Exception as exc:  # noqa: BLE001 - a damaged or locked file must not cost the user the session
        ws = Workspace(**options)
        notice = (f"This session's saved tables could not be opened ({str(exc).splitlines()[0][:160]}); it starts with no tables. "
                  "Your runs are still listed; load your data again.")
    return StudioSession(token, ws, spool, job_ids=list(job_ids or []), database=database, notice=notice)


def workspace_file(server: Hub, token: str) -> Path:
    """The session's DuckDB database beside its runs, so its tables survive a refresh, an idle
    release and a server restart (spill files and uploads stay in the session's own folder)."""
    folder = server.runs_root / token
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / ".workspace.duckdb"


def release(s: StudioSession) -> None:
    """Free an abandoned session: cancel its training, explanation and export jobs, delete its
    folder and drop its tables.  Finished runs stay on disk for its token."""
    s.closed = True
    for job in registry().owned(s.owner):
        if job.snapshot().active:
            job.cancel()
    for task in [*s.explain_jobs.values(), *s.exports.values(), *s.predicts.values(), *([s.tune.task] if s.tune else [])]:
        task.cancel()
    s.close()


def sweep_idle(sessions: dict[str, StudioSession], now: float) -> list[str]:
    """Release every session idle for longer than the session lifetime; returns their tokens."""
    server = hub()
    gone = [token for token, s in sessions.items() if now - s.last_seen > server.limits.session_ttl_s]
    for token in gone:
        release(sessions.pop(token))
        server.clients.pop(token, None)
        server.browsers.pop(token, None)
    return gone


def _client() -> str:
    try:
        ip = st.context.ip_address
        local = st.context.url is not None and type(st.context.url) is str
    except Exception:  # noqa: BLE001 - no request context
        return ""
    if ip is None and local:
        return "localhost"  # Streamlit reports 127.0.0.1 and ::1 as None
    return ip if type(ip) is str else ""  # AppTest hands out mocks


def _browser() -> str:
    """A key of the browser the request comes from: a hash of the token in Streamlit's XSRF
    cookie (tornado's ``2|mask|masked|time`` form unmasked), '' when there is none (tests).  A
    session's link opened in another browser does not join it, so nobody can be fixed into a
    session someone else made and sent as a link."""
    import binascii
    import hashlib

    try:
        raw = st.context.cookies.get("_streamlit_xsrf", "")
    except Exception:  # noqa: BLE001 - no request context
        return ""
    if type(raw) is not str or not raw:  # AppTest hands out mocks
        return ""
    parts = raw.split("|")
    try:
        mask, masked = binascii.a2b_hex(parts[1]), binascii.a2b_hex(parts[2])
        raw = bytes(a ^ b for a, b in zip(mask * (len(masked) // max(1, len(mask)) + 1), masked)).hex()
    except (IndexError, binascii.Error, ValueError):
        pass
    return hashlib.sha256(raw.encode()).hexdigest() if raw else ""


def session() -> StudioSession:
    """This browser session's state, re-attached after a refresh through ``?s=<token>``."""
    current = st.session_state.get(KEY)
    if current is not None and not current.closed:
        current.touch()
        if st.query_params.get("s") != current.owner:
            st.query_params["s"] = current.owner  # page switches drop query params; keep the token
        return current
    server = hub()
    if current is not None:  # released while idle: same token, runs and tables read back
        st.query_params["s"] = current.owner
        st.warning(f"This session was idle for over {server.limits.session_ttl_s / 3600:g} h: its running jobs were stopped. "
                   "Its tables and finished runs are still here.")
    token = st.query_params.get("s", "")
    with server.lock:
        sweep_idle(server.sessions, time.time())
        found = server.sessions.get(token) if token else None
        browser, bound = _browser(), server.browsers.get(token, "")
        if found is not None and browser and bound and browser != bound:
            found, token = None, ""  # another browser's session: this one gets its own
        if found is None:
            problem = server.admission_problem(_client())
            if problem:
                st.error(f"No new session: {problem}.")
                st.stop()
            # an unknown token is taken only when it owns runs on disk (a server restart); any
            # other is replaced by a fresh server-issued one, so nobody can be fixed into a chosen session
            if not (TOKEN.fullmatch(token) and (server.runs_root / token).is_dir()):
                token = secrets.token_hex(16)
            found = server.sessions[token] = new_session(token, server.registry.restore(token), server)
            server.clients[token] = _client()
        if browser and not server.browsers.get(token):
            server.browsers[token] = browser
    st.query_params["s"] = token
    st.session_state[KEY] = found
    if found.notice:
        st.warning(found.notice)
        found.notice = ""
    return found


def pick_finished_run(s: StudioSession, key: str, baselines: bool = False) -> tuple[TaskSnapshot, Run | LightGBMRun]:
    """A selectbox of this session's finished runs (latest first chosen) and the loaded run;
    stops the page with a hint when there is none yet, or with the error when it is damaged.
    ``baselines``: a LightGBM baseline comes back loaded (it scores rows and has its stored test
    rows), for a page that can use it; elsewhere it is refused with the reason."""
    snaps = [j.snapshot() for j in (registry().get(i, s.owner) for i in s.job_ids) if j is not None]
    done = [d for d in snaps if d.status == "done"]
    if not done:
        st.info("Runs still training appear here when they finish." if s.job_ids else "Train a model on the Train page first.")
        st.stop()

    names = {d.id: run_label(s.job_ids.index(d.id) + 1, d.status, run_metrics(d)) for d in done}
    networks = [i for i, d in enumerate(done) if run_metrics(d).get("kind") not in BASELINE_KINDS]
    pick = st.selectbox("Run", list(names), index=networks[-1] if networks else len(names) - 1, format_func=names.get, key=key,
                        help="The latest network is chosen first: a baseline trained after it is a yardstick, not the model")
    snap = next(d for d in done if d.id == pick)
    try:
        run = load_scorer(snap.result.run_dir) if baselines else load_run(snap.result.run_dir)
    except StudioError as exc:
        st.error(plain(str(exc)))
        st.stop()
    st.caption(f"{kind_of(run.spec, run.metrics)} run")  # an ablation or baseline is never read as the full model
    return snap, run
