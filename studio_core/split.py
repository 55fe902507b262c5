"""Deterministic train/validation split inside DuckDB.

In memory (``make_split``) the training rows (a table, or the result of the spec's SQL) are
materialised once with a row number and an ``__wd_is_val`` flag -- drawn from a seeded NumPy
permutation (same seed, same split, whatever DuckDB version) or taken from a user-named split
column.  Out of core (``stream_split``) nothing is copied: two views number the rows as they
stream and flag a row for validation by a seeded 32-bit hash of its number, computed the same
way in SQL and NumPy.  Encoders fit on the ``train`` relation only; ``val`` is the holdout.
``shard`` gives one distributed rank its disjoint share of either.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from .encoders import Source
from .errors import StudioError
from .spec import DataSpec
from .sqlutil import qi
from .workspace import Workspace, _one_line, single_select

VALIDATION_MARKERS = ("val", "valid", "validation", "test", "eval", "holdout", "true", "1")
SPLIT_TABLE = "__wd_data"
MASK32 = 0xFFFFFFFF
HASH_STEPS = ((2654435761, 16), (2246822507, 13), (3266489909, 16))  # multiply, then xor-shift (murmur3's fmix32)


def row_hash_sql(expr: str, seed: int) -> str:
    """SQL for a uniform 32-bit hash of an integer row number (equal to ``row_hash``)."""
    h = f"xor(CAST({expr} AS UBIGINT) & {MASK32}, {seed & MASK32})"
    for mult, shift in HASH_STEPS:
        h = f"(({h}) * {mult}) & {MASK32}"
        h = f"xor({h}, ({h}) >> {shift})"
    return h


def row_hash(rows: np.ndarray, seed: int) -> np.ndarray:
    """The NumPy twin of ``row_hash_sql``."""
    h = (rows.astype(np.uint64) & np.uint64(MASK32)) ^ np.uint64(seed & MASK32)
    for mult, shift in HASH_STEPS:
        h = (h * np.uint64(mult)) & np.uint64(MASK32)
        h ^= h >> np.uint64(shift)
    return h


def _marker_expr(column: str) -> str:
    markers = ", ".join(f"'{m}'" for m in VALIDATION_MARKERS)
    return f"coalesce(lower(trim(CAST({qi(column)} AS VARCHAR))) IN ({markers}), false)"


@dataclass(frozen=True)
class Split:
    con: duckdb.DuckDBPyConnection
    table: str
    column_types: dict[str, str]
    n_train: int
    n_val: int

    @property
    def train(self) -> Source:
        return Source(self.con, qi(f"{self.table}_train"))

    @property
    def val(self) -> Source:
        return Source(self.con, qi(f"{self.table}_val"))

    def shard(self, part: str, rank: int, world: int) -> Source:
        """Rank ``rank``'s rows of ``part`` ("train" or "val"): every ``world``-th row of the
        part as it streams, starting at ``rank`` -- disjoint shards that cover the part and
        differ in size by at most one row."""
        whole = self.train if part == "train" else self.val
        if world <= 1:
            return whole
        numbered = f"(SELECT *, row_number() OVER () - 1 AS __wd_pos FROM {whole.relation})"
        return Source(self.con, f"(SELECT * FROM {numbered} WHERE __wd_pos % {int(world)} = {int(rank)})")


def _clear(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Drop an earlier split's tables or views (the two kinds cannot replace each other)."""
    for name in (f"{table}_train", f"{table}_val", table):
        for kind in ("VIEW", "TABLE"):
            try:
                con.execute(f"DROP {kind} IF EXISTS {qi(name)}")
            except duckdb.CatalogException:  # it is of the other kind
                pass


def source_sql(data: DataSpec) -> str:
    """The relation the spec's rows come from (after FROM)."""
    if data.sql.strip():
        return f"(\n{single_select(data.sql, 'data.sql')}\n)"  # own lines: a trailing -- comment stays harmless
    if not data.table:
        raise StudioError("data.table: no table chosen; pick a loaded table or give data.sql")
    return qi(data.table)


def make_split(ws: Workspace, data: DataSpec, table: str = SPLIT_TABLE) -> Split:
    """Materialise the spec's rows with a deterministic validation flag."""
    con = ws.con
    src = source_sql(data)
    _clear(con, table)
    try:
        n = int(con.execute(f"SELECT count(*) FROM {src}").fetchall()[0][0])
        if data.split_column:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {qi(table)} AS SELECT row_number() OVER () - 1 AS __wd_row, *, "
                f"{_marker_expr(data.split_column)} AS __wd_is_val FROM {src}"
            )
        else:
            rng = np.random.default_rng(data.split_seed)
            is_val = np.zeros(n, dtype=bool)
            is_val[rng.permutation(n)[: int(round(n * data.validation_fraction))]] = True
            con.register("__wd_mask", pa.table({"__wd_is_val": is_val}))
            try:
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {qi(table)} AS SELECT s.*, m.__wd_is_val FROM "
                    f"(SELECT row_number() OVER () - 1 AS __wd_row, * FROM {src}) s POSITIONAL JOIN __wd_mask m"
                )
            finally:
                con.unregister("__wd_mask")
        # two plain tables, not filtered views: binding SELECT * over thousands of columns costs
        # ~25 ms a query, and suggest/fit run a few queries per column
        for part, cond in (("train", "NOT __wd_is_val"), ("val", "__wd_is_val")):
            con.execute(f"CREATE OR REPLACE TEMP TABLE {qi(table + '_' + part)} AS SELECT * FROM {qi(table)} WHERE {cond} ORDER BY __wd_row")
        types = dict(con.sql(f"SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = '{table}' ORDER BY column_index").fetchall())
        n_val = int(con.execute(f"SELECT count(*) FROM {qi(table + '_val')}").fetchall()[0][0])
        con.execute(f"DROP TABLE {qi(table)}")
    except duckdb.Error as exc:
        raise StudioError(f"could not read the training rows: {_one_line(exc)}; check data.table / data.sql") from None
    types.pop("__wd_row", None)
    types.pop("__wd_is_val", None)
    return Split(con, table, types, n - n_val, n_val)


def stream_split(ws: Workspace, data: DataSpec, table: str = SPLIT_TABLE) -> Split:
    """The out-of-core split: views that number rows as they stream (DuckDB keeps insertion
    order) and flag validation rows by ``row_hash`` (or the split column); no rows are copied."""
    con = ws.con
    src = source_sql(data)
    if data.split_column:
        is_val = _marker_expr(data.split_column)
    else:
        threshold = int(round(min(max(data.validation_fraction, 0.0), 1.0) * (MASK32 + 1)))
        is_val = f"({row_hash_sql('__wd_row', data.split_seed)}) < {threshold}"
    _clear(con, table)
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {qi(table)} AS SELECT row_number() OVER () - 1 AS __wd_row, * FROM {src}")
        for part, cond in (("train", f"NOT ({is_val})"), ("val", is_val)):
            con.execute(f"CREATE OR REPLACE TEMP VIEW {qi(table + '_' + part)} AS SELECT * FROM {qi(table)} WHERE {cond}")
        n, n_val = con.execute(f"SELECT count(*), count(*) FILTER (WHERE {is_val}) FROM {qi(table)}").fetchall()[0]
        types = {name: str(typ) for name, typ in zip(con.sql(f"SELECT * FROM {qi(table)}").columns, con.sql(f"SELECT * FROM {qi(table)}").types)}
    except duckdb.Error as exc:
        raise StudioError(f"could not read the training rows: {_one_line(exc)}; check data.table / data.sql") from None
    types.pop("__wd_row", None)
    return Split(con, table, types, int(n) - int(n_val), int(n_val))
