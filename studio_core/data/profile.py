"""Column profiles computed with SQL aggregates, not pandas: they scale with DuckDB rather than
with Python memory (100 columns a query, exact distinct counts up to 2M rows, text cut to 200
characters)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from studio_core.data.sqlutil import qi
from studio_core.data.workspace import EXACT_DISTINCT_MAX_ROWS, Table, Workspace


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    type: str
    numeric: bool
    rows: int
    nulls: int
    distinct: int
    min: Any = None
    max: Any = None
    mean: float | None = None
    std: float | None = None
    top_values: tuple[tuple[str, int], ...] = ()

    @property
    def null_share(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0


def profile(ws: Workspace, name: str, top: int = 5, columns: Sequence[str] | None = None) -> list[ColumnProfile]:
    """Per-column type, NULLs, distinct count, min/max/mean/std or top values, under the query
    timeout; of ``columns`` only when given (a very wide table is profiled a slice at a time)."""
    return ws.guarded(lambda: _profile(ws, ws.table(name), top, columns))


def _profile(ws: Workspace, table: Table, top: int, columns: Sequence[str] | None) -> list[ColumnProfile]:
    rows = int(ws.con.execute(f"SELECT count(*) FROM {table.ref}").fetchall()[0][0])
    distinct = "count(DISTINCT {c})" if rows <= EXACT_DISTINCT_MAX_ROWS else "approx_count_distinct({c})"
    out: list[ColumnProfile] = []
    wanted = list(table.columns if columns is None else [c for c in columns if c in table.types])
    for start in range(0, len(wanted), 100):
        cols = wanted[start : start + 100]
        exprs = []
        for col in cols:
            c = qi(col)
            exprs += [f"count({c})", distinct.format(c=c)]
            if table.is_numeric(col):
                exprs += [f"min({c})::DOUBLE", f"max({c})::DOUBLE", f"avg({c}::DOUBLE)", f"stddev_samp({c}::DOUBLE)"]
            else:
                exprs += [f"left(min({c})::VARCHAR, 200)", f"left(max({c})::VARCHAR, 200)", "NULL", "NULL"]
        values = ws.con.execute(f"SELECT {', '.join(exprs)} FROM {table.ref}").fetchall()[0]
        for i, col in enumerate(cols):
            nonnull, nd, lo, hi, mean, std = values[i * 6 : i * 6 + 6]
            tops: tuple[tuple[str, int], ...] = ()
            if not table.is_numeric(col) and top:
                tops = tuple(
                    (str(v), int(n))
                    for v, n in ws.con.sql(
                        f"SELECT left({qi(col)}::VARCHAR, 200) v, count(*) n FROM {table.ref} WHERE {qi(col)} IS NOT NULL "
                        f"GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {int(top)}"
                    ).fetchall()
                )
            out.append(ColumnProfile(col, table.types[col], table.is_numeric(col), rows, rows - int(nonnull), int(nd), lo, hi, mean, std, tops))
    return out
