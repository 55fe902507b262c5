"""SHAP explanations on a background thread, observed through immutable snapshots (like training).

The job re-creates the run's split in its own DuckDB cursor, picks validation rows to explain
and training rows as background (seeded, so the same rows every time), and keeps the encoded
background so single edited rows (what-if) are explained against the same reference.
"""

from __future__ import annotations

import secrets
import threading
import time
import traceback
from dataclasses import dataclass

from .errors import Cancelled, StudioError
from .explain import DEFAULT_BACKGROUND, DEFAULT_ROWS, Explanation, encode_background, explain_codes, raw_rows, sample_relation
from .preprocess import ColumnCodes
from .runs import Run
from .workspace import Workspace


@dataclass(frozen=True)
class ExplainSnapshot:
    id: str
    run_id: str
    status: str  # "running" | "done" | "failed" | "cancelled"
    done: int
    total: int
    error: str = ""
    result: Explanation | None = None
    background: ColumnCodes | None = None
    started: float = 0.0
    finished: float | None = None

    @property
    def active(self) -> bool:
        return self.status == "running"


class ExplainJob:
    def __init__(self, run_id: str, run: Run, ws: Workspace, rows: int = DEFAULT_ROWS, background: int = DEFAULT_BACKGROUND, seed: int = 0):
        self.id, self.run_id, self.run = secrets.token_hex(8), run_id, run
        self._ws, self._rows, self._background, self._seed = ws, int(rows), int(background), int(seed)
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._status, self._done, self._total, self._error = "running", 0, int(rows), ""
        self._result: Explanation | None = None
        self._codes_b: ColumnCodes | None = None
        self._started, self._finished = time.time(), None
        self._thread = threading.Thread(target=self._work, name=f"explain-{self.id}", daemon=True)

    def start(self) -> ExplainJob:
        self._thread.start()
        return self

    def _progress(self, done: int, total: int) -> None:
        with self._lock:
            self._done, self._total = done, total

    def _work(self) -> None:
        from .split import make_split

        result, error = None, ""
        try:
            try:
                split = make_split(self._ws, self.run.spec.data)
            except StudioError as exc:
                raise StudioError(f"the run's data is not loaded in this session ({exc}); load table {self.run.spec.data.table!r} first") from None
            rows = sample_relation(split.val, self._rows, self._seed)
            codes_b = encode_background(self.run, sample_relation(split.train, self._background, self._seed + 1))
            with self._lock:
                self._codes_b = codes_b
            prep = self.run.preprocessor
            codes_r = prep.encode_columns(rows)
            with self._lock:
                self._total = codes_r.n
            result = explain_codes(self.run, codes_r, raw_rows(rows, prep._input_columns()), codes_b, seed=self._seed,
                                   progress=self._progress, stop_event=self._stop)
            status = "done"
        except Cancelled:
            status = "cancelled"
        except StudioError as exc:
            status, error = "failed", str(exc)
        except Exception as exc:  # a bug: tell the user, keep the server alive
            status, error = "failed", f"unexpected error while explaining: {type(exc).__name__}: {exc}"
            traceback.print_exc()
        with self._lock:
            self._status, self._error, self._result, self._finished = status, error, result, time.time()

    def cancel(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def snapshot(self) -> ExplainSnapshot:
        with self._lock:
            return ExplainSnapshot(self.id, self.run_id, self._status, self._done, self._total, self._error, self._result,
                                   self._codes_b, self._started, self._finished)
