"""Results leaving DuckDB, bounded: rows, bytes and the length of each cell.

DuckDB works inside its session's memory limit, but a result fetched into Python is not: one
``SELECT repeat('x', 50000000) FROM range(100)`` would be 5 GB in a pandas frame.  Every result
shown to a user (the SQL box, previews, profile charts) is fetched here: text and nested values
are cut to ``max_cell_chars`` inside DuckDB, record batches are read until ``max_bytes``, and the
frame says what was left out (``frame.attrs["note"]``).  Results written to a file stream batch
by batch, so their size never sits in memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from studio_core.data.sqlutil import is_boolean_type, is_numeric_type, qi

MAX_RESULT_BYTES = int(float(os.environ.get("WDSTUDIO_RESULT_BYTES", 64 * 2**20)))
MAX_CELL_CHARS = 1000
BATCH_ROWS = 8192
PLAIN_TYPES = ("DATE", "TIME", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "INTERVAL", "UUID")


def _cell(column: str, duck_type: str, max_chars: int) -> str:
    """A column as shown: numbers, booleans and times as they are; anything else as text of at
    most ``max_chars`` characters (longer text ends with an ellipsis)."""
    c = qi(column)
    t = str(duck_type).upper()
    if is_numeric_type(t) or is_boolean_type(t) or t in PLAIN_TYPES or t.startswith("TIMESTAMP"):
        return f"{c} AS {c}"
    text = f"CAST({c} AS VARCHAR)"
    return f"CASE WHEN length({text}) > {int(max_chars)} THEN left({text}, {int(max_chars)}) || '…' ELSE {text} END AS {c}"


def bounded_frame(con: duckdb.DuckDBPyConnection, sql: str, limit: int | None = None, max_bytes: int = MAX_RESULT_BYTES,
                  max_cell_chars: int = MAX_CELL_CHARS) -> pd.DataFrame:
    """The first ``limit`` rows of ``sql`` (a SELECT) as a DataFrame of at most ``max_bytes``;
    ``attrs["note"]`` says when cells or rows were cut ('' otherwise)."""
    rel = con.sql(f"SELECT * FROM (\n{sql}\n) LIMIT 0")
    cols = ", ".join(_cell(c, str(t), max_cell_chars) for c, t in zip(rel.columns, rel.types)) or "*"
    query = f"SELECT {cols} FROM (\n{sql}\n)" + (f" LIMIT {int(limit)}" if limit is not None else "")
    reader = con.sql(query).to_arrow_reader(BATCH_ROWS)
    batches, size, cut = [], 0, False
    for batch in reader:
        if size + batch.nbytes > max_bytes:
            keep = max(0, int(batch.num_rows * (max_bytes - size) / max(batch.nbytes, 1)))
            if keep:
                batches.append(batch.slice(0, keep))
            cut = True
            break
        batches.append(batch)
        size += batch.nbytes
    table = pa.Table.from_batches(batches, schema=reader.schema)
    frame = table.to_pandas()
    long_text = any(frame[c].astype("string").str.len().gt(max_cell_chars).any() for c in frame.columns
                    if pd.api.types.is_object_dtype(frame[c]) or pd.api.types.is_string_dtype(frame[c]))
    notes = [f"showing the first {len(frame):,} rows: the result is larger than {max_bytes / 2**20:.0f} MB"] if cut else []
    if long_text:
        notes.append(f"text longer than {max_cell_chars:,} characters is cut (…)")
    frame.attrs["note"] = "; ".join(notes)
    return frame


def write_csv(con: duckdb.DuckDBPyConnection, sql: str, path: str | Path) -> int:
    """Every row of ``sql`` written to a CSV file, one record batch at a time; returns the row count."""
    reader = con.sql(sql).to_arrow_reader(BATCH_ROWS)
    rows = 0
    with Path(path).open("w", encoding="utf-8", newline="") as fh:
        pd.DataFrame(columns=reader.schema.names).to_csv(fh, index=False)  # quoted only where needed, like pandas' own CSVs
        for batch in reader:
            batch.to_pandas().to_csv(fh, index=False, header=False)
            rows += batch.num_rows
    return rows
