"""SHAP explanations as a background ``Task`` (progress, cancel, queued behind the server cap).

The task re-creates the run's split in its own DuckDB cursor, picks validation rows to explain
and training rows as background (seeded, so the same rows every time), and returns the encoded
background with the explanation so single edited rows (what-if) are explained against the same
reference.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from studio_core.common.errors import SplitMismatch, StudioError, data_not_loaded
from studio_core.data.workspace import Workspace
from studio_core.explain.shap_values import DEFAULT_BACKGROUND, DEFAULT_ROWS, Explanation, encode_background, explain, sample_relation
from studio_core.features.preprocess import ColumnCodes
from studio_core.jobs.tasks import Report, Slots, Task
from studio_core.runs.lightgbm_run import LightGBMRun
from studio_core.runs.store import Run


@dataclass(frozen=True)
class ExplainResult:
    explanation: Explanation
    background: ColumnCodes | None  # None for a LightGBM baseline (TreeSHAP needs no background sample)


def explain_task(run: Run | LightGBMRun, ws: Workspace, rows: int = DEFAULT_ROWS, background: int = DEFAULT_BACKGROUND, seed: int = 0,
                 slots: Slots | None = None, class_index: int = 0) -> Task:
    """A started task explaining ``rows`` validation rows of ``run`` (``ws`` must be a fork the
    task may use on its thread); a multiclass run's scores of class ``class_index``."""

    def work(report: Report, stop: threading.Event) -> ExplainResult:
        from studio_core.data.split import split_for

        report(0, rows, "preparing rows")
        try:
            try:
                split = split_for(ws, run.spec, run.metrics)
            except SplitMismatch:
                raise
            except StudioError as exc:
                plain = data_not_loaded(run.spec.data.table, run.spec.data.sql, ws.tables(), "to explain its validation rows")
                if plain is None:
                    raise
                raise plain from exc
            try:
                picked = sample_relation(split.val, rows, seed)
                if isinstance(run, LightGBMRun):  # a LightGBM baseline: exact TreeSHAP, no background sample
                    from studio_core.explain.lightgbm_shap import lightgbm_explanation

                    report(0, rows, "explaining rows")
                    return ExplainResult(lightgbm_explanation(run, picked, class_index), None)
                codes_b = encode_background(run, sample_relation(split.train, background, seed + 1))
                report(0, rows, "explaining rows")  # the pace (and so the ETA) counts from here
                result = explain(run, picked, codes_b, seed=seed, progress=lambda d, t: report(d, t, "explaining rows"), stop_event=stop,
                                 class_index=class_index)
            finally:
                split.drop()  # the rows' copies go; the task's result keeps what it needs
        finally:
            ws.con.close()  # and so does the task's cursor
        return ExplainResult(result, codes_b)

    return Task("explain", work, slots, on_cancel=ws.con.interrupt).start()
