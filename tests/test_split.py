"""The three-way split: kinds, determinism, stratification, caps, and the fingerprint check."""

from __future__ import annotations

import numpy as np
import pytest

from studio_core.common.errors import SplitMismatch, StudioError
from studio_core.data.split import make_split, split_for, stream_split
from studio_core.data.workspace import Workspace
from studio_core.features.validate import validate
from studio_core.spec.schema import DataSpec, Spec


def _rows(ws: Workspace, source, column: str = "__wd_row") -> list:
    return [r[0] for r in ws.con.execute(f"SELECT {column} FROM {source.relation} ORDER BY __wd_row").fetchall()]


def _table(ws: Workspace, n: int = 2000, seed: int = 0, name: str = "t") -> None:
    rng = np.random.default_rng(seed)
    ws.con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM (VALUES (0, 0, 0, 0)) v(i, user_id, day, target) LIMIT 0")
    users = rng.integers(0, 120, n)
    days = rng.integers(0, 60, n)
    target = (rng.random(n) < 0.1).astype(int)  # 10 % positives: stratification matters
    import pyarrow as pa

    ws.con.register("__src", pa.table({"i": np.arange(n), "user_id": users, "day": days, "target": target}))
    ws.con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM __src")
    ws.con.unregister("__src")


def test_random_split_has_three_parts_is_seeded_and_stratified():
    ws = Workspace()
    _table(ws)
    data = DataSpec(table="t", label="target", task="binary", positive_class="1")
    other = _rows(ws, make_split(ws, DataSpec(**{**data.__dict__, "split_seed": 7})).test)
    a = make_split(ws, data)  # each split replaces the previous one's tables: read each before the next
    assert a.n_train + a.n_val + a.n_test == 2000 and abs(a.n_val - 300) <= 1 and abs(a.n_test - 300) <= 1
    test_a = _rows(ws, a.test)
    assert test_a == _rows(ws, make_split(ws, data).test) and test_a != other
    a = make_split(ws, data)
    parts = [set(_rows(ws, a.part(p))) for p in ("train", "validation", "test")]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    positives = ws.con.execute("SELECT count(*) FROM t WHERE target = 1").fetchall()[0][0]
    split = make_split(ws, data)
    for part, frac in (("validation", 0.15), ("test", 0.15)):  # each class split in the same shares: at most one row off
        got = ws.con.execute(f"SELECT count(*) FROM {split.part(part).relation} WHERE target = 1").fetchall()[0][0]
        assert abs(got - positives * frac) <= 1
    assert split.record["stratified"] and split.record["kind"] == "random"


def test_the_test_part_is_capped_for_huge_tables():
    ws = Workspace()
    _table(ws)
    split = make_split(ws, DataSpec(table="t", label="target", task="binary", positive_class="1", max_test_rows=100))
    assert abs(split.n_test - 100) <= 2 and abs(split.n_val - 300) <= 1
    streamed = stream_split(ws, DataSpec(table="t", label="target", max_test_rows=100))
    assert 60 < streamed.n_test < 140


@pytest.mark.parametrize("splitter", [make_split, stream_split])
def test_time_split_puts_the_latest_rows_in_validation_then_test(splitter):
    ws = Workspace()
    _table(ws)
    ws.con.execute("UPDATE t SET day = NULL WHERE i < 5")  # no time: training
    split = splitter(ws, DataSpec(table="t", label="target", split="time", split_column="day"))
    days = {p: _rows(ws, split.part(p), "day") for p in ("train", "validation", "test")}
    assert max(d for d in days["train"] if d is not None) < min(days["validation"]) and max(days["validation"]) < min(days["test"])
    assert days["train"].count(None) == 5 and None not in days["validation"] + days["test"]
    assert 0.10 < len(days["test"]) / 2000 < 0.20 and 0.10 < len(days["validation"]) / 2000 < 0.20  # ties stay together


@pytest.mark.parametrize("splitter", [make_split, stream_split])
def test_group_split_keeps_each_group_on_one_side(splitter):
    ws = Workspace()
    _table(ws)
    split = splitter(ws, DataSpec(table="t", label="target", split="group", split_column="user_id"))
    users = {p: set(_rows(ws, split.part(p), "user_id")) for p in ("train", "validation", "test")}
    assert not (users["train"] & users["validation"]) and not (users["train"] & users["test"]) and not (users["validation"] & users["test"])
    assert sum(map(len, users.values())) == 120
    assert 0.08 < split.n_test / 2000 < 0.25 and 0.08 < split.n_val / 2000 < 0.25


@pytest.mark.parametrize("splitter", [make_split, stream_split])
def test_a_split_column_names_each_rows_part_and_other_values_are_refused(splitter):
    ws = Workspace()
    _table(ws)
    ws.con.execute("CREATE TABLE p AS SELECT *, CASE WHEN i % 10 = 0 THEN 'Test' WHEN i % 10 = 1 THEN ' VALIDATION ' ELSE 'train' END AS part FROM t")
    split = splitter(ws, DataSpec(table="p", label="target", split="column", split_column="part"))
    assert set(_rows(ws, split.test, "i % 10")) == {0} and set(_rows(ws, split.val, "i % 10")) == {1} and split.n_train == 1600
    ws.con.execute("UPDATE p SET part = 'holdout' WHERE i = 3")
    data = DataSpec(table="p", label="target", task="binary", positive_class="1", split="column", split_column="part")
    with pytest.raises(StudioError, match="'holdout'.*train, validation or test"):
        splitter(ws, data)
    problems = validate(Spec(data=data), ws.table("p"))
    assert any(p.field == "data.split_column" and "'holdout'" in p.message for p in problems)


def test_split_kinds_are_checked_by_validate():
    ws = Workspace()
    _table(ws)
    fields = lambda d: {p.field for p in validate(Spec(data=d), ws.table("t"))}  # noqa: E731
    assert "data.split_column" in fields(DataSpec(table="t", label="target", positive_class="1", split="time"))
    assert "data.split_column" in fields(DataSpec(table="t", label="target", positive_class="1", split_column="day"))  # random + a column
    assert "data.split" in fields(DataSpec(table="t", label="target", positive_class="1", split="sideways"))
    assert "data.test_fraction" in fields(DataSpec(table="t", label="target", positive_class="1", validation_fraction=0.5, test_fraction=0.5))


@pytest.mark.parametrize("splitter", [make_split, stream_split])
def test_a_run_refuses_to_be_re_evaluated_on_other_rows(splitter):
    ws = Workspace()
    _table(ws)
    spec = Spec(data=DataSpec(table="t", label="target", task="binary", positive_class="1"))
    recorded = splitter(ws, spec.data).record
    metrics = {"split": recorded}
    again = split_for(ws, spec, metrics)  # the same rows: accepted
    assert again.counts == recorded["counts"]
    _table(ws, seed=1)  # reloaded under the same name with other rows (same count)
    with pytest.raises(SplitMismatch, match=r"no longer gives the rows.*test rows: (\d[\d,]*) then, \1 now \(other values\)"):
        split_for(ws, spec, metrics)
    ws.con.execute("DELETE FROM t WHERE i < 40")  # fewer rows
    with pytest.raises(SplitMismatch, match="then, .* now"):
        split_for(ws, spec, metrics)
    with pytest.raises(SplitMismatch, match="train it again"):
        split_for(ws, spec, {"split": "permutation"})  # a run from before splits were recorded


def test_a_group_by_query_gives_the_same_split_on_every_run_and_thread_count(tmp_path):
    """A GROUP BY returns its groups in an order that depends on threads and timing; the split
    stores the result sorted first, so the same query gives the same parts every time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    n = 60_000
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"user": rng.integers(0, 5000, n), "item": rng.integers(0, 50, n), "click": (rng.random(n) < 0.3).astype(int)}), path)
    sql = "SELECT user, count(*) AS n, avg(item) AS mean_item, max(click) AS clicked FROM events GROUP BY user"
    seen = set()
    for threads in (1, 4, 1, 4):
        ws = Workspace(threads=threads)
        ws.load(path, "events")
        for splitter in (make_split, stream_split):
            split = splitter(ws, DataSpec(sql=sql, label="clicked", task="binary", positive_class="1"))
            seen.add((splitter.__name__, tuple(sorted(split.record["fingerprints"].items()))))
    assert len(seen) == 2  # one split per method, whatever the thread count
