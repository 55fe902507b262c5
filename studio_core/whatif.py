"""What-if: score and explain one edited row live, against a fixed background.

The studio's demo loop: pick a row, change a value, and see the score, its wide/deep split and
the SHAP bars move.  One row costs ``max_evals x background`` model rows (~30k), a fraction of a
second, so it runs in the page rather than as a job.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .contributions import ScoreParts, score_parts
from .explain import Explanation, encode_rows, explain_codes, feature_columns, frame_source
from .preprocess import ColumnCodes
from .runs import Run


def categories(run: Run, column: str, limit: int = 200) -> list[str] | None:
    """The values a categorical column was trained on (most frequent first), or None when the
    column is numeric or hashed (any text is accepted then)."""
    enc = run.preprocessor.encoders_.get(f"cat:{column}")
    vocab = getattr(enc, "vocabulary_", None)
    return [str(v) for v in vocab[:limit]] if vocab is not None else None


def is_numeric(run: Run, column: str) -> bool:
    return column in {f.name for f in run.preprocessor.features.numeric}


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


def explain_row(run: Run, row: dict[str, Any], background: ColumnCodes, seed: int = 0) -> tuple[Explanation, ScoreParts]:
    """SHAP values and the wide/deep split of one raw row (a dict of column -> value)."""
    codes, data = encode_rows(run, frame_source(clean_row(run, row)))
    return explain_codes(run, codes, data, background, seed=seed), score_parts(run, codes, data, 0)
