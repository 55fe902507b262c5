"""Scoring a table with a run or a bundle, as a background ``Task`` (the Predict page).

The rows stay in the session's workspace; the task reads them through its own cursor, refuses
renamed or mostly missing feature columns as ``predict`` does (unless allowed), and returns a
preview, a summary of the scores and a CSV of the rows with a ``prediction`` column appended --
bounded in bytes, since a served studio holds it in memory until it is downloaded.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from studio_core.common.errors import Cancelled, StudioError
from studio_core.common.predictions import prediction_columns
from studio_core.data.workspace import Table, Workspace
from studio_core.jobs.tasks import Report, Slots, Task

MAX_CSV_BYTES = 200 * 2**20  # a download held in the server's memory: larger tables are scored with `wdstudio predict`
PREVIEW_ROWS = 100


class Scorer(Protocol):
    def predict(self, table: Table, *, allow_missing: bool = False) -> tuple[np.ndarray, list[str]]: ...


@dataclass(frozen=True)
class Predicted:
    rows: int
    preview: pd.DataFrame  # the first rows with their prediction, the prediction first
    csv: bytes | None  # every row with its prediction; None when over MAX_CSV_BYTES
    note: str  # why there is no CSV, else ""
    warnings: tuple[str, ...]
    summary: dict[str, float]  # mean, min, max of the predictions (and the share >= 0.5 for binary)


def summarize(predictions: np.ndarray, task: str, classes: Sequence[str] = ()) -> dict[str, float]:
    p = np.asarray(predictions, dtype=np.float64)
    if not len(p):
        return {}
    if task == "multiclass":  # how often each class is the most likely one
        said = np.bincount(p.reshape(len(p), -1).argmax(axis=1), minlength=len(classes)) / len(p)
        return {f"share predicted {c}": float(s) for c, s in zip(classes, said)}
    out = {"mean": float(p.mean()), "min": float(p.min()), "max": float(p.max())}
    if task == "binary":
        out["share at or above 0.5"] = float((p >= 0.5).mean())
    return out


def with_predictions(frame: pd.DataFrame, predictions: np.ndarray, task: str = "binary", classes: Sequence[str] = ()) -> pd.DataFrame:
    """The rows with the prediction columns first (``common.predictions``; an input column of
    the same name is kept with the suffix ``_input``)."""
    cols = prediction_columns(task, predictions, classes)
    frame = frame.rename(columns={c: f"{c}_input" for c in cols if c in frame})
    return pd.concat([pd.DataFrame(cols, index=frame.index), frame], axis=1)


def predict_table(scorer: Any, ws: Workspace, table: str, task: str, allow_missing: bool = False,
                  stop: threading.Event | None = None) -> Predicted:
    """Score every row of ``table`` (in order) with a ``Run`` or a ``Bundle``."""
    t = ws.table(table)
    predictions, warnings = scorer.predict(t, allow_missing=allow_missing)
    if stop is not None and stop.is_set():
        raise Cancelled()
    n = len(predictions)
    classes = list(getattr(scorer.preprocessor, "classes_", []))
    preview = with_predictions(ws.con.sql(f"SELECT * FROM {t.ref} LIMIT {PREVIEW_ROWS}").df(), predictions[:PREVIEW_ROWS], task, classes)
    csv, note = None, ""
    per_row = max(1.0, len(preview.to_csv(index=False).encode()) / max(len(preview), 1))
    if per_row * n > MAX_CSV_BYTES:
        note = (f"the scored rows would be about {per_row * n / 2**20:,.0f} MB of CSV, more than the {MAX_CSV_BYTES / 2**20:.0f} MB a "
                "download may hold here; score the file with `wdstudio predict` (or `wdstudio score` and a bundle)")
    else:
        buf = io.StringIO()
        with_predictions(ws.con.sql(f"SELECT * FROM {t.ref}").df(), predictions, task, classes).to_csv(buf, index=False)
        csv = buf.getvalue().encode()
        if len(csv) > MAX_CSV_BYTES:
            csv, note = None, f"the scored rows are {len(csv) / 2**20:,.0f} MB of CSV, more than the {MAX_CSV_BYTES / 2**20:.0f} MB a download may hold here"
    return Predicted(n, preview, csv, note, tuple(warnings), summarize(predictions, task, classes))


def predict_task(scorer: Any, ws: Workspace, table: str, task: str, allow_missing: bool = False, slots: Slots | None = None) -> Task:
    """A started task scoring ``table`` (``ws`` must be a fork the task may use on its thread)."""

    def work(report: Report, stop: threading.Event) -> Predicted:
        report(0, 1, "scoring rows")
        try:
            if table not in ws.tables():
                raise StudioError(f"table {table!r} is not loaded; load it on the Data page")
            return predict_table(scorer, ws, table, task, allow_missing, stop)
        finally:
            ws.con.close()

    return Task("predict", work, slots, on_cancel=ws.con.interrupt).start()
