"""A DuckDB workspace: load CSV/Parquet files as named tables, profile them, run SQL.

Every table a user touches lives in one in-memory DuckDB connection per workspace (one per
browser session in the app).  Loading is defensive: encodings, BOMs, decimal commas, NULL
markers and ``inf`` are handled, and anything DuckDB cannot read becomes a ``StudioError``
naming the file and the fix.  Profiles are computed with SQL aggregates, not pandas, so they
scale with DuckDB rather than with Python memory.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from studio_core.common.errors import StudioError
from studio_core.common.files import check_regular
from studio_core.data.datafiles import NULL_MARKERS, PARQUET_SUFFIXES, detect_encoding, header_fields, looks_binary, table_name_for
from studio_core.data.duckerrors import _one_line, out_of_resources
from studio_core.data.fetch import bounded_frame, write_csv
from studio_core.data.numeric_cleaning import clean_numeric
from studio_core.data.sqlgate import READ_ONLY_CREATE, TRAILING_SEMICOLON, single_select
from studio_core.data.sqlutil import is_numeric_type, qi, ql

EXACT_DISTINCT_MAX_ROWS = 2_000_000
MAX_COLUMNS = int(os.environ.get("WDSTUDIO_MAX_COLUMNS", "5000"))


@dataclass(frozen=True)
class Bounds:
    """What one workspace may take: the columns and decompressed bytes of a file it loads, the
    time a load may run, and the size of DuckDB's spill folder (None: unbounded)."""

    max_columns: int = MAX_COLUMNS
    max_load_bytes: int | None = None
    load_timeout_s: float | None = None
    max_temp_bytes: int | None = None


@dataclass(frozen=True)
class LoadResult:
    table: str
    rows: int
    columns: int
    warnings: tuple[str, ...] = ()


@dataclass
class Table:
    """A named relation of a workspace, with its columns and types."""

    con: duckdb.DuckDBPyConnection
    name: str
    columns: list[str] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)
    sql: str = ""  # set when the rows come from a query rather than a stored table
    guard: Callable[[Callable[[], Any]], Any] = field(default=lambda work: work(), repr=False, compare=False)  # the workspace's query timeout

    @property
    def ref(self) -> str:
        return f"(\n{self.sql}\n)" if self.sql else qi(self.name)

    def n_rows(self) -> int:
        return int(self.guard(lambda: self.con.execute(f"SELECT count(*) FROM {self.ref}").fetchall()[0][0]))

    def is_numeric(self, column: str) -> bool:
        return is_numeric_type(self.types.get(column, ""))


class Workspace:
    """One DuckDB connection holding a user's tables.

    With ``allowed_dirs`` the connection is a sandbox (the studio's, one per browser session):
    files are read only from those folders, external access, extension loading and every
    configuration change are off (``lock_configuration``), so user SQL cannot read
    ``/etc/passwd``, write files, attach databases or lift its own memory and thread limits.
    ``query_timeout_s`` interrupts user queries that run too long; ``bounds`` caps what loading
    a file and spilling to disk may take.
    """

    def __init__(self, threads: int | None = None, memory_limit: str | None = None,
                 allowed_dirs: Sequence[str | Path] | None = None, query_timeout_s: float | None = None,
                 allowed_files: Sequence[str | Path] = (), temp_directory: str | Path | None = None, bounds: Bounds | None = None,
                 database: str | Path | None = None):  # a DuckDB file keeping the tables across restarts; None: in memory
        config: dict[str, Any] = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        self.bounds = bounds or Bounds()
        if temp_directory:
            config["temp_directory"] = str(temp_directory)  # where large aggregates spill
        if self.bounds.max_temp_bytes:
            config["max_temp_directory_size"] = f"{int(self.bounds.max_temp_bytes)}B"
        if threads:
            config["threads"] = threads
        if memory_limit:
            config["memory_limit"] = memory_limit
        self.con = duckdb.connect(str(database) if database else ":memory:", config=config)
        sandbox = allowed_dirs is not None or bool(allowed_files)
        self.allowed_dirs = tuple(Path(d).resolve() for d in (allowed_dirs or ())) if sandbox else None
        self.allowed_files = tuple(Path(f).resolve() for f in allowed_files)
        self.query_timeout_s = query_timeout_s
        self.file_views: dict[str, str] = {}  # views that read a file in place -> their SQL (rows in file order)
        if sandbox:
            folders = ", ".join(ql(str(d).rstrip(os.sep) + os.sep) for d in self.allowed_dirs)
            self.con.execute(f"SET allowed_directories = [{folders}]")
            self.con.execute(f"SET allowed_paths = [{', '.join(ql(str(f)) for f in self.allowed_files)}]")
            self.con.execute("SET enable_external_access = false")
            self.con.execute("SET lock_configuration = true")

    @property
    def sandboxed(self) -> bool:
        return self.allowed_dirs is not None

    def fork(self) -> Workspace:
        """The same tables through a new connection: for work on another thread (a DuckDB
        connection is not thread-safe); temporary tables stay private to each fork, and the
        sandbox (shared database configuration) holds for every fork."""
        other = Workspace.__new__(Workspace)
        other.con = self.con.cursor()
        other.allowed_dirs, other.allowed_files, other.query_timeout_s = self.allowed_dirs, self.allowed_files, self.query_timeout_s
        other.file_views, other.bounds = self.file_views, self.bounds
        return other

    # ---- loading -------------------------------------------------------------------------
    def load(self, path: str | Path, name: str | None = None, as_view: bool = False) -> LoadResult:
        """Load a CSV or Parquet file as table ``name`` (default: the sanitised file stem).

        ``as_view`` leaves the rows in the file: a view reads them on each query, so a file
        larger than memory can be aggregated and streamed; it cleans columns as a table load
        does (numeric text to DOUBLE, inf/nan to NULL)."""
        path = Path(path)
        if not path.exists():
            raise StudioError(f"{path}: no such file; check the path")
        check_regular(path, "data file")
        if self.allowed_dirs is not None and path.resolve() not in self.allowed_files and not any(path.resolve().is_relative_to(d) for d in self.allowed_dirs):
            raise StudioError(f"{path.name}: this workspace reads only uploaded files and the bundled samples; upload the file instead")
        name = name or table_name_for(path)
        try:
            warnings = self.timed(lambda: self._load_file(path, name, as_view), self.bounds.load_timeout_s,
                                  f"loading {path.name} took longer than {self.bounds.load_timeout_s or 0:g} s and was stopped; load a smaller file")
        except BaseException:
            for kind in ("TABLE", "VIEW"):  # a load stopped half-way leaves nothing behind
                try:
                    self.con.execute(f"DROP {kind} IF EXISTS {qi(name)}")
                except duckdb.Error:
                    pass
            raise
        self.file_views.pop(name, None)
        if as_view:
            self.file_views[name] = self.view_sql(name)
        table = self.table(name)
        return LoadResult(name, table.n_rows(), len(table.columns), tuple(warnings))

    def _load_file(self, path: Path, name: str, as_view: bool) -> list[str]:
        if path.suffix.lower() not in PARQUET_SUFFIXES:
            return self._load_csv(path, name, as_view)
        src = f"read_parquet({ql(str(path))})"
        try:
            columns, size = self.con.execute(f"SELECT (SELECT count(*) - 1 FROM parquet_schema({ql(str(path))})), "
                                             f"(SELECT sum(total_uncompressed_size) FROM parquet_metadata({ql(str(path))}))").fetchall()[0]
        except duckdb.Error as exc:
            raise StudioError(f"{path.name}: not a readable Parquet file ({_one_line(exc)}); re-export it or upload a CSV") from None
        self._check_columns(path, int(columns or 0))
        if self.bounds.max_load_bytes and (size or 0) > self.bounds.max_load_bytes:
            raise StudioError(f"{path.name}: its columns take {size / 2**30:.1f} GiB uncompressed, more than this workspace's "
                              f"{self.bounds.max_load_bytes / 2**30:.1f} GiB; load fewer rows or columns")
        self._create(path, name, as_view, src, "not a readable Parquet file ({}); re-export it or upload a CSV")
        return self._clean_numeric(name, view_of=src if as_view else None)

    def _create(self, path: Path, name: str, as_view: bool, src: str, unreadable: str) -> None:
        """``CREATE TABLE|VIEW name AS SELECT * FROM src``, its errors as messages about the file
        (``unreadable`` formatted with DuckDB's reason); an interrupt passes through to ``timed``."""
        try:
            self.con.execute(f"CREATE OR REPLACE {'VIEW' if as_view else 'TABLE'} {qi(name)} AS SELECT * FROM {src}")
        except duckdb.InterruptException:
            raise
        except duckdb.OutOfMemoryException as exc:
            raise StudioError(f"{path.name}: {out_of_resources(exc, 'loading it', 'load a file with fewer rows or columns')}") from None
        except duckdb.Error as exc:
            raise StudioError(f"{path.name}: {unreadable.format(_one_line(exc))}") from None

    def _check_columns(self, path: Path, n: int) -> None:
        if n > self.bounds.max_columns:
            raise StudioError(f"{path.name}: {n:,} columns, more than the {self.bounds.max_columns:,} a table may have here "
                              "(WDSTUDIO_MAX_COLUMNS); keep the columns you need, or raise the limit")

    def view_sql(self, name: str) -> str | None:
        """The SQL of view ``name``, or None when ``name`` is not a view (a table)."""
        row = self.con.execute("SELECT sql FROM duckdb_views() WHERE view_name = ? AND NOT internal", [name]).fetchall()
        return row[0][0] if row else None

    def _load_csv(self, path: Path, name: str, as_view: bool = False) -> list[str]:
        with path.open("rb") as fh:
            head = fh.read(65536)
        if os.path.getsize(path) == 0 or not head.strip():
            raise StudioError(f"{path.name}: the file is empty; upload a CSV with a header row and data rows")
        encoding = detect_encoding(path)
        self._check_columns(path, header_fields(path, encoding))  # before DuckDB's sniffer, which is slow on a 50,000-column header
        if encoding == "utf-16":
            head = head.decode("utf-16", errors="replace").encode("utf-8")
        elif looks_binary(path):
            raise StudioError(f"{path.name}: this is not a text CSV file (binary bytes found); upload a CSV or Parquet file")
        args = f"{ql(str(path))}, encoding={ql(encoding)}, nullstr=[{', '.join(ql(m) for m in NULL_MARKERS)}]"
        try:
            sniff = self.con.execute(f"SELECT Delimiter, SkipRows, len(Columns) FROM sniff_csv({ql(str(path))}, encoding={ql(encoding)})").fetchall()[0]
            first = re.sub(rb'"[^"]*"', b"", head.split(b"\n", 1)[0])  # the header outside quoted names
            if sniff and sniff[2] == 1 and any(first.count(d) for d in (b",", b";", b"\t", b"|")):
                # the header has delimiters, yet no delimiter fits every row: the rows disagree on their number of fields
                raise StudioError(f"{path.name}: the rows do not all have the header's number of fields (ragged rows); "
                                  "make every row have as many fields as the header")
            self._check_columns(path, int(sniff[2]))
            if sniff and sniff[1]:
                raise StudioError(
                    f"{path.name}: the first {sniff[1]} line(s) do not have the same number of fields as the rest "
                    "(ragged rows, a preamble or an unclosed quote); make every row have the header's number of fields"
                )
        except duckdb.InterruptException:
            raise
        except duckdb.Error as exc:
            raise StudioError(f"{path.name}: could not read as CSV: {_one_line(exc)}; fix the file or save it as a UTF-8 CSV") from None
        self._create(path, name, as_view, f"read_csv({args})", "could not read as CSV: {}; fix the file or save it as a UTF-8 CSV")
        warnings = []
        if encoding == "latin-1":
            warnings.append(f"{path.name}: not valid UTF-8, read as Latin-1")
        delimiter = sniff[0] if sniff else ","
        return warnings + self._clean_numeric(name, allow_decimal_comma=delimiter != ",", view_of=f"read_csv({args})" if as_view else None)

    def _clean_numeric(self, name: str, allow_decimal_comma: bool = False, view_of: str | None = None) -> list[str]:
        return clean_numeric(self.con, self.table(name), allow_decimal_comma, view_of)

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
        """The user's tables and views (not temporary, not the engine's own ``__wd*``)."""
        rows = self.con.sql("SELECT table_name FROM duckdb_tables() WHERE NOT internal AND NOT temporary UNION "
                            "SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary ORDER BY 1").fetchall()
        return [r[0] for r in rows if not r[0].startswith("__wd")]

    def table(self, name: str) -> Table:
        info = self.con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = $1 ORDER BY column_index", [name]
        ).fetchall()
        if not info:
            known = ", ".join(self.tables()) or "none loaded"
            raise StudioError(f"table {name!r} does not exist; load it first (tables: {known})")
        return Table(self.con, name, [c for c, _ in info], {c: t for c, t in info}, guard=self.timed)

    def source(self, table: str = "", sql: str = "") -> Table:
        """The rows a spec trains on: a stored table, or the result of a query."""
        if not sql.strip():
            return self.table(table)
        sql = single_select(sql, "data.sql")
        try:
            rel = self.timed(lambda: self.con.sql(f"SELECT * FROM (\n{sql}\n) LIMIT 0"))
        except duckdb.Error as exc:
            raise StudioError(f"data.sql: {_one_line(exc)}; fix the query") from None
        return Table(self.con, "query", list(rel.columns), {c: str(t) for c, t in zip(rel.columns, rel.types)}, sql, guard=self.timed)

    def run_sql(self, sql: str, save_as: str | None = None, limit: int | None = None, out: str | Path | None = None) -> Any:
        """Run one read-only statement; return a DataFrame (``limit`` rows at most, bounded in
        bytes: see ``fetch``) or a Table; with ``out``, stream every row to that CSV file and
        return the number of rows.

        Allowed: one SELECT / WITH query (saved as table ``save_as`` when given), or one
        ``CREATE [OR REPLACE] TABLE|VIEW name AS SELECT ...`` over the user's tables.  Anything
        else -- DROP, COPY, EXPORT, ATTACH, INSTALL/LOAD, SET/RESET/PRAGMA, several statements --
        is refused before it runs, so a query box can read and derive tables but never change
        configuration, touch files or lose data.  Long queries are interrupted after
        ``query_timeout_s``.
        """
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise StudioError(f"SQL error: {_one_line(exc)}; fix the query") from None
        kinds = [str(st.type).rsplit(".", 1)[-1] for st in statements]
        create = READ_ONLY_CREATE.match(sql) if kinds == ["CREATE"] else None
        if kinds != ["SELECT"] and create is None:
            raise StudioError(
                f"only one read-only query can run here (got {', '.join(kinds) or 'nothing'}); write a single SELECT, "
                "or CREATE TABLE name AS SELECT ... / CREATE VIEW name AS SELECT ... to save a result"
            )
        sql = TRAILING_SEMICOLON.sub("", sql.strip()).strip()
        if create is not None:
            name = create.group("name")
            name = name[1:-1].replace('""', '"') if name.startswith('"') else name
            if name.lower().startswith("__wd"):
                raise StudioError(f"table names starting with __wd are reserved; choose another name than {name!r}")
            body = TRAILING_SEMICOLON.sub("", create.group("body").strip()).strip()
            # as a subquery, a data-modifying CTE (WITH d AS (DELETE ... RETURNING *)) is refused by DuckDB's binder
            self.guarded(lambda: self.con.execute(f"{create.group('head')} SELECT * FROM (\n{body}\n)"))
            if out is not None:
                return self.guarded(lambda: write_csv(self.con, f"SELECT * FROM {qi(name)}", out))
            return self.table(name)
        sql = f"SELECT * FROM (\n{sql}\n)"  # same reason: DuckDB types WITH ... (DELETE ...) SELECT as a SELECT

        def run() -> Any:
            if out is not None:
                return write_csv(self.con, sql, out)
            if save_as:
                self.con.execute(f"CREATE OR REPLACE TABLE {qi(save_as)} AS {sql}")
                return self.table(save_as)
            return bounded_frame(self.con, sql, limit)  # bytes and cell lengths bounded too, not only rows

        return self.guarded(run)

    def timed(self, work: Callable[[], Any], seconds: float | None = ..., message: str = "") -> Any:  # type: ignore[assignment]
        """Run ``work()`` (DuckDB calls on this connection) under a time limit -- the query
        timeout unless ``seconds`` is given (None: no limit): past it every query it runs is
        interrupted (an interrupt stops only the query running at that moment, so it repeats
        until ``work`` returns) and a StudioError says so (``message``, or the query timeout's);
        other DuckDB errors pass through."""
        seconds = self.query_timeout_s if seconds is ... else seconds
        if not seconds:
            return work()
        done, expired = threading.Event(), threading.Event()

        def stop_it() -> None:
            if done.wait(seconds):
                return
            expired.set()
            while not done.is_set():
                try:
                    self.con.interrupt()
                except Exception:  # noqa: BLE001 - closed: nothing to interrupt
                    return
                done.wait(0.05)

        threading.Thread(target=stop_it, name="query-timeout", daemon=True).start()
        try:
            return work()
        except (duckdb.InterruptException, StudioError) as exc:
            if isinstance(exc, StudioError) and not expired.is_set():
                raise
            raise StudioError(message or f"the query ran longer than {seconds:g} s and was stopped; add filters or a LIMIT") from None
        finally:
            done.set()

    def guarded(self, work: Callable[[], Any]) -> Any:
        """``timed``, turning DuckDB errors into one-line StudioErrors (running out of this
        workspace's memory or spill disk says which limit, and what to do)."""
        try:
            return self.timed(work)
        except duckdb.OutOfMemoryException as exc:
            raise StudioError(out_of_resources(exc)) from None
        except duckdb.Error as exc:
            raise StudioError(f"SQL error: {_one_line(exc)}; fix the query") from None

    # ---- profiles -------------------------------------------------------------------------
