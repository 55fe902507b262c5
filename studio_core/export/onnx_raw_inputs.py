"""The raw graph's input contract on the SQL side: which inputs it takes (one per feature
column, named as a plain identifier), the DuckDB SELECT that computes them from raw rows, the
onnxruntime feeds built from its Arrow batches, and synthetic raw rows for a parity check when
no data is at hand.  The graph itself is ``onnx_preprocess``.  No torch here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from studio_core.data.sqlutil import is_boolean_type, is_numeric_type, number_expr, qi
from studio_core.features.preprocess import Preprocessor

MISSING_TEXT = "\u0000"
RESERVED_NAMES = ("logit", "prediction")


@dataclass(frozen=True)
class RawInput:
    """One raw-graph input: its ONNX name, the column it holds, and how it is computed."""

    name: str
    column: str
    kind: str  # "text" (tensor(string)) or "number" (tensor(double))
    sql: str  # the DuckDB expression giving its value

    def manifest(self) -> dict[str, str]:
        return {"name": self.name, "column": self.column, "dtype": "string" if self.kind == "text" else "double",
                "shape": "[batch]", "sql": self.sql,
                "missing": "the string \\u0000" if self.kind == "text" else "NaN"}


def _identifier(column: str) -> str:
    name = re.sub(r"[^0-9A-Za-z_]", "_", column)
    return name if name and not name[0].isdigit() else f"c_{name}"


def output_names(prep: Preprocessor) -> tuple[str, ...]:
    """The raw graph's outputs: ``logit`` and ``prediction``, or a multiclass graph's
    ``logit_k`` and ``prob_k`` per class (reserved too, so no input takes one)."""
    if prep.task == "multiclass":
        k = prep.n_outputs
        return (*RESERVED_NAMES, *(f"logit_{i}" for i in range(k)), *(f"prob_{i}" for i in range(k)))
    return RESERVED_NAMES


def raw_input_names(columns: list[str], outputs: tuple[str, ...] = RESERVED_NAMES) -> dict[str, str]:
    """Column -> a unique ONNX-safe input name (letters, digits, ``_``; never one of ``outputs``)."""
    taken: set[str] = set(outputs)
    out = {}
    for col in columns:
        base = _identifier(col)
        name, i = base, 2
        while name.lower() in {t.lower() for t in taken}:
            name, i = f"{base}_{i}", i + 1
        taken.add(name)
        out[col] = name
    return out


def raw_inputs(prep: Preprocessor) -> list[RawInput]:
    """The raw graph's inputs, in ``Preprocessor.input_columns()`` order."""
    cols = prep.input_columns()
    names = raw_input_names(cols, output_names(prep))
    numeric = prep._numeric_cols()
    return [RawInput(names[c], c, "number", number_expr(c)) if c in numeric else RawInput(names[c], c, "text", prep._text(c)) for c in cols]


# ---- SQL side of the contract ---------------------------------------------------------------
def raw_select_sql(prep: Preprocessor, relation: str, available: set[str] | None = None) -> str:
    """The SELECT computing every raw input of ``relation`` (NULL for a column that is absent)."""
    cols = []
    for r in raw_inputs(prep):
        present = available is None or r.column in available
        null = "CAST(NULL AS DOUBLE)" if r.kind == "number" else "CAST(NULL AS VARCHAR)"
        cols.append(f"{r.sql if present else null} AS {qi(r.name)}")
    return f"SELECT {', '.join(cols) or '1 AS dummy'} FROM {relation}"


def raw_feeds(batch: pa.RecordBatch, inputs: list[RawInput]) -> dict[str, np.ndarray]:
    """onnxruntime feeds from one Arrow batch of ``raw_select_sql``: NULL -> sentinel / NaN."""
    feeds = {}
    for r in inputs:
        col = batch.column(r.name)
        if r.kind == "number":
            feeds[r.name] = pc.fill_null(pc.cast(col, pa.float64()), np.nan).to_numpy(zero_copy_only=False).astype(np.float64)
        else:
            feeds[r.name] = pc.fill_null(pc.cast(col, pa.string()), MISSING_TEXT).to_numpy(zero_copy_only=False).astype(object, copy=False)
    return feeds


def iter_raw_feeds(con: Any, prep: Preprocessor, relation: str, available: set[str] | None = None,
                   batch_rows: int = 65_536) -> Iterator[dict[str, np.ndarray]]:
    """Feeds for every row of ``relation``, in order, ``batch_rows`` at a time."""
    inputs = raw_inputs(prep)
    reader = con.sql(raw_select_sql(prep, relation, available)).to_arrow_reader(batch_rows)
    for batch in reader:
        if batch.num_rows:
            yield raw_feeds(batch, inputs)


def synthetic_raw_rows(prep: Preprocessor, n: int = 10_000, seed: int = 0) -> pa.Table:
    """Raw rows that exercise every encoder path, for a parity check when no data is at hand:
    known, unseen and non-ASCII categories, NULLs, numbers on and around bucket boundaries.
    Columns keep their training types (a numeric column used as categorical stays numeric)."""
    rng = np.random.default_rng(seed)
    cols: dict[str, pa.Array] = {}
    nulls = rng.random(n) < 0.1
    numeric = prep._numeric_cols()
    for col in prep.input_columns():
        duck_type = prep.column_types.get(col, "VARCHAR")
        if col in numeric:
            std, bkt = prep.encoders_.get(f"std:{col}"), prep.encoders_.get(f"bkt:{col}")
            mean, scale = (std.mean_, std.std_) if std is not None else (0.0, 1.0)
            values = rng.normal(mean, scale * 1.5, n)
            bounds = np.asarray(getattr(bkt, "boundaries_", None) or getattr(std, "edges_", None) or [], np.float64)
            if len(bounds):
                values = np.where(rng.random(n) < 0.3, rng.choice(bounds, n), values)  # ties: boundaries themselves
            cols[col] = pa.array(np.where(nulls, np.nan, values), pa.float64(), mask=nulls)
            continue
        if f"txt:{col}" in prep.encoders_:
            cols[col] = _synthetic_texts(prep, col, rng, n, nulls)
            continue
        enc = prep.encoders_[f"cat:{col}"]
        known = [v for v in getattr(enc, "vocabulary_", [])]
        if is_boolean_type(duck_type):
            cols[col] = pa.array(rng.random(n) < 0.5, pa.bool_(), mask=nulls)
        elif is_numeric_type(duck_type):
            pool = [float(v) for v in known if _is_float(v)] + [0.5, -3.0, 12345.0, 7.25]
            cols[col] = pa.array(np.asarray(pool, np.float64)[rng.integers(0, len(pool), n)], pa.float64(), mask=nulls)
        else:
            pool = known + ["never seen", "ünïcödé", "日本語", "emoji 🙂", "", " x "] + [f"v{i}" for i in range(20)]
            cols[col] = pa.array([pool[i] for i in rng.integers(0, len(pool), n)], pa.string(), mask=nulls)
    return pa.table(cols) if cols else pa.table({"__wd_dummy": pa.array(np.zeros(n))})


def _synthetic_texts(prep: Preprocessor, col: str, rng: np.random.Generator, n: int, nulls: np.ndarray) -> pa.Array:
    """Texts (or sets) of 0-30 known and unseen tokens, with capitals and punctuation."""
    feature = next(t for t in prep.features.text if t.name == col)
    pool = [t for t in (prep.encoders_[f"txt:{col}"].vocabulary_ or []) if " " not in t][:2000] + ["never", "ÜNÏCÖDÉ", "日本語", "Wow!"]
    picks = [list(np.asarray(pool, dtype=object)[rng.integers(0, len(pool), int(rng.integers(0, 31)))]) for _ in range(n)]
    if str(prep.column_types.get(col, "VARCHAR")).endswith("[]"):
        return pa.array(picks, pa.list_(pa.string()), mask=nulls)
    sep = f" {feature.delimiter} " if feature.kind == "multi" else " "
    return pa.array([sep.join(p) for p in picks], pa.string(), mask=nulls)


def _is_float(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
