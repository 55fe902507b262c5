"""Partial dependence and ICE curves of one column, in one batched pass.

For a grid of values of a column (numeric: quantiles of the rows' own values; categorical: the
most frequent training categories), every row is scored with that column set to each grid value
and every other column as it is -- ``rows x grid`` rows through the run's own preprocessing and
model in one batch.  Each row's curve is its ICE (individual conditional expectation) curve; the
mean over the rows is the partial dependence.  Scores are on the prediction's scale: the
probability of the positive class, or the label's value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from studio_core.common.errors import StudioError
from studio_core.explain.shap_values import RowFunction, encode_rows, feature_columns, frame_source
from studio_core.explain.whatif import categories, is_numeric
from studio_core.runs.store import Run

GRID_POINTS, CATEGORIES = 20, 15


def grid_for(run: Run, data: pd.DataFrame, column: str, points: int = GRID_POINTS) -> list:
    """The values a column is set to: distinct quantiles (2nd to 98th percentile) of the rows'
    values for a numeric column, the most frequent training categories for a categorical one."""
    if is_numeric(run, column):
        x = pd.to_numeric(data[column], errors="coerce").dropna()
        if x.empty:
            raise StudioError(f"{column} has no values among these rows to vary")
        return sorted({float(v) for v in np.quantile(x, np.linspace(0.02, 0.98, points))})
    known = categories(run, column, CATEGORIES)
    if known is None:  # a hashed column: its most frequent values among the rows
        known = [str(v) for v in data[column].dropna().astype(str).value_counts().index[:CATEGORIES]]
    return known


def dependence(run: Run, data: pd.DataFrame, column: str, points: int = GRID_POINTS, class_index: int = 0) -> pd.DataFrame:
    """One row per (row, grid value): ``row``, ``value``, ``prediction``; ``data`` holds the rows'
    raw feature values (an explanation's ``data``).  Multiclass: class ``class_index``'s probability."""
    if column not in feature_columns(run):
        raise StudioError(f"{column!r} is not a feature column of this run")
    rows = data[feature_columns(run)].reset_index(drop=True)
    if rows.empty:
        raise StudioError("no rows to compute the curves on; explain some rows first")
    grid = grid_for(run, data, column, points)
    values = np.tile(np.asarray(grid, dtype=object), len(rows))
    frame = rows.loc[rows.index.repeat(len(grid))].reset_index(drop=True)
    frame[column] = pd.Series(values, dtype=float if is_numeric(run, column) else object)
    codes, _ = encode_rows(run, frame_source(frame))
    columns = feature_columns(run)
    f = RowFunction(run, codes, columns, class_index)
    index = np.repeat(np.arange(codes.n)[:, None], len(columns), axis=1)
    task = run.preprocessor.task
    if task == "multiclass":
        prediction = run.preprocessor.decode_label(f.raw(codes.mix(columns, index)))[:, class_index]
    else:
        out = f(index)
        prediction = run.preprocessor.decode_label(out) if task == "binary" else out
    return pd.DataFrame({"row": np.repeat(np.arange(len(rows)), len(grid)), "value": values, "prediction": prediction})


def partial_dependence(curves: pd.DataFrame) -> pd.DataFrame:
    """The mean ICE curve: one row per grid value, in grid order."""
    order = {v: i for i, v in enumerate(dict.fromkeys(curves.value))}
    pd_ = curves.groupby("value", sort=False).prediction.mean().reset_index()
    return pd_.assign(order=pd_.value.map(order)).sort_values("order").drop(columns="order").reset_index(drop=True)
