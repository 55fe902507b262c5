"""Deterministic train / validation / test split inside DuckDB, recorded and checked.

Three parts: **training** rows fit the preprocessing and the weights; **validation** rows make
every decision (early stopping, the learning-rate plateau, the suggested crosses, the leakage
check, the INT8 variant); **test** rows are scored once, after training, and never feed back.

Kinds (``data.split``):

* ``random`` -- a seeded NumPy permutation (stratified by the label for classification), the
  test part capped at ``data.max_test_rows`` for huge tables;
* ``time`` -- ordered by ``data.split_column``: validation and test are the latest rows (rows
  tied on the boundary time go to the later part; rows without a time to training);
* ``group`` -- every value of ``data.split_column`` (a user, a store) lies in one part only;
* ``column`` -- ``data.split_column`` names each row's part: ``train``, ``validation`` or
  ``test`` (any case).

In memory (``make_split``) the rows are materialised once with a row number ``__wd_row`` and a
part; out of core and with several processes (``stream_split``) views number the rows in the
order the table or file holds them and assign each by a seeded hash (of its number, or of its
group), so every rank and every pass agree.  A ``data.sql`` -- or a view other than a file read
in place -- may return rows in any order (a GROUP BY or a join), so its result is first stored
sorted by all its columns: the same rows get the same numbers on every run and thread count.

Every split carries a ``record`` (kind, seed, fractions, counts, and an order-independent
fingerprint of each part's rows); a run stores it, and ``split_for`` re-creates a run's split
and refuses, naming what changed, when the table no longer gives the same rows.  The streamed
split and the fingerprints use DuckDB's ``hash``, stable for one DuckDB version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from studio_core.common.errors import SplitMismatch, StudioError
from studio_core.data.duckerrors import _one_line
from studio_core.data.source import Source
from studio_core.data.sqlgate import single_select
from studio_core.data.sqlutil import qi
from studio_core.data.workspace import Workspace
from studio_core.spec.schema import DataSpec, Spec

SPLIT_TABLE = "__wd_data"
MASK32 = 0xFFFFFFFF
PARTS = ("train", "validation", "test")
SUFFIX = {"train": "train", "validation": "val", "test": "test"}
COLUMN_VALUES = ("train", "validation", "test")  # what a split column's values may say (any case)
OWN_COLUMNS = ("__wd_row", "__wd_part", "__wd_hash")


@dataclass(frozen=True)
class Split:
    con: duckdb.DuckDBPyConnection
    table: str
    column_types: dict[str, str]
    counts: dict[str, int]  # rows per part ("train", "validation", "test")
    hashed: bool = False  # rows assigned by ``__wd_hash`` (stream_split), not by position
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return self.counts["train"]

    @property
    def n_val(self) -> int:
        return self.counts["validation"]

    @property
    def n_test(self) -> int:
        return self.counts["test"]

    def part(self, name: str) -> Source:
        """The rows of part ``name`` ("train", "validation" -- or "val" -- or "test")."""
        return Source(self.con, qi(f"{self.table}_{SUFFIX.get(name, name)}"))

    @property
    def train(self) -> Source:
        return self.part("train")

    @property
    def val(self) -> Source:
        return self.part("validation")

    @property
    def test(self) -> Source:
        return self.part("test")

    def shard(self, part: str, rank: int, world: int) -> Source:
        """Rank ``rank``'s rows of ``part``: disjoint shards that cover the part -- by hash for a
        hashed split (sizes vary like a coin toss: +-0.1 % at millions of rows), else every
        ``world``-th row of the materialised part (sizes within one row)."""
        whole = self.part(part)
        if world <= 1:
            return whole
        if self.hashed:  # order-free: the hash's high 32 bits, independent of the part bits
            return Source(self.con, f"(SELECT * FROM {whole.relation} WHERE (__wd_hash >> 32) % {int(world)} = {int(rank)})")
        numbered = f"(SELECT *, row_number() OVER () - 1 AS __wd_pos FROM {whole.relation})"
        return Source(self.con, f"(SELECT * FROM {numbered} WHERE __wd_pos % {int(world)} = {int(rank)})")

    def drop(self) -> None:
        """Remove the split's tables and views (a finished job's copy of the rows)."""
        clear_split(self.con, self.table)


def clear_split(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Drop an earlier split's tables or views (the two kinds cannot replace each other)."""
    for name in [f"{table}_{s}" for s in SUFFIX.values()] + [table, f"{table}_rows", f"{table}_numbered", f"{table}_cuts"]:
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


def _needs_order(ws: Workspace, data: DataSpec) -> bool:
    """A query result, or a view other than a file read in place, has no fixed row order."""
    return bool(data.sql.strip()) or ws.view_sql(data.table) not in (None, ws.file_views.get(data.table))


def _ordered_source(ws: Workspace, data: DataSpec, table: str, columns: Sequence[str] = ()) -> str:
    """The rows in a fixed order: the table or file as it is, or a query's result stored sorted
    by ``columns`` (default: all of them)."""
    src = source_sql(data)
    if not _needs_order(ws, data):
        return src
    keep = list(dict.fromkeys([*columns, data.split_column] if data.split_column else list(columns)))
    cols = ", ".join(qi(c) for c in keep) if columns else "*"
    ws.con.execute(f"CREATE TEMP TABLE {qi(table + '_rows')} AS SELECT {cols} FROM {src} ORDER BY ALL")
    return qi(table + "_rows")


def _test_fraction(data: DataSpec, n: int) -> float:
    """``data.test_fraction``, lowered so that the test part holds at most ``max_test_rows``."""
    frac = min(max(data.test_fraction, 0.0), 1.0)
    if data.max_test_rows and n:
        frac = min(frac, data.max_test_rows / n)
    return frac


def _column_part(data: DataSpec) -> str:
    c = f"lower(trim(CAST({qi(data.split_column)} AS VARCHAR)))"
    return f"CASE {c} WHEN 'train' THEN 0 WHEN 'validation' THEN 1 WHEN 'test' THEN 2 END"


def check_split_column(con: duckdb.DuckDBPyConnection, relation: str, column: str) -> list[str]:
    """Values of a ``column`` split column that name no part (up to five, as text)."""
    allowed = ", ".join(f"'{v}'" for v in COLUMN_VALUES)
    rows = con.execute(f"SELECT DISTINCT CAST({qi(column)} AS VARCHAR) FROM {relation} "
                       f"WHERE {qi(column)} IS NULL OR lower(trim(CAST({qi(column)} AS VARCHAR))) NOT IN ({allowed}) LIMIT 5").fetchall()
    return ["NULL" if r[0] is None else repr(r[0]) for r in rows]


def _refuse_bad_column(con: duckdb.DuckDBPyConnection, relation: str, data: DataSpec) -> None:
    bad = check_split_column(con, relation, data.split_column)
    if bad:
        raise StudioError(f"data.split_column {data.split_column!r} has value(s) {', '.join(bad)}; each row must say "
                          "train, validation or test (any case)")


def _random_parts(n: int, data: DataSpec, labels: np.ndarray | None) -> np.ndarray:
    """Part codes (0 train, 1 validation, 2 test) for ``n`` rows from a seeded permutation, drawn
    within each label value when ``labels`` is given (stratified)."""
    rng = np.random.default_rng(data.split_seed)
    part = np.zeros(n, dtype=np.int8)
    val_frac, test_frac = data.validation_fraction, _test_fraction(data, n)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == k) for k in range(int(labels.max()) + 1 if n else 0)]
    for rows in groups:
        perm = rows[rng.permutation(len(rows))]
        n_test, n_val = int(round(len(rows) * test_frac)), int(round(len(rows) * val_frac))
        part[perm[:n_test]] = 2
        part[perm[n_test : n_test + n_val]] = 1
    return part


def _group_parts(groups: np.ndarray, data: DataSpec, n: int) -> np.ndarray:
    """Part codes per row where whole groups (codes 0..G-1 per row) are assigned in a seeded
    order until each part holds its share of the rows."""
    sizes = np.bincount(groups)
    order = np.random.default_rng(data.split_seed).permutation(len(sizes))
    targets = (int(round(n * _test_fraction(data, n))), int(round(n * data.validation_fraction)))
    code = np.zeros(len(sizes), dtype=np.int8)
    filled, part = 0, 0
    for g in order:
        while part < 2 and filled >= targets[part]:
            part, filled = part + 1, 0
        if part == 2:
            break
        code[g] = 2 - part  # test first, then validation
        filled += sizes[g]
    return code[groups]


def _make_cuts(con: duckdb.DuckDBPyConnection, table: str, data: DataSpec, relation: str, n: int) -> str:
    """A one-row table of the two boundary times of a ``time`` split (the time at the first
    validation and the first test position, rows sorted by time); returns the part expression
    over ``relation`` cross-joined with it.  Rows tied with a boundary go to the later part."""
    t = qi(data.split_column)
    n_test = int(round(n * _test_fraction(data, n)))
    n_val = int(round(n * data.validation_fraction))
    ranked = f"(SELECT {t} AS t, row_number() OVER (ORDER BY {t} NULLS FIRST) - 1 AS pos FROM {relation})"
    at = lambda k, on: f"(SELECT t FROM {ranked} WHERE pos = {int(k)})" if on else "NULL"  # noqa: E731
    con.execute(f"CREATE OR REPLACE TEMP TABLE {qi(table + '_cuts')} AS SELECT {at(n - n_test, n_test)} AS __wd_test_at, "
                f"{at(n - n_test - n_val, n_val)} AS __wd_val_at")
    return f"CASE WHEN {t} IS NULL THEN 0 WHEN {t} >= __wd_test_at THEN 2 WHEN {t} >= __wd_val_at THEN 1 ELSE 0 END"


def _rank_codes(con: duckdb.DuckDBPyConnection, relation: str, column: str) -> np.ndarray:
    """Per row, in ``__wd_row`` order, a code 0..K-1 of its value of ``column`` (NULL is a value too)."""
    got = con.execute(f"SELECT (dense_rank() OVER (ORDER BY CAST({qi(column)} AS VARCHAR) NULLS FIRST) - 1)::BIGINT AS k "
                      f"FROM {relation} ORDER BY __wd_row").fetchnumpy()["k"]
    return np.asarray(got, dtype=np.int64)


SKETCH_ROWS = 256


def _row_hash(columns: Sequence[str]) -> str:
    return f"hash({', '.join(qi(c) for c in columns)})" if columns else "0"


def _fingerprints(con: duckdb.DuckDBPyConnection, relation: str, part_expr: str,
                  columns: Sequence[str]) -> tuple[dict[str, int], dict[str, str], list[str]]:
    """Rows per part, each part's fingerprint (its row count and the sum of a hash of every
    row's values: order-independent; a changed, added or removed row changes it), and the
    training rows' smallest row hashes, distinct (a bottom-k sketch: whether another table holds
    training rows can be estimated without keeping them, ``training_overlap``) -- one pass."""
    row_hash = _row_hash(columns)
    got = con.execute(f"SELECT {part_expr} AS p, count(*), sum({row_hash})::HUGEINT, min({row_hash}, {SKETCH_ROWS}) "
                      f"FROM {relation} GROUP BY 1").fetchall()
    counts, prints, sketch = dict.fromkeys(PARTS, 0), {}, []
    for p, n, s, smallest in got:
        if p is None:
            continue
        counts[PARTS[int(p)]] = int(n)
        prints[PARTS[int(p)]] = f"{int(n)}:{int(s or 0) % (1 << 64):016x}"
        if int(p) == 0:  # duplicated rows repeat a hash: the sketch keeps each once
            sketch = [f"{int(h):016x}" for h in sorted(set(smallest or []))]
    return counts, {k: prints.get(k, "0:0000000000000000") for k in PARTS}, sketch


def training_overlap(con: duckdb.DuckDBPyConnection, relation: str, available: set[str], record: dict[str, Any]) -> tuple[int, int] | None:
    """(sketched training rows found in ``relation``, sketch size): found / size estimates the
    share of the run's training rows that ``relation`` holds.  None when the run kept no sketch
    or the relation lacks a column the rows were hashed over."""
    sketch, columns = record.get("train_sketch") or [], record.get("columns") or []
    if not sketch or not set(columns) <= available:
        return None
    listed = ", ".join(f"{int(h, 16)}::UBIGINT" for h in sketch)
    found = con.execute(f"SELECT count(DISTINCT h) FROM (SELECT {_row_hash(columns)} AS h FROM {relation}) WHERE h IN ({listed})").fetchall()[0][0]
    return int(found), len(sketch)


def _record(data: DataSpec, method: str, counts: dict[str, int], prints: dict[str, str], stratified: bool,
            sketch: list[str] | None = None, columns: Sequence[str] = ()) -> dict[str, Any]:
    n = sum(counts.values())
    return {"train_sketch": sketch or [], "columns": list(columns), "kind": data.split, "method": method, "seed": data.split_seed, "column": data.split_column,
            "stratified": stratified, "fractions": {"validation": data.validation_fraction, "test": round(_test_fraction(data, n), 6)},
            "max_test_rows": data.max_test_rows, "counts": counts, "fingerprints": prints}


def make_split(ws: Workspace, data: DataSpec, table: str = SPLIT_TABLE, n_rows: int | None = None) -> Split:
    """Materialise the spec's rows with a deterministic part per row (see the module docstring).
    ``n_rows``: the source's row count when the caller has just counted it."""
    con = ws.con
    clear_split(con, table)
    try:
        src = _ordered_source(ws, data, table)
        numbered = qi(table + "_numbered")
        con.execute(f"CREATE OR REPLACE TEMP TABLE {numbered} AS SELECT row_number() OVER () - 1 AS __wd_row, * FROM {src}")
        n = int(con.execute(f"SELECT count(*) FROM {numbered}").fetchall()[0][0]) if n_rows is None else int(n_rows)
        stratified, part_sql, joined = False, None, numbered
        if data.split == "column":
            _refuse_bad_column(con, numbered, data)
            part_sql = _column_part(data)
        elif data.split == "time":
            part_sql, joined = _make_cuts(con, table, data, numbered, n), f"{numbered}, {qi(table + '_cuts')}"
        else:
            if data.split == "group":
                parts = _group_parts(_rank_codes(con, numbered, data.split_column), data, n) if n else np.zeros(0, np.int8)
            else:
                stratified = data.task in ("binary", "multiclass") and bool(data.label)
                parts = _random_parts(n, data, _rank_codes(con, numbered, data.label) if stratified else None)
            con.register("__wd_mask", pa.table({"__wd_part": parts}))
            try:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {qi(table)} AS SELECT s.*, m.__wd_part FROM {numbered} s POSITIONAL JOIN __wd_mask m")
            finally:
                con.unregister("__wd_mask")
        if part_sql is not None:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {qi(table)} AS SELECT {numbered}.*, ({part_sql})::TINYINT AS __wd_part FROM {joined}")
        con.execute(f"DROP TABLE {numbered}")
        # three plain tables, not filtered views: binding SELECT * over thousands of columns costs
        # ~25 ms a query, and suggest/fit run a few queries per column
        for code, name in enumerate(PARTS):
            con.execute(f"CREATE OR REPLACE TEMP TABLE {qi(table + '_' + SUFFIX[name])} AS SELECT * EXCLUDE (__wd_part) FROM {qi(table)} "
                        f"WHERE __wd_part = {code} ORDER BY __wd_row")
        rel = con.sql(f"SELECT * FROM {qi(table)} LIMIT 0")
        types = {c: str(t) for c, t in zip(rel.columns, rel.types) if c not in OWN_COLUMNS}
        counts, prints, sketch = _fingerprints(con, qi(table), "__wd_part", list(types))
        for helper in (table, f"{table}_rows", f"{table}_cuts"):
            con.execute(f"DROP TABLE IF EXISTS {qi(helper)}")
    except duckdb.Error as exc:
        raise StudioError(f"could not read the training rows: {_one_line(exc)}; check data.table / data.sql") from None
    return Split(con, table, types, counts, False, _record(data, "permutation", counts, prints, stratified, sketch, list(types)))


def used_columns(spec: Spec) -> list[str]:
    """The columns a spec reads (features and label): what identifies a row for the model."""
    return list(dict.fromkeys([*spec.feature_names(), spec.data.label]))


def stream_split(ws: Workspace, data: DataSpec, table: str = SPLIT_TABLE, columns: Sequence[str] = ()) -> Split:
    """The split as views over the rows, each row assigned by a seeded hash (of its position, or
    of its group); ``columns`` (default: all) are the ones a ``data.sql`` result is stored and
    sorted by.  See the module docstring."""
    con = ws.con
    clear_split(con, table)
    try:
        src = _ordered_source(ws, data, table, columns)
        n = int(con.execute(f"SELECT count(*) FROM {src}").fetchall()[0][0])
        key = f"CAST({qi(data.split_column)} AS VARCHAR)" if data.split == "group" else "__wd_row"
        base = f"(SELECT *, hash({int(data.split_seed)}, {key}) AS __wd_hash FROM (SELECT row_number() OVER () - 1 AS __wd_row, * FROM {src}))"
        joined = f"{base} b"
        if data.split == "column":
            _refuse_bad_column(con, src, data)
            part = _column_part(data)
        elif data.split == "time":
            part, joined = _make_cuts(con, table, data, src, n), f"{base} b, {qi(table + '_cuts')}"
        else:
            test = int(round(_test_fraction(data, n) * (MASK32 + 1)))
            val = test + int(round(min(max(data.validation_fraction, 0.0), 1.0) * (MASK32 + 1)))
            low = f"(__wd_hash & {MASK32})"
            part = f"CASE WHEN {low} < {test} THEN 2 WHEN {low} < {val} THEN 1 ELSE 0 END"
        con.execute(f"CREATE OR REPLACE TEMP VIEW {qi(table)} AS SELECT b.*, ({part})::TINYINT AS __wd_part FROM {joined}")
        for code, name in enumerate(PARTS):
            con.execute(f"CREATE OR REPLACE TEMP VIEW {qi(table + '_' + SUFFIX[name])} AS SELECT * FROM {qi(table)} WHERE __wd_part = {code}")
        rel = con.sql(f"SELECT * FROM {qi(table)} LIMIT 0")
        types = {name: str(typ) for name, typ in zip(rel.columns, rel.types) if name not in OWN_COLUMNS}
        counts, prints, sketch = _fingerprints(con, qi(table), "__wd_part", list(types))
    except duckdb.Error as exc:
        raise StudioError(f"could not read the training rows: {_one_line(exc)}; check data.table / data.sql") from None
    return Split(con, table, types, counts, True, _record(data, "hash", counts, prints, False, sketch, list(types)))


def describe_change(recorded: dict[str, Any], now: Split) -> str:
    """'' when ``now`` holds the rows ``recorded`` describes, else what differs, in words."""
    then = recorded.get("fingerprints", {})
    changed = [p for p in PARTS if then.get(p) != now.record["fingerprints"][p]]
    if not changed:
        return ""
    counts = recorded.get("counts", {})
    return "; ".join(f"{p} rows: {counts.get(p, '?'):,} then, {now.counts[p]:,} now" + ("" if counts.get(p) != now.counts[p] else " (other values)")
                     for p in changed)


def split_for(ws: Workspace, spec: Spec, metrics: dict, table: str = SPLIT_TABLE, data: DataSpec | None = None) -> Split:
    """The split a run was trained on (its ``metrics["split"]``), re-created and checked: a table
    that no longer gives the same rows in each part is refused with what changed.  ``data``
    replaces the spec's rows (another table holding them)."""
    recorded = metrics.get("split")
    if not isinstance(recorded, dict):
        raise SplitMismatch("this run was trained before runs recorded their train/validation/test split, so its held-out rows "
                          "cannot be re-created; train it again")
    data = data or spec.data
    split = stream_split(ws, data, table, used_columns(spec)) if recorded.get("method") == "hash" else make_split(ws, data, table)
    change = describe_change(recorded, split)
    if change:
        split.drop()
        where = f"table {data.table!r}" if not data.sql.strip() else "the rows of data.sql"
        raise SplitMismatch(f"{where} no longer gives the rows this run was trained and tested on ({change}); "
                          "load the data the run was trained on, or train a new run on this data")
    return split
