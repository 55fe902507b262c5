"""Deterministic train/validation split inside DuckDB.

The training rows (a table, or the result of the spec's SQL) are materialised once with a row
number and an ``__wd_is_val`` flag -- drawn from a seeded NumPy permutation (same seed, same
split, whatever DuckDB version) or taken from a user-named split column.  Encoders fit on the
``train`` relation only; the ``val`` relation is the holdout.
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
    try:
        n = int(con.execute(f"SELECT count(*) FROM {src}").fetchall()[0][0])
        if data.split_column:
            markers = ", ".join(f"'{m}'" for m in VALIDATION_MARKERS)
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {qi(table)} AS SELECT row_number() OVER () - 1 AS __wd_row, *, "
                f"coalesce(lower(trim(CAST({qi(data.split_column)} AS VARCHAR))) IN ({markers}), false) AS __wd_is_val FROM {src}"
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
