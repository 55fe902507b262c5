"""The studio's DuckDB sandbox: hostile SQL and paths are refused, the session keeps working."""

from __future__ import annotations

import time

import pytest

from studio_core.common.errors import StudioError
from studio_core.data.workspace import Workspace

HOSTILE = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM glob('/*')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM read_parquet('/tmp/x.parquet')",
    "COPY synthetic TO '/tmp/stolen.csv'",
    "COPY (SELECT 1) TO '/tmp/stolen.csv'",
    "EXPORT DATABASE '/tmp/stolen'",
    "ATTACH '/tmp/other.db' AS other",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET memory_limit = '100GB'",
    "RESET threads",
    "PRAGMA threads = 64",
    "SELECT 1; DROP TABLE synthetic",
    "DROP TABLE synthetic",
    "DELETE FROM synthetic",
    "UPDATE synthetic SET x1 = 0",
    "INSERT INTO synthetic SELECT * FROM synthetic",
    "ALTER TABLE synthetic RENAME TO gone",
    "CREATE MACRO m(a) AS a + 1",
    "CREATE SECRET s (TYPE s3, KEY_ID 'x', SECRET 'y')",
    "CREATE TABLE t (a INT)",
    "CREATE TABLE __wd_data_train AS SELECT 1",
    "CREATE TABLE stolen AS SELECT * FROM read_csv('/etc/passwd')",
    "CREATE VIEW v AS SELECT * FROM read_text('/etc/hostname')",
    "CALL pragma_version()",
    "DETACH memory",
    "CHECKPOINT",
    "SELECT * FROM sniff_csv('/etc/passwd')",
    "WITH d AS (DELETE FROM synthetic RETURNING *) SELECT * FROM d",
    "WITH d AS (UPDATE synthetic SET x1 = -1 RETURNING *) SELECT count(*) FROM d",
    "WITH d AS (INSERT INTO synthetic SELECT * FROM synthetic RETURNING *) SELECT count(*) FROM d",
    "CREATE TABLE emptied AS WITH d AS (DELETE FROM synthetic RETURNING *) SELECT * FROM d",
    "CREATE VIEW emptied AS WITH d AS (DELETE FROM synthetic RETURNING *) SELECT * FROM d",
]


@pytest.fixture
def sandbox(synthetic_csv):
    ws = Workspace(threads=1, memory_limit="1GB", allowed_dirs=[synthetic_csv.parent], query_timeout_s=1.0)
    ws.load(synthetic_csv)
    return ws


@pytest.mark.parametrize("sql", HOSTILE)
def test_hostile_sql_is_refused_and_the_session_still_works(sandbox, sql):
    before = sandbox.run_sql("SELECT count(*) AS n, sum(x1) AS s FROM synthetic").iloc[0].tolist()
    with pytest.raises(StudioError) as info:
        sandbox.run_sql(sql)
    message = str(info.value)
    assert "\n" not in message and ("fix the query" in message or "read-only" in message or "reserved" in message), message
    assert len(sandbox.run_sql("SELECT * FROM synthetic")) == 1200  # data intact, connection usable
    assert sandbox.run_sql("SELECT count(*) AS n, sum(x1) AS s FROM synthetic").iloc[0].tolist() == before  # not modified
    assert sandbox.tables() == ["synthetic"]


def test_read_only_kinds_run(sandbox):
    assert sandbox.run_sql("WITH c AS (SELECT colour, count(*) n FROM synthetic GROUP BY 1) SELECT * FROM c").n.sum() == 1200
    saved = sandbox.run_sql("CREATE TABLE reds AS SELECT * FROM synthetic WHERE colour = 'red'")
    assert saved.name == "reds" and saved.n_rows() > 0
    view = sandbox.run_sql('CREATE OR REPLACE VIEW "big ones" AS SELECT * FROM synthetic WHERE size = \'L\'')
    assert view.n_rows() > 0 and set(sandbox.tables()) >= {"synthetic", "reds"}
    assert sandbox.run_sql("SELECT * FROM synthetic", save_as="copy").n_rows() == 1200


def test_long_query_is_interrupted_and_the_session_survives(sandbox):
    started = time.perf_counter()
    with pytest.raises(StudioError, match="longer than 1 s"):
        sandbox.run_sql("SELECT sum(a.range * b.range) FROM range(200000) a, range(200000) b")
    assert time.perf_counter() - started < 5
    assert len(sandbox.run_sql("SELECT 1 AS x")) == 1


def test_files_outside_the_allowed_folders_are_not_loaded(sandbox, tmp_path_factory):
    other = tmp_path_factory.mktemp("elsewhere") / "x.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(StudioError, match="upload the file instead"):
        sandbox.load(other)
    fork = sandbox.fork()
    with pytest.raises(StudioError):
        fork.run_sql(f"SELECT * FROM read_csv('{other}')")
    assert fork.run_sql("SELECT count(*) AS n FROM synthetic").n[0] == 1200


def test_configuration_is_locked_even_through_python(sandbox):
    import duckdb

    with pytest.raises(duckdb.Error):
        sandbox.con.execute("SET enable_external_access = true")
    assert sandbox.con.execute("SELECT current_setting('threads')").fetchall()[0][0] == 1


@pytest.mark.parametrize("sql", ["SELECT 1 AS x) ; DROP TABLE synthetic; SELECT * FROM (SELECT 1",
                                 "SELECT * FROM synthetic; DROP TABLE synthetic", "DROP TABLE synthetic",
                                 "SELECT * FROM read_csv('/etc/passwd')"])
def test_a_specs_sql_cannot_smuggle_statements(sandbox, sql):
    from studio_core.runs import train as pipeline
    from studio_core.spec.schema import DataSpec, Spec

    spec = Spec(data=DataSpec(sql=sql, label="target"))
    with pytest.raises(StudioError):
        pipeline.train(spec, sandbox)
    with pytest.raises(StudioError):
        sandbox.source("", sql)
    assert sandbox.tables() == ["synthetic"] and len(sandbox.run_sql("SELECT * FROM synthetic")) == 1200


def test_data_modifying_ctes_through_save_as_are_refused(sandbox):
    with pytest.raises(StudioError):
        sandbox.run_sql("WITH d AS (DELETE FROM synthetic RETURNING *) SELECT * FROM d", save_as="copy")
    assert len(sandbox.run_sql("SELECT * FROM synthetic")) == 1200


def test_views_are_listed_and_reading_a_slow_view_is_timed_out_too(sandbox):
    view = sandbox.run_sql("CREATE VIEW slow AS SELECT sum(a.range * b.range) AS s FROM range(200000) a, range(200000) b")
    assert "slow" in sandbox.tables()
    started = time.perf_counter()
    with pytest.raises(StudioError, match="longer than 1 s"):
        sandbox.guarded(view.n_rows)
    assert time.perf_counter() - started < 5


def test_a_trailing_comment_does_not_break_a_query(sandbox):
    assert len(sandbox.run_sql("SELECT * FROM synthetic -- all rows")) == 1200
    assert sandbox.source("", "SELECT * FROM synthetic -- all rows").n_rows() == 1200
    assert len(sandbox.run_sql("SELECT * FROM synthetic; -- done")) == 1200
