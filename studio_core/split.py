"""Deterministic train/validation split inside DuckDB.

In memory (``make_split``) the training rows (a table, or the result of the spec's SQL) are
materialised once with a row number and an ``__wd_is_val`` flag -- drawn from a seeded NumPy
permutation (same seed, same split, whatever DuckDB version) or taken from a user-named split
column.  Out of core and with several processes (``stream_split``) views number the rows in
the order the table or file holds them and assign each row by a seeded hash of its number: the
low 32 bits choose validation, the high bits the distributed shard.  Every rank and every pass
over the data agree, each row is drawn on its own (identical rows, and rows that differ only
in their label, are split like any others), and the validation share is the one asked for.
A ``data.sql`` -- or a view other than a file read in place -- may return rows in any order
(a GROUP BY or a join), so its result is first stored sorted by the columns the spec uses;
rows that tie there are the same to the model.
It is stable for one DuckDB version (``hash`` may change between versions).  Encoders fit on
the ``train`` relation only; ``val`` is the holdout.  ``shard`` gives one rank its share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from .encoders import Source
from .errors import StudioError
from .spec import DataSpec, Spec
from .sqlutil import qi
from .workspace import Workspace, _one_line, single_select

VALIDATION_MARKERS = ("val", "valid", "validation", "test", "eval", "holdout", "true", "1")
SPLIT_TABLE = "__wd_data"
MASK32 = 0xFFFFFFFF


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
    hashed: bool = False  # rows assigned by ``__wd_hash`` (stream_split), not by position

    @property
    def train(self) -> Source:
        return Source(self.con, qi(f"{self.table}_train"))

    @property
    def val(self) -> Source:
        return Source(self.con, qi(f"{self.table}_val"))

    def shard(self, part: str, rank: int, world: int) -> Source:
        """Rank ``rank``'s rows of ``part`` ("train" or "val"): disjoint shards that cover the
        part -- by hash for a hashed split (sizes vary like a coin toss: +-0.1 % at millions of
        rows), else every ``world``-th row of the materialised part (sizes within one row)."""
        whole = self.train if part == "train" else self.val
        if world <= 1:
            return whole
        if self.hashed:  # order-free: the hash's high 32 bits, independent of the validation bits
            return Source(self.con, f"(SELECT * FROM {whole.relation} WHERE (__wd_hash >> 32) % {int(world)} = {int(rank)})")
        numbered = f"(SELECT *, row_number() OVER () - 1 AS __wd_pos FROM {whole.relation})"
        return Source(self.con, f"(SELECT * FROM {numbered} WHERE __wd_pos % {int(world)} = {int(rank)})")


def _clear(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Drop an earlier split's tables or views (the two kinds cannot replace each other)."""
    for name in (f"{table}_train", f"{table}_val", table, f"{table}_rows"):
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


def make_split(ws: Workspace, data: DataSpec, table: str = SPLIT_TABLE, n_rows: int | None = None) -> Split:
    """Materialise the spec's rows with a deterministic validation flag.  ``n_rows``: the
    source's row count when the caller has just counted it (a ``data.sql`` join is not run
    again for it)."""
    con = ws.con
    src = source_sql(data)
    _clear(con, table)
    try:
        if data.split_column:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {qi(table)} AS SELECT row_number() OVER () - 1 AS __wd_row, *, "
                f"{_marker_expr(data.split_column)} AS __wd_is_val FROM {src}"
            )
        else:
            n = n_rows if n_rows is not None else int(con.execute(f"SELECT count(*) FROM {src}").fetchall()[0][0])
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
        n_train, n_val = (int(con.execute(f"SELECT count(*) FROM {qi(table + '_' + part)}").fetchall()[0][0]) for part in ("train", "val"))
        con.execute(f"DROP TABLE {qi(table)}")
    except duckdb.Error as exc:
        raise StudioError(f"could not read the training rows: {_one_line(exc)}; check data.table / data.sql") from None
    types.pop("__wd_row", None)
    types.pop("__wd_is_val", None)
    return Split(con, table, types, n_train, n_val)


def used_columns(spec: Spec) -> list[str]:
    """The columns a spec reads (features and label): what identifies a row for the model."""
    return list(dict.fromkeys([*spec.feature_names(), spec.data.label]))


def stream_split(ws: Workspace, data: DataSpec, table: str = SPLIT_TABLE, columns: Sequence[str] = ()) -> Split:
    """The split as views over the rows, each row assigned by a seeded hash of its position;
    ``columns`` (default: all) are the ones a ``data.sql`` result is stored and sorted by.
    See the module docstring."""
    con = ws.con
    src = source_sql(data)
    _clear(con, table)
    try:
        if data.sql.strip() or ws.view_sql(data.table) not in (None, ws.file_views.get(data.table)):
            keep = [*columns, data.split_column] if data.split_column else list(columns)
            cols = ", ".join(qi(c) for c in dict.fromkeys(keep)) if columns else "*"
            con.execute(f"CREATE TEMP TABLE {qi(table + '_rows')} AS SELECT {cols} FROM {src} ORDER BY ALL")
            src = qi(table + "_rows")
        con.execute(f"CREATE OR REPLACE TEMP VIEW {qi(table)} AS SELECT *, hash({int(data.split_seed)}, __wd_row) AS __wd_hash "
                    f"FROM (SELECT row_number() OVER () - 1 AS __wd_row, * FROM {src})")
        if data.split_column:
            is_val = _marker_expr(data.split_column)
        else:
            threshold = int(round(min(max(data.validation_fraction, 0.0), 1.0) * (MASK32 + 1)))
            is_val = f"(__wd_hash & {MASK32}) < {threshold}"
        for part, cond in (("train", f"NOT ({is_val})"), ("val", is_val)):
            con.execute(f"CREATE OR REPLACE TEMP VIEW {qi(table + '_' + part)} AS SELECT * FROM {qi(table)} WHERE {cond}")
        n, n_val = con.execute(f"SELECT count(*), count(*) FILTER (WHERE {is_val}) FROM {qi(table)}").fetchall()[0]
        rel = con.sql(f"SELECT * FROM {qi(table)} LIMIT 0")
        types = {name: str(typ) for name, typ in zip(rel.columns, rel.types)}
    except duckdb.Error as exc:
        raise StudioError(f"could not read the training rows: {_one_line(exc)}; check data.table / data.sql") from None
    for own in ("__wd_row", "__wd_hash"):
        types.pop(own, None)
    return Split(con, table, types, int(n) - int(n_val), int(n_val), hashed=True)


def split_for(ws: Workspace, spec: Spec, metrics: dict, table: str = SPLIT_TABLE, data: DataSpec | None = None) -> Split:
    """The split a run was trained on (its ``metrics["split"]``), for holdout figures;
    ``data`` replaces the spec's rows (another table holding them)."""
    if metrics.get("split") == "hash":
        return stream_split(ws, data or spec.data, table, used_columns(spec))
    return make_split(ws, data or spec.data, table)
