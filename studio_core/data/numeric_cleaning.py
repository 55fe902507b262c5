"""Numeric-looking text columns to DOUBLE and ``inf`` / ``nan`` to NULL, after a file is
loaded: one aggregate pass decides for every column, so a 5,000-column table costs one scan."""

from __future__ import annotations

from typing import Any

import duckdb

from studio_core.data.sqlutil import FLOAT_TYPES, qi


def clean_numeric(con: duckdb.DuckDBPyConnection, table: Any, allow_decimal_comma: bool = False, view_of: str | None = None) -> list[str]:
    """Turn numeric-looking text columns into DOUBLE and ``inf``/``nan`` into NULL (with a
    warning), deciding for all columns in one pass.  A table is altered in place; for a view
    (``view_of``: the SQL it reads, e.g. ``read_parquet(...)``) the same cleaning becomes the
    view's projection, so a file read in place has the types and values it would have loaded
    as a table (training on a view and scoring from a table must see the same columns)."""
    aggs: list[str] = []
    plan: list[tuple[str, list[str], int]] = []  # column, candidate value expressions, first aggregate
    for col, typ in table.types.items():
        c = qi(col)
        if typ == "VARCHAR":
            checks = [f"TRY_CAST(trim({c}) AS DOUBLE)"] + ([f"TRY_CAST(replace(trim({c}), ',', '.') AS DOUBLE)"] if allow_decimal_comma else [])
            plan.append((col, checks, len(aggs)))
            aggs += [f"count({c})"] + [f"count({e})" for e in checks] + [f"count(*) FILTER (WHERE isinf({e}) OR isnan({e}))" for e in checks]
        elif typ in FLOAT_TYPES:
            plan.append((col, [c], len(aggs)))
            aggs += [f"count({c})", f"count({c})", f"count(*) FILTER (WHERE isinf({c}) OR isnan({c}))"]
    if not plan:
        return []
    got = con.execute(f"SELECT {', '.join(aggs)} FROM {table.ref}").fetchall()[0]
    warnings: list[str] = []
    cleaned: dict[str, str] = {}
    for col, checks, at in plan:
        n, k = got[at], len(checks)
        chosen = next((j for j in range(k) if n and got[at + 1 + j] == n), None)
        if chosen is None:
            continue  # text that is not all numbers stays text
        expr, bad = checks[chosen], got[at + 1 + k + chosen]
        c = qi(col)
        if view_of is None:
            if expr != c:
                con.execute(f"ALTER TABLE {table.ref} ALTER {c} SET DATA TYPE DOUBLE USING {expr}")
            if bad:
                con.execute(f"UPDATE {table.ref} SET {c} = NULL WHERE isinf({c}) OR isnan({c})")
        elif expr != c or bad:
            cleaned[col] = f"CASE WHEN isinf({expr}) OR isnan({expr}) THEN NULL ELSE {expr} END" if bad else expr
        if bad:
            warnings.append(f"column {col!r}: {bad} inf/nan value(s) treated as missing")
    if view_of is not None and cleaned:
        projection = ", ".join(f"{cleaned[col]} AS {qi(col)}" if col in cleaned else qi(col) for col in table.columns)
        con.execute(f"CREATE OR REPLACE VIEW {table.ref} AS SELECT {projection} FROM {view_of}")
    return warnings
