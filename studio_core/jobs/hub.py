"""Server-wide state of one studio process: the job cap, the job registry, the sessions and the
limits that bound them.

It lives in a module-level object owned by the engine, not in a UI framework's cache: Streamlit
clears ``st.cache_resource`` when any websocket client sends ``clear_cache`` (no token needed),
which once wiped every session's tables, orphaned running jobs and lifted the job cap.  Nothing a
client sends reaches this object except through the studio's own pages.

Each server process keeps its sessions' upload and spill folders under ``uploads/server-<pid>``;
at start it removes the folders of server processes that are no longer alive (a crash leaves
them behind, with users' rows in DuckDB's spill files).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio_core.jobs.tasks import Slots
from studio_core.jobs.training import JobRegistry


def _env_int(name: str, default: int) -> int:
    try:
        return int(float(os.environ.get(name, default)))
    except ValueError:
        return default


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class Limits:
    """Every bound of a served studio, read once from the environment (the README lists them)."""

    max_jobs: int = 2  # WDSTUDIO_MAX_JOBS: heavy jobs running at once, server-wide (the rest queue)
    jobs_per_session: int = 3  # WDSTUDIO_SESSION_JOBS: queued + running jobs of one session
    max_sessions: int = 64  # WDSTUDIO_MAX_SESSIONS: live sessions, server-wide
    sessions_per_client: int = 8  # WDSTUDIO_SESSIONS_PER_CLIENT: live sessions of one client address
    session_memory: str = "4GB"  # WDSTUDIO_SESSION_MEMORY: DuckDB memory_limit of each session
    session_disk_bytes: int = 20 * 2**30  # WDSTUDIO_SESSION_DISK: uploads + DuckDB spill of one session
    query_timeout_s: float = 30.0  # WDSTUDIO_QUERY_TIMEOUT_S: every query run for a page
    load_timeout_s: float = 300.0  # WDSTUDIO_LOAD_TIMEOUT_S: loading one file
    data_timeout_s: float = 900.0  # WDSTUDIO_DATA_TIMEOUT_S: a job's data stage (split, fit, tensors)
    session_ttl_s: float = 2 * 3600.0  # WDSTUDIO_SESSION_TTL_S: idle this long, a session is released
    first_run_ablations: bool = True  # WDSTUDIO_FIRST_RUN_ABLATIONS=0: the Train page's ablations switch starts off

    @classmethod
    def from_env(cls) -> Limits:
        d = cls()
        return cls(
            max_jobs=max(1, _env_int("WDSTUDIO_MAX_JOBS", d.max_jobs)),
            jobs_per_session=max(1, _env_int("WDSTUDIO_SESSION_JOBS", d.jobs_per_session)),
            max_sessions=max(1, _env_int("WDSTUDIO_MAX_SESSIONS", d.max_sessions)),
            sessions_per_client=max(1, _env_int("WDSTUDIO_SESSIONS_PER_CLIENT", d.sessions_per_client)),
            session_memory=os.environ.get("WDSTUDIO_SESSION_MEMORY", d.session_memory),
            session_disk_bytes=_env_int("WDSTUDIO_SESSION_DISK", d.session_disk_bytes),
            query_timeout_s=_env_float("WDSTUDIO_QUERY_TIMEOUT_S", d.query_timeout_s),
            load_timeout_s=_env_float("WDSTUDIO_LOAD_TIMEOUT_S", d.load_timeout_s),
            data_timeout_s=_env_float("WDSTUDIO_DATA_TIMEOUT_S", d.data_timeout_s),
            session_ttl_s=_env_float("WDSTUDIO_SESSION_TTL_S", d.session_ttl_s),
            first_run_ablations=os.environ.get("WDSTUDIO_FIRST_RUN_ABLATIONS", "1").strip().lower() not in ("0", "false", "no", "off"),
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_spools(root: Path, keep: Path) -> list[Path]:
    """Delete ``root/server-<pid>`` folders of processes that are gone (and the flat folders of
    earlier versions); returns what was removed."""
    removed = []
    for d in root.glob("*") if root.is_dir() else []:
        if d == keep or not d.is_dir():
            continue
        if d.name.startswith("server-"):
            try:
                if _alive(int(d.name[len("server-"):])):
                    continue
            except ValueError:
                pass
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


@dataclass
class Hub:
    """The process's studio state; see the module docstring."""

    limits: Limits
    runs_root: Path
    uploads_root: Path  # this process's folder: one sub-folder per session
    slots: Slots = field(init=False)
    registry: JobRegistry = field(init=False)
    sessions: dict[str, Any] = field(default_factory=dict)  # token -> the UI's session object
    clients: dict[str, str] = field(default_factory=dict)  # token -> client address
    browsers: dict[str, str] = field(default_factory=dict)  # token -> key of the browser it belongs to
    lock: threading.RLock = field(default_factory=threading.RLock)
    threads_set: int = 0  # the job count torch's threads were last split for (the UI sets it on first use)

    def __post_init__(self) -> None:
        self.slots = Slots(self.limits.max_jobs)
        self.registry = JobRegistry(self.runs_root, self.slots, jobs_per_owner=self.limits.jobs_per_session,
                                    data_timeout_s=self.limits.data_timeout_s)

    def admission_problem(self, client: str) -> str:
        """Why a new session for ``client`` is refused ('' when it is admitted); call under ``lock``."""
        if len(self.sessions) >= self.limits.max_sessions:
            return (f"the studio has {len(self.sessions)} open sessions, its limit (WDSTUDIO_MAX_SESSIONS); "
                    "try again when someone leaves, or ask the admin to raise it")
        if client and sum(1 for c in self.clients.values() if c == client) >= self.limits.sessions_per_client:
            return (f"this address already has {self.limits.sessions_per_client} open sessions (WDSTUDIO_SESSIONS_PER_CLIENT); "
                    "reuse an open tab (its link keeps its session), or wait for idle ones to be released")
        return ""


_HUB: Hub | None = None
_HUB_LOCK = threading.Lock()


def hub() -> Hub:
    """This process's hub, created on first use from the environment."""
    global _HUB
    with _HUB_LOCK:
        if _HUB is None:
            root = Path(os.environ.get("WDSTUDIO_UPLOADS", Path(tempfile.gettempdir()) / "wdstudio-uploads"))
            mine = root / f"server-{os.getpid()}"
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            remove_stale_spools(root, keep=mine)
            mine.mkdir(exist_ok=True, mode=0o700)
            _HUB = Hub(Limits.from_env(), Path(os.environ.get("WDSTUDIO_RUNS", "runs/studio")), mine)
        return _HUB


def reset_hub() -> None:
    """Forget every session and job, as a server restart does (tests; nothing on disk is touched
    except this process's session folders)."""
    global _HUB
    with _HUB_LOCK:
        old, _HUB = _HUB, None
    if old is not None:
        for s in list(old.sessions.values()):
            close = getattr(s, "close", None)
            if close is not None:
                close()
        shutil.rmtree(old.uploads_root, ignore_errors=True)
