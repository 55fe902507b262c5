"""SHAP importance for a report: a few hundred of a run's own validation rows explained against
training rows, seeded (the same rows every time), as the Explain page does."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from studio_core.data.workspace import Workspace

REPORT_ROWS, REPORT_BACKGROUND = 200, 100


def shap_importance(run_dir: str | Path, ws: Workspace, table: str | None = None, rows: int = REPORT_ROWS,
                    background: int = REPORT_BACKGROUND, seed: int = 0) -> tuple[pd.DataFrame, str, int]:
    """(mean |SHAP| per column, what was explained, rows explained) for the run at ``run_dir``,
    whose data ``ws`` holds (``table``: the name it was loaded under, when not the spec's)."""
    from studio_core.data.split import split_for
    from studio_core.explain.shap_values import encode_background, explain, output_name, sample_relation
    from studio_core.runs.store import load_run

    run = load_run(run_dir)
    spec = run.spec
    if table:
        spec.data.table = table
    split = split_for(ws, spec, run.metrics)  # refused, saying what changed, when the data gives other rows
    try:
        codes_b = encode_background(run, sample_relation(split.train, background, seed + 1))
        result = explain(run, sample_relation(split.val, rows, seed), codes_b, seed=seed)
    finally:
        split.drop()
    return result.importance(), output_name(run), len(result.values)
