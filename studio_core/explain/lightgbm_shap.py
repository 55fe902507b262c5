"""SHAP values of a LightGBM baseline, exact: LightGBM's own TreeSHAP (``pred_contrib``).

A baseline on the leaderboard raises the question "does it rely on the same columns as the
model?"; its SHAP values answer it on the same validation rows, in the same units (log-odds,
a class's raw score, or the label), so the Explain page and the report draw them with the same
charts.  Tree SHAP is exact and fast (no background sample: the trees' own cover statistics
stand in for it), so the values add up to the booster's raw output row by row.  Free-text
columns, which LightGBM does not read, are not among the columns.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from studio_core.common.errors import StudioError
from studio_core.data.source import Source
from studio_core.explain.shap_values import Explanation, columns_of, raw_rows


def lightgbm_explanation(run: Any, rows: Source, class_index: int = 0) -> Explanation:
    """TreeSHAP values of every row of ``rows`` for a ``LightGBMRun`` (a multiclass baseline's
    raw score of class ``class_index``)."""
    started = time.perf_counter()
    prep = run.preprocessor
    numeric, categorical = run.columns
    columns = numeric + categorical
    if not columns:
        raise StudioError("this baseline has no feature columns to explain")
    k = int(class_index) if prep.task == "multiclass" else 0
    if prep.task == "multiclass" and not 0 <= k < len(prep.classes_):
        raise StudioError(f"class index {class_index} is out of range: the baseline has {len(prep.classes_)} classes")
    have = columns_of(rows)
    frame = run.frame(rows, have)
    m = len(columns)
    if len(frame):
        contrib = np.asarray(run.booster.predict(frame[columns], pred_contrib=True), np.float64)
        if prep.task == "multiclass":  # one block of m + 1 per class: the columns, then the expected value
            contrib = contrib[:, k * (m + 1):(k + 1) * (m + 1)]
        values, base = contrib[:, :m], contrib[:, m]
    else:
        values, base = np.zeros((0, m)), np.zeros(0)
    outputs = values.sum(axis=1) + base
    name = f"logit of {prep.classes_[k]}" if prep.task == "multiclass" else "log-odds" if prep.task == "binary" else prep.label
    data = raw_rows(rows, columns).reset_index(drop=True)
    return Explanation(tuple(columns), values, float(base[0]) if len(base) else 0.0, outputs, data, name, time.perf_counter() - started)
