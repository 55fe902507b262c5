"""A shared studio one user cannot break: server state no client message can clear, sessions that
cannot read each other's spill files, server-issued tokens, session caps, bounded pages, escaped
user text and damaged runs listed as damaged.  Each test failed before its fix."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest
from test_app import APP, _session_with_run, load_sample, studio

from studio_core.jobs.hub import Hub, Limits, hub, remove_stale_spools, reset_hub

ROOT = Path(APP).parents[1]


def test_a_clear_cache_message_changes_nothing(app):
    """Any websocket client can make Streamlit clear its caches: sessions, jobs and the job cap
    used to live there.  A refresh after it still finds the same tables."""
    at = app
    load_sample(at)
    token, server, cap = studio(at).owner, hub(), hub().slots.capacity
    st.cache_resource.clear()  # what a `clear_cache` back message does on the server
    st.cache_data.clear()
    refreshed = AppTest.from_file(APP, default_timeout=120)
    refreshed.query_params["s"] = token
    refreshed.run()
    assert not refreshed.exception and hub() is server and hub().slots.capacity == cap
    assert studio(refreshed) is studio(at) and "adult" in studio(refreshed).ws.tables()


def test_the_developer_menu_and_raw_tracebacks_are_off():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["toolbarMode"] == "viewer" and config["client"]["showErrorDetails"] in ("type", "none")


def test_each_session_spills_into_its_own_sandboxed_folder_that_others_cannot_list_or_read(app):
    a = app
    load_sample(a)
    b = AppTest.from_file(APP, default_timeout=120)
    b.run()
    load_sample(b)
    sa = studio(a)
    assert studio(b).spool != sa.spool
    spill = Path(sa.base.con.execute("SELECT current_setting('temp_directory')").fetchone()[0])
    assert spill.is_relative_to(sa.spool) and oct(sa.spool.stat().st_mode & 0o777) == "0o700"
    (spill / "duckdb_temp_block.tmp").write_text("patient_id,diagnosis\n4711,secret\n")  # as a spill file would hold
    for sql in (f"SELECT * FROM glob('{spill}/*')", f"SELECT content FROM read_blob('{spill}/*')", f"SELECT * FROM read_csv('{spill}/*')",
                f"SELECT * FROM glob('{sa.spool.parent}/*/*')"):
        b.text_area(key="sql_text").set_value(sql)
        b.button(key="run_sql").click().run()
        shown = " ".join(e.value for e in b.error) + " ".join(d.value.to_csv() for d in b.dataframe)
        assert not b.exception and b.error and "Permission" in b.error[0].value and "4711" not in shown, sql
    assert "4711" in sa.ws.run_sql(f"SELECT content FROM read_blob('{spill}/*')").content[0]  # its owner can
    a.session_state["studio"].close()
    assert not sa.spool.exists()


def test_a_server_start_removes_the_folders_crashed_servers_left(tmp_path):
    dead = tmp_path / "server-999999999"  # no such process
    (dead / ("ab" * 16) / "spill").mkdir(parents=True)
    live = tmp_path / f"server-{os.getppid()}"
    live.mkdir()
    legacy = tmp_path / ("cd" * 16)  # an earlier version's flat folder
    legacy.mkdir()
    mine = tmp_path / f"server-{os.getpid()}"
    assert set(remove_stale_spools(tmp_path, keep=mine)) == {dead, legacy}
    assert live.is_dir() and not dead.exists()


def test_tokens_are_issued_by_the_server_only(tmp_path, monkeypatch, small_spec):
    monkeypatch.setenv("WDSTUDIO_RUNS", str(tmp_path / "runs"))
    reset_hub()
    for chosen in ("ab" * 16, "Ω" * 32, "x" * 32):  # well-formed but unknown, unicode, not hex
        at = AppTest.from_file(APP, default_timeout=120)
        at.query_params["s"] = chosen
        at.run()
        assert not at.exception and studio(at).owner != chosen and len(studio(at).owner) == 32
        assert at.query_params["s"] == [studio(at).owner] or at.query_params["s"] == studio(at).owner
    restored = _session_with_run(tmp_path, monkeypatch, small_spec, "ef" * 16)  # its runs are on disk: a server restart
    assert studio(restored).owner == "ef" * 16 and studio(restored).job_ids
    reset_hub()


def test_sessions_are_capped_per_server_and_per_client(tmp_path, monkeypatch):
    monkeypatch.setenv("WDSTUDIO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("WDSTUDIO_MAX_SESSIONS", "2")
    reset_hub()
    tabs = [AppTest.from_file(APP, default_timeout=120) for _ in range(3)]
    for t in tabs:
        t.run()
    assert all(not t.exception for t in tabs) and len(hub().sessions) == 2
    assert tabs[2].error and "WDSTUDIO_MAX_SESSIONS" in tabs[2].error[0].value and "studio" not in tabs[2].session_state
    h = Hub(dataclasses.replace(Limits(), sessions_per_client=2), tmp_path / "r", tmp_path / "u")
    h.sessions.update({"a": object(), "b": object(), "c": object()})
    h.clients.update({"a": "10.0.0.1", "b": "10.0.0.1", "c": "10.0.0.2"})
    assert "WDSTUDIO_SESSIONS_PER_CLIENT" in h.admission_problem("10.0.0.1") and h.admission_problem("10.0.0.2") == ""
    reset_hub()


def test_a_model_too_big_for_the_server_is_refused_on_the_train_page(app):
    at = app
    load_sample(at)
    at.switch_page("views/features.py").run()
    at.selectbox(key="feat_label").set_value("income")
    at.button(key="suggest").click().run()
    at.switch_page("views/train.py").run()
    at.text_input(key="hidden").set_value("65536, 65536, 65536")
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not at.exception and studio(at).job_ids == []
    from studio_core.features.sizing import spec_params

    big = studio(at).spec
    big.model.hidden_units = [65536] * 3
    assert spec_params(big) > 8.5e9  # the refusal names the lower bound the spec alone gives
    assert at.error and f"{spec_params(big):,}" in at.error[0].value and "WDSTUDIO\\_MAX\\_PARAMS" in at.error[0].value


def test_the_sql_box_shows_a_huge_result_cut_to_size(app):
    at = app
    load_sample(at)
    at.text_area(key="sql_text").set_value("SELECT repeat('x', 20000000) AS s FROM range(20)")
    at.button(key="run_sql").click().run()
    assert not at.exception and not at.error
    frame = at.dataframe[-1].value
    assert len(frame) == 20 and frame.s.str.len().max() == 1001
    assert any("cut" in c.value for c in at.caption)


def test_user_text_is_shown_literally_never_as_markdown(app, tmp_path):
    """A CSV header ``![x](http://…)`` fetched an external image (a tracking pixel) and
    ``[click](http://…)`` showed a link inside the studio's own message boxes."""
    at = app
    evil = studio(at).spool / "evil.csv"
    evil.write_text('"![x](http://127.0.0.1:9/pixel.png)","[click](http://phish.example)",y\n1,2,0\n3,4,1\n')
    studio(at).ws.load(evil)
    at.run()
    at.selectbox(key="data_table").set_value("evil")
    at.toggle(key="show_profile").set_value(True).run()
    assert not at.exception
    rendered = [m.value for m in at.markdown] + [e.value for e in at.error] + [c.value for c in at.caption]
    assert any("pixel" in r for r in rendered)
    assert not any("](http" in r or "![" in r for r in rendered), [r for r in rendered if "http" in r]
    studio(at).ws.run_sql('CREATE VIEW "![img](http://127.0.0.1:9/v.png)" AS SELECT 1 AS a')
    at.run()
    assert not any("](http" in w.value for w in [*at.warning, *at.success, *at.error, *at.markdown])


def test_a_very_wide_table_shows_a_bounded_number_of_columns(app):
    at = app
    studio(at).ws.run_sql("CREATE TABLE wide AS SELECT " + ", ".join(f"range + {i} AS c{i}" for i in range(400)) + " FROM range(100)")
    at.run()
    at.selectbox(key="data_table").set_value("wide")
    at.toggle(key="show_profile").set_value(True).run()
    assert not at.exception
    assert len(at.dataframe[1].value.columns) == 200 and any("first 200 of 400 columns" in c.value for c in at.caption)
    assert sum(1 for m in at.markdown if "distinct" in m.value) == 200


def test_one_damaged_run_is_listed_as_damaged_and_the_others_work(tmp_path, monkeypatch, small_spec):
    from studio_core.runs import train as pipeline

    ws, spec = small_spec
    token = "aa" * 16
    good = pipeline.train(spec, ws, tmp_path / "runs" / token / ("01" * 16)).run_dir
    for n, damage in enumerate(("{not json", "{}", "[1, 2]")):
        bad = pipeline.train(spec, ws, tmp_path / "runs" / token / (f"0{n + 2}" * 16)).run_dir
        (bad / "metrics.json").write_text(damage)
    (pipeline.train(spec, ws, tmp_path / "runs" / token / ("09" * 16)).run_dir / "history.jsonl").write_text('{"epoch": "x"}\n')
    monkeypatch.setenv("WDSTUDIO_RUNS", str(tmp_path / "runs"))
    reset_hub()
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["s"] = token
    at.run()
    assert not at.exception and len(studio(at).job_ids) == 5
    at.switch_page("views/train.py").run()
    assert not at.exception
    snaps = [hub().registry.get(i, token).snapshot() for i in studio(at).job_ids]
    assert sorted(s.status for s in snaps) == ["done", "failed", "failed", "failed", "failed"]
    assert all("damaged" in s.error for s in snaps if s.status == "failed")
    at.switch_page("views/inspect.py").run()  # the good run is shown
    assert not at.exception and not at.error and at.metric
    assert json.loads((good / "metrics.json").read_text())["task"] == "binary"
    reset_hub()
