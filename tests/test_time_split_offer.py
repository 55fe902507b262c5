"""Logs with a time column (issue 14, item 8): the suggestion offers the time-ordered split, with
the reason, so a random split does not score the model on a past it has already seen."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_app import studio

from studio_core.data.split import split_for
from studio_core.data.workspace import Workspace
from studio_core.features.suggest import suggest
from studio_core.features.suggest_checks import time_columns
from studio_core.runs import train as pipeline
from studio_core.spec.schema import DataSpec


def _log(path, n=3000, seed=0):
    """A click log whose click rate drifts with time: ``ts`` (a timestamp), ``unixTime`` (its
    seconds), and columns that are no time: a count, a weekday."""
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 90 * 86400, n)), unit="s")
    day = np.arange(n) / n
    df = pd.DataFrame({"ts": ts, "user": rng.integers(0, 50, n).astype(str), "event_count": rng.integers(0, 500, n),
                       "day_of_week": ts.day_of_week, "price": rng.gamma(2, 10, n)})
    df["clicked"] = (rng.random(n) < 0.2 + 0.4 * day).astype(int)
    df.to_csv(path, index=False)
    return path


def test_a_log_with_a_time_column_is_offered_the_time_split(tmp_path):
    ws = Workspace()
    ws.load(_log(tmp_path / "log.csv"), name="log")
    sug = suggest(ws, DataSpec(table="log", label="clicked"))
    assert sug.time_columns == ["ts"] and sug.spec.data.split == "random"
    note = next(n for n in sug.notes if n.startswith("ts orders the rows in time"))
    assert "data.split = 'time'" in note and "latest rows" in note

    timed = suggest(ws, DataSpec(table="log", label="clicked", split="time", split_column="ts"))
    assert timed.time_columns == [] and not any("orders the rows in time" in n for n in timed.notes)
    assert {r.name: r.role for r in timed.roles}["ts"] == "ignored"
    spec = timed.spec
    spec.train.epochs = 1
    run = pipeline.train(spec, ws, tmp_path / "run")
    split = split_for(ws.fork(), spec, run.metrics)
    con = split.train.con
    last_train = con.execute(f"SELECT max(ts) FROM {split.train.relation}").fetchall()[0][0]
    first_val, last_val = con.execute(f"SELECT min(ts), max(ts) FROM {split.val.relation}").fetchall()[0]
    first_test = con.execute(f"SELECT min(ts) FROM {split.test.relation}").fetchall()[0][0]
    assert last_train <= first_val and last_val <= first_test  # validation and test are the latest rows
    split.drop()


@pytest.mark.parametrize(("types", "stats", "want"), [
    ({"unixTime": "BIGINT", "x": "DOUBLE"}, {"unixTime": (100, 100, True), "x": (100, 100, False)}, ["unixTime"]),
    ({"created_at": "DOUBLE", "when": "DATE"}, {"created_at": (100, 90, False), "when": (100, 30, True)}, ["when", "created_at"]),
    ({"event_count": "BIGINT", "age": "BIGINT", "counts": "BIGINT"}, {c: (100, 80, True) for c in ("event_count", "age", "counts")}, []),
    ({"day_of_week": "BIGINT", "date_label": "VARCHAR"}, {"day_of_week": (100, 7, True), "date_label": (100, 50, False)}, []),
])
def test_time_columns_by_type_and_name_and_their_counter_cases(types, stats, want):
    assert time_columns(types, stats, "label") == want


def test_features_page_offers_the_time_split_and_suggests_again(app, tmp_path):
    from test_app import load_file

    at = app
    load_file(at, _log(tmp_path / "log.csv"))
    at.switch_page("views/features.py").run()
    at.selectbox(key="feat_table").set_value("log").run()
    at.selectbox(key="feat_label").set_value("clicked")
    at.button(key="suggest").click().run()
    assert not at.exception and any("orders the rows in time" in w.value for w in at.warning)
    at.button(key="time_split_ts").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert studio(at).spec.data.split == "time" and studio(at).spec.data.split_column == "ts"
    assert not [b for b in at.button if b.key == "time_split_ts"]  # offered once, gone once taken
