"""What-if: score and explain one edited row live, against a fixed background.

The studio's demo loop: pick a row, change a value, and see the score, its wide/deep split and
the SHAP bars move.  One row costs ``max_evals x background`` model rows (~30k), a fraction of a
second, so it runs in the page rather than as a job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from studio_core.explain.contributions import ScoreParts, score_parts
from studio_core.explain.shap_values import Explanation, encode_rows, explain_codes, feature_columns, frame_source
from studio_core.features.preprocess import ColumnCodes
from studio_core.runs.store import Run


def categories(run: Run, column: str, limit: int = 200) -> list[str] | None:
    """The values a categorical column was trained on (most frequent first), or None when the
    column is numeric or hashed (any text is accepted then)."""
    enc = run.preprocessor.encoders_.get(f"cat:{column}")
    vocab = getattr(enc, "vocabulary_", None)
    return [str(v) for v in vocab[:limit]] if vocab is not None else None


def known_values(run: Run, column: str) -> frozenset[str] | None:
    """Every training category of a column as a set, built once per encoder (what-if checks each
    input on every page run); None for numeric or hashed columns."""
    enc = run.preprocessor.encoders_.get(f"cat:{column}")
    if getattr(enc, "vocabulary_", None) is None:
        return None
    if getattr(enc, "_known", None) is None:  # underscore-first: not part of the encoder's saved state
        enc._known = frozenset(str(v) for v in enc.vocabulary_)
    return enc._known


def is_text(run: Run, column: str) -> bool:
    """Whether a column is free text (the what-if editor gives it a text box)."""
    return any(t.name == column and t.kind == "text" for t in run.preprocessor.features.text)


def is_numeric(run: Run, column: str) -> bool:
    return column in {f.name for f in run.preprocessor.features.numeric}


def training_range(run: Run, column: str) -> tuple[float, float] | None:
    """The (min, max) of a numeric column on the training rows, where the run kept it (runs
    trained before it was stored keep only bucket boundaries: their ends are given then)."""
    enc = run.preprocessor.encoders_.get(f"std:{column}")
    if enc is not None and getattr(enc, "min_", None) is not None:
        return float(enc.min_), float(enc.max_)
    bounds = getattr(run.preprocessor.encoders_.get(f"bkt:{column}"), "boundaries_", None)
    return (float(bounds[0]), float(bounds[-1])) if bounds else None


def input_hint(run: Run, column: str, value: Any) -> str | None:
    """A warning for a what-if value the model has not seen: a number outside the training
    range, or a category not in the training vocabulary (scored as 'unseen')."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and not value.strip()):
        return None
    if is_numeric(run, column):
        span = training_range(run, column)
        x = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
        if pd.isna(x):
            return "not a number: scored as missing"
        if span and not span[0] <= x <= span[1]:
            return f"outside the training range {span[0]:g} to {span[1]:g}: the model extrapolates"
        return None
    known = known_values(run, column)
    if known is not None and str(value) not in known:
        return "unseen in training: scored as 'unseen'"
    return None


def typical_row(outputs: np.ndarray) -> int:
    """The explained row whose output is closest to the median: a fair first what-if row (the
    first row can be an extreme one)."""
    return int(np.argmin(np.abs(outputs - np.median(outputs)))) if len(outputs) else 0


def row_matches(data: pd.DataFrame, columns: Sequence[str], query: str) -> list[int]:
    """Rows whose value in *any* column contains ``query`` (case-insensitive), in order."""
    if not query.strip():
        return list(range(len(data)))
    q = query.strip().lower()
    hit = np.zeros(len(data), dtype=bool)
    for c in columns:
        if c in data:
            hit |= data[c].astype(str).str.lower().str.contains(q, regex=False).to_numpy()
    return [int(i) for i in np.flatnonzero(hit)]


def clean_row(run: Run, row: dict[str, Any]) -> pd.DataFrame:
    """One-row frame of the run's feature columns: numbers as float (NaN = missing), text as
    str (None = missing); anything unparsable as a number becomes missing."""
    out = {}
    for c in feature_columns(run):
        v = row.get(c)
        missing = v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip())
        if is_numeric(run, c):
            out[c] = [np.nan if missing else float(pd.to_numeric(pd.Series([v]), errors="coerce").iloc[0])]
        else:
            out[c] = pd.Series([None if missing else str(v)], dtype=object)
    return pd.DataFrame(out)


def explain_row(run: Run, row: dict[str, Any], background: ColumnCodes, seed: int = 0, class_index: int = 0) -> tuple[Explanation, ScoreParts]:
    """SHAP values and the wide/deep split of one raw row (a dict of column -> value); a
    multiclass run's of class ``class_index``."""
    codes, data = encode_rows(run, frame_source(clean_row(run, row)))
    return explain_codes(run, codes, data, background, seed=seed, class_index=class_index), score_parts(run, codes, data, 0, class_index)
