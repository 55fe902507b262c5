"""A DuckDB workspace: load CSV/Parquet files as named tables, profile them, run SQL.

Every table a user touches lives in one in-memory DuckDB connection per workspace (one per
browser session in the app).  Loading is defensive: encodings, BOMs, decimal commas, NULL
markers and ``inf`` are handled, and anything DuckDB cannot read becomes a ``StudioError``
naming the file and the fix.  Profiles are computed with SQL aggregates, not pandas, so they
scale with DuckDB rather than with Python memory.
"""

from __future__ import annotations

import codecs
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from .errors import StudioError
from .sqlutil import FLOAT_TYPES, is_numeric_type, qi, ql

NULL_MARKERS = ("", "NA", "N/A", "n/a", "null", "NULL", "Null", "nan", "NaN", "NAN", "None")
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
EXACT_DISTINCT_MAX_ROWS = 2_000_000


@dataclass(frozen=True)
class LoadResult:
    table: str
    rows: int
    columns: int
    warnings: tuple[str, ...] = ()


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


@dataclass
class Table:
    """A named relation of a workspace, with its columns and types."""

    con: duckdb.DuckDBPyConnection
    name: str
    columns: list[str] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)
    sql: str = ""  # set when the rows come from a query rather than a stored table

    @property
    def ref(self) -> str:
        return f"({self.sql})" if self.sql else qi(self.name)

    def n_rows(self) -> int:
        return int(self.con.execute(f"SELECT count(*) FROM {self.ref}").fetchall()[0][0])

    def is_numeric(self, column: str) -> bool:
        return is_numeric_type(self.types.get(column, ""))


def table_name_for(path: str | Path) -> str:
    """A safe table name from a file name: ``Sales Data-2024.csv`` -> ``sales_data_2024``."""
    stem = Path(path).name
    for suffix in CSV_SUFFIXES + PARQUET_SUFFIXES + (".gz", ".zst"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    name = re.sub(r"[^0-9A-Za-z_]+", "_", stem).strip("_").lower() or "table"
    return f"t_{name}" if name[0].isdigit() else name


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    detail = next((t.strip() for t in text[1:] if t.strip() and not t.startswith("Possible")), "")
    msg = first.replace("Invalid Input Error: ", "").replace("Conversion Error: ", "")
    return f"{msg} {detail}".strip()[:300]


def _detect_encoding(path: Path) -> str:
    """'utf-8' if the whole file decodes as UTF-8 (BOM allowed), else 'latin-1'."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                return "latin-1"
    return "utf-8"


def _looks_binary(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(65536)
    if b"\x00" in head:
        return True
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    return control > len(head) * 0.01


class Workspace:
    """One DuckDB connection holding a user's tables."""

    def __init__(self, threads: int | None = None, memory_limit: str | None = None):
        config: dict[str, Any] = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        if threads:
            config["threads"] = threads
        if memory_limit:
            config["memory_limit"] = memory_limit
        self.con = duckdb.connect(":memory:", config=config)

    def fork(self) -> Workspace:
        """The same tables through a new connection: for work on another thread (a DuckDB
        connection is not thread-safe); temporary tables stay private to each fork."""
        other = Workspace.__new__(Workspace)
        other.con = self.con.cursor()
        return other

    # ---- loading -------------------------------------------------------------------------
    def load(self, path: str | Path, name: str | None = None) -> LoadResult:
        """Load a CSV or Parquet file as table ``name`` (default: the sanitised file stem)."""
        path = Path(path)
        if not path.is_file():
            raise StudioError(f"{path}: no such file; check the path")
        name = name or table_name_for(path)
        if path.suffix.lower() in PARQUET_SUFFIXES:
            try:
                self.con.execute(f"CREATE OR REPLACE TABLE {qi(name)} AS SELECT * FROM read_parquet({ql(str(path))})")
            except duckdb.Error as exc:
                raise StudioError(f"{path.name}: not a readable Parquet file ({_one_line(exc)}); re-export it or upload a CSV") from None
            warnings = self._clean_numeric(name)
        else:
            warnings = self._load_csv(path, name)
        table = self.table(name)
        return LoadResult(name, table.n_rows(), len(table.columns), tuple(warnings))

    def _load_csv(self, path: Path, name: str) -> list[str]:
        with path.open("rb") as fh:
            head = fh.read(65536)
        if os.path.getsize(path) == 0 or not head.strip():
            raise StudioError(f"{path.name}: the file is empty; upload a CSV with a header row and data rows")
        if _looks_binary(path):
            raise StudioError(f"{path.name}: this is not a text CSV file (binary bytes found); upload a CSV or Parquet file")
        encoding = _detect_encoding(path)
        args = f"{ql(str(path))}, encoding={ql(encoding)}, nullstr=[{', '.join(ql(m) for m in NULL_MARKERS)}]"
        try:
            sniff = self.con.execute(f"SELECT Delimiter, SkipRows FROM sniff_csv({ql(str(path))}, encoding={ql(encoding)})").fetchall()[0]
            if sniff and sniff[1]:
                raise StudioError(
                    f"{path.name}: the first {sniff[1]} line(s) do not have the same number of fields as the rest "
                    "(ragged rows, a preamble or an unclosed quote); make every row have the header's number of fields"
                )
            self.con.execute(f"CREATE OR REPLACE TABLE {qi(name)} AS SELECT * FROM read_csv({args})")
        except duckdb.Error as exc:
            raise StudioError(f"{path.name}: could not read as CSV: {_one_line(exc)}; fix the file or save it as a UTF-8 CSV") from None
        warnings = []
        if encoding != "utf-8":
            warnings.append(f"{path.name}: not valid UTF-8, read as Latin-1")
        delimiter = sniff[0] if sniff else ","
        return warnings + self._clean_numeric(name, allow_decimal_comma=delimiter != ",")

    def _clean_numeric(self, name: str, allow_decimal_comma: bool = False) -> list[str]:
        """Turn numeric-looking text columns into DOUBLE and ``inf`` into NULL (with a warning)."""
        warnings: list[str] = []
        table = self.table(name)
        ref = table.ref
        for col, typ in table.types.items():
            c = qi(col)
            if typ == "VARCHAR":
                checks = [f"TRY_CAST(trim({c}) AS DOUBLE)"]
                if allow_decimal_comma:
                    checks.append(f"TRY_CAST(replace(trim({c}), ',', '.') AS DOUBLE)")
                for expr in checks:
                    n, ok = self.con.execute(f"SELECT count({c}), count({expr}) FROM {ref}").fetchall()[0]
                    if n and n == ok:
                        self.con.execute(f"ALTER TABLE {ref} ALTER {c} SET DATA TYPE DOUBLE USING {expr}")
                        typ = "DOUBLE"
                        break
            if typ in FLOAT_TYPES:
                bad = self.con.execute(f"SELECT count(*) FROM {ref} WHERE isinf({c}) OR isnan({c})").fetchall()[0][0]
                if bad:
                    self.con.execute(f"UPDATE {ref} SET {c} = NULL WHERE isinf({c}) OR isnan({c})")
                    warnings.append(f"column {col!r}: {bad} inf/nan value(s) treated as missing")
        return warnings

    def register_frame(self, name: str, frame: Any) -> str:
        """Make a pandas DataFrame / Arrow table available as table ``name`` (a copy)."""
        self.con.register("__wd_frame", frame)
        try:
            self.con.execute(f"CREATE OR REPLACE TABLE {qi(name)} AS SELECT * FROM __wd_frame")
        finally:
            self.con.unregister("__wd_frame")
        self._clean_numeric(name)
        return name

    # ---- tables ---------------------------------------------------------------------------
    def tables(self) -> list[str]:
        rows = self.con.sql("SELECT table_name FROM duckdb_tables() WHERE NOT internal AND NOT temporary ORDER BY 1").fetchall()
        return [r[0] for r in rows if not r[0].startswith("__wd")]

    def table(self, name: str) -> Table:
        info = self.con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = $1 ORDER BY column_index", [name]
        ).fetchall()
        if not info:
            known = ", ".join(self.tables()) or "none loaded"
            raise StudioError(f"table {name!r} does not exist; load it first (tables: {known})")
        return Table(self.con, name, [c for c, _ in info], {c: t for c, t in info})

    def source(self, table: str = "", sql: str = "") -> Table:
        """The rows a spec trains on: a stored table, or the result of a query."""
        if not sql.strip():
            return self.table(table)
        sql = sql.strip().rstrip(";")
        try:
            rel = self.con.sql(f"SELECT * FROM ({sql}) LIMIT 0")
        except duckdb.Error as exc:
            raise StudioError(f"data.sql: {_one_line(exc)}; fix the query") from None
        return Table(self.con, "query", list(rel.columns), {c: str(t) for c, t in zip(rel.columns, rel.types)}, sql)

    def run_sql(self, sql: str, save_as: str | None = None, limit: int | None = None) -> Any:
        """Run one SELECT; return a DataFrame (``limit`` rows at most) or save it as a table.

        Anything but a single SELECT (DROP, COPY, INSTALL, several statements…) is refused before
        it runs, so a query box can read the user's tables but never change or lose them.
        """
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise StudioError(f"SQL error: {_one_line(exc)}; fix the query") from None
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            kinds = ", ".join(str(st.type).rsplit(".", 1)[-1] for st in statements) or "nothing"
            raise StudioError(f"only one SELECT query can run here (got {kinds}); write a single SELECT, and save its result as a table if needed")
        sql = sql.strip().rstrip(";")
        try:
            rel = self.con.sql(sql)
            if rel is None:
                raise StudioError("the SQL returned no result; write a SELECT query")
            if save_as:
                self.con.execute(f"CREATE OR REPLACE TABLE {qi(save_as)} AS {sql}")
                return self.table(save_as)
            return (rel.limit(limit) if limit else rel).df()
        except duckdb.Error as exc:
            raise StudioError(f"SQL error: {_one_line(exc)}; fix the query") from None

    # ---- profiles -------------------------------------------------------------------------
    def profile(self, name: str, top: int = 5) -> list[ColumnProfile]:
        """Per-column type, NULLs, distinct count, min/max/mean/std or top values (SQL only)."""
        table = self.table(name)
        rows = table.n_rows()
        distinct = "count(DISTINCT {c})" if rows <= EXACT_DISTINCT_MAX_ROWS else "approx_count_distinct({c})"
        out: list[ColumnProfile] = []
        for start in range(0, len(table.columns), 100):
            cols = table.columns[start : start + 100]
            exprs = []
            for col in cols:
                c = qi(col)
                exprs += [f"count({c})", distinct.format(c=c)]
                if table.is_numeric(col):
                    exprs += [f"min({c})::DOUBLE", f"max({c})::DOUBLE", f"avg({c}::DOUBLE)", f"stddev_samp({c}::DOUBLE)"]
                else:
                    exprs += [f"min({c})::VARCHAR", f"max({c})::VARCHAR", "NULL", "NULL"]
            values = self.con.execute(f"SELECT {', '.join(exprs)} FROM {table.ref}").fetchall()[0]
            for i, col in enumerate(cols):
                nonnull, nd, lo, hi, mean, std = values[i * 6 : i * 6 + 6]
                tops: tuple[tuple[str, int], ...] = ()
                if not table.is_numeric(col) and top:
                    tops = tuple(
                        (str(v), int(n))
                        for v, n in self.con.sql(
                            f"SELECT {qi(col)}::VARCHAR v, count(*) n FROM {table.ref} WHERE {qi(col)} IS NOT NULL "
                            f"GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {int(top)}"
                        ).fetchall()
                    )
                out.append(ColumnProfile(col, table.types[col], table.is_numeric(col), rows, rows - int(nonnull), int(nd), lo, hi, mean, std, tops))
        return out
