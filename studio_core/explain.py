"""SHAP values per original column, from a model-agnostic explainer over raw rows.

The explainer (``shap.PermutationExplainer`` with an independent masker) sees one feature per
*original* column, never an embedding dimension.  Masking column ``j`` of a row means taking
that column's value from a background row; because ``ColumnCodes`` keeps every column's
encodings apart, that is an index gather (no SQL per masked sample), and the model inputs --
crosses included -- are re-assembled from the mixed codes.  So a cross is credited to the
columns it is built from, and base value + sum of SHAP values equals the model's output.

Output explained: log-odds for binary runs (what the wide and deep parts add up to), the
prediction on the label's scale for regression.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .encoders import Source
from .errors import Cancelled, StudioError
from .preprocess import ColumnCodes
from .runs import Run, predict_raw
from .sqlutil import qi

DEFAULT_ROWS, DEFAULT_BACKGROUND = 200, 100
# shap's permutation explainer draws from NumPy's process-wide generator (it seeds it itself): one
# chunk of rows at a time holds it, re-seeded per chunk, so two explanations on two threads give
# the same values as each alone
_SHAP_RNG = threading.Lock()


@dataclass(frozen=True)
class Explanation:
    columns: tuple[str, ...]  # the original feature columns, in the order of ``values``
    values: np.ndarray  # (n, n_columns) SHAP values on the output scale
    base_value: float  # mean output over the background rows
    outputs: np.ndarray  # (n,) the model's output for each explained row
    data: pd.DataFrame  # the explained rows' raw feature values (plus __wd_row when known)
    output_name: str  # "log-odds" or the label's name
    seconds: float

    def importance(self) -> pd.DataFrame:
        """Global importance: mean |SHAP| per column, largest first."""
        mean_abs = np.abs(self.values).mean(axis=0) if len(self.values) else np.zeros(len(self.columns))
        df = pd.DataFrame({"feature": list(self.columns), "mean_abs_shap": mean_abs})
        return df.sort_values("mean_abs_shap", ascending=False, kind="stable").reset_index(drop=True)

    def long_frame(self) -> pd.DataFrame:
        """One row per (explained row, column): SHAP value, raw value and the value's
        percentile among the explained rows (numeric columns; NaN for text) -- the beeswarm."""
        n, m = self.values.shape
        pct = {}
        for c in self.columns:
            x = pd.to_numeric(self.data[c], errors="coerce") if c in self.data else pd.Series(np.nan, index=range(n))
            pct[c] = x.rank(pct=True).to_numpy() if x.notna().any() and not _is_text(self.data.get(c)) else np.full(n, np.nan)
        return pd.DataFrame({
            "row": np.repeat(np.arange(n), m),
            "feature": np.tile(list(self.columns), n),
            "shap": self.values.reshape(-1),
            "value": [_show(self.data[c].iloc[i]) if c in self.data else "" for i in range(n) for c in self.columns],
            "percentile": np.stack([pct[c] for c in self.columns], axis=1).reshape(-1) if m else np.zeros(0),
        })

    def waterfall_frame(self, i: int) -> pd.DataFrame:
        """Row ``i``'s contributions from the base value to its output, largest |SHAP| first."""
        vals = self.values[i]
        order = np.argsort(-np.abs(vals), kind="stable")
        start = self.base_value + np.concatenate([[0.0], np.cumsum(vals[order])[:-1]])
        return pd.DataFrame({
            "feature": [self.columns[j] for j in order],
            "value": [_show(self.data[self.columns[j]].iloc[i]) if self.columns[j] in self.data else "" for j in order],
            "shap": vals[order], "start": start, "end": start + vals[order],
        })


def _is_text(series: pd.Series | None) -> bool:
    return series is not None and not pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _show(v: object) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return "(missing)"
    return str(v)


class RowFunction:
    """f(index matrix) -> model output, where entry (k, j) says which pooled row column j of
    masked sample k comes from.  This is the function SHAP explains."""

    def __init__(self, run: Run, pool: ColumnCodes, columns: list[str]):
        self.run, self.pool, self.columns = run, pool, columns

    def __call__(self, index: np.ndarray) -> np.ndarray:
        codes = self.pool.mix(self.columns, np.asarray(index, dtype=np.int64))
        return self.outputs(codes)

    def outputs(self, codes: ColumnCodes) -> np.ndarray:
        wide, cat, num = self.run.preprocessor.assemble(codes)
        raw = predict_raw(self.run.model, (torch.from_numpy(wide), torch.from_numpy(cat), torch.from_numpy(num))).astype(np.float64)
        return raw if self.run.preprocessor.task == "binary" else self.run.preprocessor.decode_label(raw)


def output_name(run: Run) -> str:
    return "log-odds" if run.preprocessor.task == "binary" else run.preprocessor.label


def feature_columns(run: Run) -> list[str]:
    return run.preprocessor.input_columns()


def encode_rows(run: Run, source: Source) -> tuple[ColumnCodes, pd.DataFrame]:
    """Stage-1 codes and raw feature values of every row of ``source``; a feature column the
    source lacks counts as missing, as in ``predict``."""
    return run.preprocessor.encode_columns(source, columns_of(source)), raw_rows(source, feature_columns(run))


def raw_rows(source: Source, columns: list[str]) -> pd.DataFrame:
    """The source's feature columns (and ``__wd_row`` when it has one) as a DataFrame."""
    have = columns_of(source)
    cols = [c for c in (["__wd_row"] + columns) if c in have]
    df = source.con.sql(f"SELECT {', '.join(qi(c) for c in cols) or '1 AS dummy'} FROM {source.relation}").df()
    for c in columns:
        if c not in df:
            df[c] = None  # a column the input lacks is a missing value, as in predict
    return df


def explain(
    run: Run,
    rows: Source,
    background: Source | ColumnCodes,
    max_evals: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    stop_event: threading.Event | None = None,
    chunk: int = 10,
) -> Explanation:
    """SHAP values of every row of ``rows`` against the ``background`` rows (a relation, or
    codes already encoded by ``encode_background`` -- what-if reuses them).

    ``max_evals`` (masked samples per row) defaults to 10 permutations' worth; each masked sample
    is scored once per background row, so the cost is rows x max_evals x background rows."""
    started = time.perf_counter()
    codes_b = background if isinstance(background, ColumnCodes) else encode_background(run, background)
    codes_r, data = encode_rows(run, rows)
    return explain_codes(run, codes_r, data, codes_b, max_evals, seed, progress, stop_event, chunk, started)


def encode_background(run: Run, background: Source) -> ColumnCodes:
    codes = run.preprocessor.encode_columns(background, columns_of(background))
    if codes.n == 0:
        raise StudioError("no background rows to compare with; load the run's training data")
    return codes


def explain_codes(
    run: Run,
    codes_r: ColumnCodes,
    data: pd.DataFrame,
    codes_b: ColumnCodes,
    max_evals: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    stop_event: threading.Event | None = None,
    chunk: int = 10,
    started: float | None = None,
) -> Explanation:
    import shap

    started = time.perf_counter() if started is None else started
    columns = feature_columns(run)
    m, n, nb = len(columns), codes_r.n, codes_b.n
    if m == 0:
        raise StudioError("this run has no feature columns to explain")
    f = RowFunction(run, ColumnCodes.concat([codes_r, codes_b]), columns)
    x = np.repeat(np.arange(n)[:, None], m, axis=1)
    bg = np.repeat(n + np.arange(nb)[:, None], m, axis=1)
    evals = max(int(max_evals or 10 * (2 * m + 1)), 2 * m + 1)
    with _SHAP_RNG:
        explainer = shap.PermutationExplainer(f, shap.maskers.Independent(bg, max_samples=nb), seed=seed)
    values = np.zeros((n, m))
    base = float(f(bg).mean())
    for start in range(0, n, chunk):
        if stop_event is not None and stop_event.is_set():
            raise Cancelled()
        with _SHAP_RNG:
            np.random.seed((seed * 1_000_003 + start) % 2**32)
            values[start : start + chunk] = explainer(x[start : start + chunk], max_evals=evals, silent=True).values
        if progress is not None:
            progress(min(n, start + chunk), n)
    outputs = f(x) if n else np.zeros(0)
    return Explanation(tuple(columns), values, base, outputs, data.reset_index(drop=True), output_name(run), time.perf_counter() - started)


def frame_source(frame: pd.DataFrame) -> Source:
    """A DataFrame of raw rows as a relation in a private DuckDB connection (what-if rows, so
    the user's workspace is not touched)."""
    import duckdb

    con = duckdb.connect()
    con.register("rows", frame)
    return Source(con, "rows")


def columns_of(source: Source) -> set[str]:
    return {r[0] for r in source.con.sql(f"SELECT * FROM {source.relation} LIMIT 0").description}


def sample_relation(source: Source, n: int, seed: int) -> Source:
    """Up to ``n`` rows of a split relation, chosen by a seeded hash of ``__wd_row`` (the same
    rows every time), in row order."""
    rel = (f"(SELECT * FROM {source.relation} WHERE __wd_row IN (SELECT __wd_row FROM {source.relation} "
           f"ORDER BY hash(__wd_row + {int(seed)} * 1000003), __wd_row LIMIT {int(n)}) ORDER BY __wd_row)")
    return Source(source.con, rel)
