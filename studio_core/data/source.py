"""``Source``: rows in DuckDB as the stages after loading see them -- a connection and the SQL
that goes after FROM (a table, a view, or a split's part).  Encoders fit on one, the split hands
them out, scoring and explanation read their rows through one."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb


@dataclass(frozen=True)
class Source:
    """Rows to fit on: a DuckDB connection and the SQL that goes after FROM."""

    con: duckdb.DuckDBPyConnection
    relation: str

    def one(self, select: str) -> tuple:
        return self.con.execute(f"SELECT {select} FROM {self.relation}").fetchall()[0]

    def all(self, sql_tail: str) -> list[tuple]:
        return self.con.sql(sql_tail.replace("{src}", self.relation)).fetchall()
