"""The studio's pages, driven with Streamlit's AppTest (real Streamlit, DuckDB and torch)."""

import dataclasses
import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from studio_core.jobs.hub import hub, reset_hub

APP = str(Path(__file__).resolve().parents[1] / "app" / "studio.py")


def studio(at):
    return at.session_state["studio"]


def load_file(at, path):
    """Put a file where an upload would land (the session's sandbox reads only there) and load it."""
    import shutil

    target = studio(at).spool / Path(path).name
    shutil.copyfile(path, target)
    return studio(at).ws.load(target)


def load_sample(at, name="adult.csv"):
    at.selectbox(key="sample_name").set_value(name)
    at.button(key="load_sample").click().run()
    assert not at.exception


def suggest_income(at):
    """On the Features page, pick Adult's label and take the suggested spec."""
    at.switch_page("views/features.py").run()
    at.selectbox(key="feat_label").set_value("income")
    at.button(key="suggest").click().run()


def charts(at) -> list[dict]:
    """Every Altair chart on the page: title, marks, encoded fields, and its data rows (the
    layers' inline datasets), read from the Vega-Lite spec Streamlit sends to the browser."""
    import json

    out = []
    for el in at.get("vega_lite_chart"):
        spec = json.loads(el.proto.spec)
        layers = spec.get("layer", [spec])
        title = spec.get("title") or next((lay.get("title") for lay in layers if lay.get("title")), "")
        title = title.get("text", "") if isinstance(title, dict) else title
        marks = [lay["mark"]["type"] if isinstance(lay.get("mark"), dict) else lay.get("mark") for lay in layers]
        fields = [{ch: e.get("field") for ch, e in lay.get("encoding", {}).items() if isinstance(e, dict)} for lay in layers]
        datasets = {d.name: d.data for d in el.proto.datasets}
        rows = []
        for lay in ([spec] if "layer" in spec else []) + layers:
            name = (lay.get("data") or {}).get("name")
            if name in datasets:
                rows.append(_arrow_rows(datasets[name]))
        out.append({"title": title, "marks": marks, "fields": fields, "data": rows})
    return out


def _arrow_rows(data) -> list[dict]:
    import pyarrow as pa

    return pa.ipc.open_stream(data.data).read_all().to_pylist()


def selected_job(at):
    """The session's selected training job, as the registry holds it."""
    from state import registry

    return registry().get(studio(at).selected_job, studio(at).owner)


def test_happy_path_sample_to_export(app):
    from studio_core.data.profile import profile as column_profiles

    at = app
    load_sample(at)
    assert "adult" in studio(at).ws.tables() and at.dataframe
    at.toggle(key="show_profile").set_value(True).run()
    profile = charts(at)  # one small chart per column, drawing that column's values
    assert not at.exception and len(profile) == 15
    for col, chart in zip(column_profiles(studio(at).ws, "adult"), profile):  # in column order
        if col.numeric:  # a histogram of a sample of the column's values
            # the column enters as "value" (a user's name is not a safe Vega-Lite field), its name is the axis title
            assert chart["fields"][0]["x"] == "value" and len(chart["data"][0]) == 5000 and chart["data"][0][0]["value"] is not None
        else:  # its top values with their counts
            assert [(r["value"], r["rows"]) for r in chart["data"][0]] == list(col.top_values)
    suggest_income(at)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert studio(at).spec.data.label == "income" and at.get("graphviz_chart")
    at.switch_page("views/train.py").run()
    at.number_input(key="epochs").set_value(1)
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not at.error, [e.value for e in at.error]
    _wait_for_task(at, lambda: {0: selected_job(at)})
    assert not at.exception
    metrics = selected_job(at).snapshot().result.metrics
    result = at.success[0].value  # the test figure leads, with its interval; validation comes after
    assert result.startswith(f"Test AUC {metrics['test']['auc']:.4f} (95% interval {metrics['test_ci']['auc'][0]:.4f}–") and "validation AUC" in result
    epochs = {c["title"]: c for c in charts(at)}
    assert len(epochs["Loss per epoch"]["data"][0]) == 2 * metrics["epochs_run"]  # train and validation loss per epoch
    assert [r["auc"] for r in epochs["Validation AUC"]["data"][0]] == [p.val["auc"] for p in selected_job(at).snapshot().progress.epochs]
    at.switch_page("views/inspect.py").run()
    assert not at.exception and not at.error
    drawn = {c["title"].split(" (")[0]: c for c in charts(at)}
    assert drawn["ROC"]["title"] == f"ROC (AUC {metrics['test']['auc']:.4f})" and len(drawn["ROC"]["data"][0]) > 50  # the test rows' curve
    assert drawn["Precision-recall"]["marks"] == ["line"] and len(drawn["Precision-recall"]["data"][0]) > 50
    assert sum(r["rows"] for r in drawn["Calibration"]["data"][0]) == metrics["n_test"]
    assert len(drawn["Wide weights: what pushes the score up or down"]["data"][0]) == 30
    assert [m.label for m in at.metric][:4] == ["test AUC", "test average precision", "test log loss", "test accuracy"]
    at.switch_page("views/export.py").run()
    assert not at.exception and "Download run (zip)" in [b.proto.label for b in at.get("download_button")]
    from studio_core.runs.inspect import run_zip

    snap_dir = selected_job(at).snapshot().result.run_dir
    names = zipfile.ZipFile(io.BytesIO(run_zip(snap_dir))).namelist()
    assert {n.split("/")[-1] for n in names} == {"spec.json", "preprocess.json", "model.pt", "history.jsonl", "metrics.json", "test_predictions.parquet"}


def test_bad_sql_shows_error_and_keeps_data(app):
    at = app
    load_sample(at)
    at.text_area(key="sql_text").set_value("SELECT nope FROM adult")
    at.button(key="run_sql").click().run()
    assert at.error and "SQL error" in at.error[0].value and not at.exception
    assert "adult" in studio(at).ws.tables()


@pytest.mark.parametrize("sql", ["SELECT * FROM read_csv('/etc/passwd')", "COPY adult TO '/tmp/out.csv'", "ATTACH '/tmp/x.db'",
                                 "SET enable_external_access = true", "SELECT 1; DROP TABLE adult", "INSTALL httpfs"])
def test_hostile_sql_in_the_query_box_is_refused_and_the_session_keeps_working(app, sql):
    at = app
    load_sample(at)
    at.text_area(key="sql_text").set_value(sql)
    at.button(key="run_sql").click().run()
    assert not at.exception and at.error, sql
    at.text_area(key="sql_text").set_value("SELECT count(*) AS n FROM adult")
    at.button(key="run_sql").click().run()
    assert not at.error and studio(at).ws.tables() == ["adult"]
    assert at.dataframe[-1].value["n"].tolist() == [48842]  # the session still answers, with the right figure


def test_invalid_spec_edit_is_reported(app):
    at = app
    load_sample(at)
    suggest_income(at)
    studio(at).spec.model.wide = False
    studio(at).spec.model.deep = False
    at.run()
    assert any("model" in e.value for e in at.error) and not at.exception


def test_pages_before_data_explain_what_to_do(app):
    at = app
    for page, hint in (("views/features.py", "Data page"), ("views/train.py", "Features page"), ("views/inspect.py", "Train page"),
                       ("views/explain.py", "Train page"), ("views/export.py", "Train page")):
        at.switch_page(page).run()
        assert not at.exception and any(hint in i.value for i in at.info), (page, [i.value for i in at.info])


def test_server_restart_reads_finished_runs_back(tmp_path, monkeypatch, small_spec):
    from studio_core.runs import train as pipeline

    ws, spec = small_spec
    token = "ab" * 16
    pipeline.train(spec, ws, tmp_path / "runs" / token / ("cd" * 16))
    monkeypatch.setenv("WDSTUDIO_RUNS", str(tmp_path / "runs"))
    reset_hub()  # a fresh server process
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["s"] = token
    at.run()
    at.switch_page("views/export.py").run()
    assert not at.exception and [o.split(" · ")[0] for o in at.selectbox(key="export_run").options] == ["run 1"]
    at.switch_page("views/inspect.py").run()  # the test rows' predictions are in the run: no data needed
    assert not at.exception and not at.error and "ROC" in " ".join(c["title"] for c in charts(at))
    at.radio(key="inspect_part").set_value("validation").run()  # re-scoring needs the data, gone with the old server
    shown = at.error[0].value if at.error else ""
    assert not at.exception and "load table 'synthetic' on the Data page" in shown
    assert "Did you mean" not in shown and "Catalog" not in shown  # DuckDB's own words stay out of it
    assert "Wide weights" in [h.value for h in at.subheader]  # shown from the run alone
    at.switch_page("views/train.py").run()  # no spec, no table: the runs are still listed
    assert not at.exception and at.radio(key="run_pick").options == ["run 1"] and at.radio(key="run_pick").value == "cd" * 16
    assert at.success and at.success[0].value.startswith("Test AUC")
    other = AppTest.from_file(APP, default_timeout=120)
    other.run()
    other.switch_page("views/export.py").run()
    assert other.info and not other.selectbox  # another session cannot see it
    reset_hub()


def test_train_form_rejects_bad_hidden_units(app):
    at = app
    load_sample(at)
    at.switch_page("views/features.py").run()
    at.button(key="suggest").click().run()
    at.switch_page("views/train.py").run()
    at.text_input(key="hidden").set_value("256, lots")
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert at.error and "Hidden units" in at.error[0].value and not at.exception
    assert studio(at).job_ids == []


def test_damaged_run_directory_is_reported_on_export(tmp_path, monkeypatch, small_spec):
    from studio_core.runs import train as pipeline

    ws, spec = small_spec
    token = "ef" * 16
    out = pipeline.train(spec, ws, tmp_path / "runs" / token / ("01" * 16))
    monkeypatch.setenv("WDSTUDIO_RUNS", str(tmp_path / "runs"))
    reset_hub()
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["s"] = token
    at.run()
    (out.run_dir / "model.pt").write_bytes(b"not a state dict")
    at.switch_page("views/export.py").run()
    assert not at.exception and at.error and "damaged" in at.error[0].value
    reset_hub()


def test_refresh_reattaches_to_the_same_tables(app):
    at = app
    load_sample(at)
    token = studio(at).owner
    again = AppTest.from_file(APP, default_timeout=120)  # a browser refresh: new session, same URL
    again.query_params["s"] = token
    again.run()
    assert studio(again) is studio(at) and "adult" in studio(again).ws.tables()


def test_regression_run_inspects_with_scatter_and_residuals(tmp_path, monkeypatch):
    from conftest import write_synthetic

    from studio_core.data.workspace import Workspace
    from studio_core.features.suggest import suggest
    from studio_core.spec.schema import DataSpec

    csv = write_synthetic(tmp_path / "reg.csv", label="regression")
    ws = Workspace()
    ws.load(csv)
    spec = suggest(ws, DataSpec(table="reg", label="target")).spec
    spec.train.epochs = 2
    at = _session_with_run(tmp_path, monkeypatch, (ws, spec), "12" * 16)
    load_file(at, csv)
    at.switch_page("views/inspect.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    drawn = {c["title"]: c for c in charts(at)}
    run = load_run_of(at)
    scatter = drawn["Predicted vs actual"]
    assert scatter["marks"] == ["circle", "line"] and scatter["fields"][0] == {"x": "actual", "y": "predicted"}  # points, then y = x
    stored = run.test_scores()
    assert sorted(r["actual"] for r in scatter["data"][0]) == pytest.approx(sorted(stored.y))  # the test rows, on the label's scale
    assert len(drawn["Residuals (predicted - actual)"]["data"][0]) == len(stored.y) == run.metrics["n_test"]
    assert [m.label for m in at.metric][:3] == ["test RMSE", "test MAE", "test R²"]
    at.radio(key="inspect_part").set_value("validation").run()  # the data is loaded: validation rows re-scored
    assert not at.exception and len({c["title"]: c for c in charts(at)}["Residuals (predicted - actual)"]["data"][0]) == run.metrics["n_val"]
    reset_hub()


def test_uploads_bad_file_shows_error_and_keeps_loaded_tables(app):
    at = app
    load_sample(at)
    spools_before = set(studio(at).spool.glob("wd-upload-*"))
    at.file_uploader(key="uploads_0").set_value([("Shop Sales.csv", b"sku,amount\na,1.5\nb,2\n", "text/csv"),
                                               ("broken.csv", b"\x00\x01\x02binary\xff" * 50, "text/csv")])
    at.run()
    at.button(key="load_uploads").click().run()
    assert not at.exception
    assert any(r"Loaded Shop Sales.csv as table shop\_sales" in m.value for m in at.success)  # names shown literally, not as Markdown
    assert at.error and "broken.csv" in at.error[0].value and "not a text CSV" in at.error[0].value
    assert {"adult", "shop_sales"} <= set(studio(at).ws.tables())
    assert set(studio(at).spool.glob("wd-upload-*")) == spools_before  # the spool folder is gone
    at.run()
    assert at.file_uploader[0].key == "uploads_1"  # a fresh uploader: the browser's copies of the files are let go


def load_run_of(at):
    """The session's only finished run, loaded."""
    import sys

    from studio_core.runs.store import load_run

    state = sys.modules["state"]
    return load_run(state.registry().get(studio(at).job_ids[0], studio(at).owner).snapshot().result.run_dir)


def _session_with_run(tmp_path, monkeypatch, ws_and_spec, token):
    """A fresh server whose session ``token`` owns one finished run (id 'ef' * 16) of the spec."""
    from studio_core.runs import train as pipeline

    ws, spec = ws_and_spec
    pipeline.train(spec, ws, tmp_path / "runs" / token / ("ef" * 16))
    monkeypatch.setenv("WDSTUDIO_RUNS", str(tmp_path / "runs"))
    reset_hub()
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["s"] = token
    at.run()
    return at


def _wait_for_task(at, tasks):
    deadline = time.time() + 120
    while time.time() < deadline:
        at.run()
        if not next(iter(tasks().values())).snapshot().active:
            break
        time.sleep(0.3)
    at.run()


def _task_state(at, tasks) -> str:
    """What the task and the page show, for assertion messages of tests that wait on a task."""
    t = next(iter(tasks().values())).snapshot()
    return (f"task {t.status} {t.message!r} error={t.error!r}; page errors={[e.value for e in at.error]} "
            f"warnings={[w.value for w in at.warning]} exception={[e.value for e in at.exception]}")


def _wait_for_explanation(at):
    _wait_for_task(at, lambda: studio(at).explain_jobs)


def test_explain_page_shap_views_and_what_if(tmp_path, monkeypatch, small_spec, synthetic_csv):
    at = _session_with_run(tmp_path, monkeypatch, small_spec, "56" * 16)
    load_file(at, synthetic_csv)
    at.switch_page("views/explain.py").run()
    assert not at.exception and at.info  # nothing explained yet: says what the button does
    at.number_input(key="explain_rows").set_value(20)
    at.number_input(key="explain_background").set_value(20)
    at.button(key="explain_start").click().run()
    _wait_for_explanation(at)
    assert not at.exception and not at.error, [e.value for e in at.error]
    drawn = {c["title"].split(" (")[0]: c for c in charts(at)}
    importance = drawn["Which columns move the score"]["data"][0]
    assert sorted(r["feature"] for r in importance) == ["colour", "size", "x1", "x2"] and all(r["mean_abs_shap"] > 0 for r in importance)
    swarm = drawn["Every explained row, column by column"]["data"][0]
    assert len(swarm) == 20 * 4 and {r["feature"] for r in swarm} == {"colour", "size", "x1", "x2"}
    waterfall = next(c for t, c in drawn.items() if t.startswith("From the average"))
    assert sorted(r["feature"] for r in waterfall["data"][0]) == ["colour", "size", "x1", "x2"]
    top = importance[0]["feature"] if len({r["mean_abs_shap"] for r in importance}) == 1 else max(importance, key=lambda r: r["mean_abs_shap"])["feature"]
    curves = drawn[f"How the score moves with {top} alone"]
    assert curves["marks"] == ["line", "line"] and len(curves["data"][0]) == 20 * len({r["value"] for r in curves["data"][0]})  # ICE: 20 rows x grid
    assert len(curves["data"][1]) == len({r["value"] for r in curves["data"][0]})  # one mean point per grid value
    parts = {r["part"]: r["logit"] for r in drawn["Wide + deep + bias"]["data"][0]}
    assert set(parts) == {"wide", "deep", "bias"} and parts["wide"] != 0 and parts["deep"] != 0
    prob = at.metric[0]
    before = float(prob.value)
    row = at.selectbox(key="explain_row").value
    colour = at.selectbox(key=f"whatif_{'ef' * 16}_{row}_colour")
    size = at.selectbox(key=f"whatif_{'ef' * 16}_{row}_size")
    # the synthetic label jumps for red x L and drops for blue x S: move the row across
    target = ("blue", "S") if before > 0.5 else ("red", "L")
    colour.set_value(target[0])
    size.set_value(target[1]).run()
    assert not at.exception and not at.error
    after = float(at.metric[0].value)
    assert (after < before) if before > 0.5 else (after > before), (before, after)
    assert "vs the row" in at.metric[0].delta
    from studio_core.explain.whatif import typical_row

    said = " ".join(c.value for c in at.caption)
    assert "for 20 rows against 20 background rows on this server now" in said  # the estimate, shown before and after starting
    result = next(iter(studio(at).explain_jobs.values())).snapshot().result.explanation
    assert row == typical_row(result.outputs) and abs(result.outputs[row] - np.median(result.outputs)) <= np.ptp(result.outputs) / 2
    at.number_input(key=f"whatif_{'ef' * 16}_{row}_x1").set_value(1e6).run()
    hints = [c.value for c in at.caption if "⚠" in c.value]
    assert any("outside the training range" in h for h in hints), hints
    from studio_core.explain.whatif import input_hint

    assert "unseen in training" in input_hint(load_run_of(at), "colour", "purple")  # AppTest cannot type a new option; the page shows this text
    wanted = str(result.data["size"].iloc[3])
    at.text_input(key="explain_find").set_value(wanted).run()  # search any column, not the first four
    offered = at.selectbox(key="explain_row").options
    assert offered and all(wanted.lower() in o.lower() for o in offered)  # the label shows every column of this 4-column table
    reset_hub()


def test_explain_without_the_runs_data_says_what_to_load(tmp_path, monkeypatch, small_spec):
    at = _session_with_run(tmp_path, monkeypatch, small_spec, "78" * 16)
    at.switch_page("views/explain.py").run()
    at.number_input(key="explain_rows").set_value(10)
    at.button(key="explain_start").click().run()
    _wait_for_explanation(at)
    shown = at.error[0].value if at.error else ""
    assert not at.exception and "load table 'synthetic' on the Data page" in shown
    assert "Did you mean" not in shown and "Catalog" not in shown  # DuckDB's own words stay out of it
    reset_hub()


def test_export_page_checks_the_bundle_before_offering_downloads(tmp_path, monkeypatch, small_spec, synthetic_csv):
    at = _session_with_run(tmp_path, monkeypatch, small_spec, "9a" * 16)
    load_file(at, synthetic_csv)
    at.switch_page("views/export.py").run()
    assert not at.exception and len(at.get("download_button")) == 2  # run zip and spec only, before any check
    at.checkbox(key="export_int8").check()
    at.button(key="export_build").click().run()
    _wait_for_task(at, lambda: studio(at).exports)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.success and "validation rows" in at.success[0].value and "Tolerance: |difference| <= 1e-05" in at.success[0].value
    assert at.info and "INT8" in at.info[0].value and "AUC change" in at.info[0].value
    labels = [b.proto.label for b in at.get("download_button")]
    assert {"Download bundle (zip)", "Download raw.onnx", "Download model.onnx"} <= set(labels)
    at.radio(key="export_precision").set_value("INT8").run()
    labels = [b.proto.label for b in at.get("download_button")]
    assert {"Download raw.int8.onnx", "Download model.int8.onnx"} <= set(labels)
    built = next(iter(studio(at).exports.values())).snapshot().result
    names = set(zipfile.ZipFile(io.BytesIO(built.zip_bytes)).namelist())
    assert {"model.onnx", "raw.onnx", "model.int8.onnx", "model_card.md", "bundle.json"} <= names
    reset_hub()


def test_export_without_the_runs_data_uses_synthetic_rows_and_says_so(tmp_path, monkeypatch, small_spec):
    at = _session_with_run(tmp_path, monkeypatch, small_spec, "9b" * 16)
    at.switch_page("views/export.py").run()
    assert "synthetic rows" in " ".join(c.value for c in at.caption)
    at.button(key="export_build").click().run()
    _wait_for_task(at, lambda: studio(at).exports)
    assert not at.exception and at.success and "synthetic" in at.success[0].value, _task_state(at, lambda: studio(at).exports)
    reset_hub()


def test_abandoned_sessions_are_released_and_a_returning_tab_is_told(tmp_path, monkeypatch, small_spec, synthetic_csv):
    import sys

    at = _session_with_run(tmp_path, monkeypatch, small_spec, "ab" * 16)
    load_file(at, synthetic_csv)
    state = sys.modules["state"]
    a = studio(at)
    job_id = state.registry().submit(a.owner, small_spec[1].__class__.from_dict({**small_spec[1].to_dict(),
                                     "train": {**small_spec[1].to_dict()["train"], "epochs": 5000, "early_stopping_patience": 0}}), a.ws)
    a.job_ids.append(job_id)
    job = state.registry().get(job_id, a.owner)
    assert job.snapshot().active
    monkeypatch.setattr(hub(), "limits", dataclasses.replace(hub().limits, session_ttl_s=60.0))
    a.last_seen -= 120  # idle for two minutes
    other = AppTest.from_file(APP, default_timeout=120)
    other.run()  # any page run sweeps idle sessions
    job.join(5)
    assert job.snapshot().status == "cancelled" and not a.spool.exists() and a.closed
    at.run()  # the idle tab comes back
    assert not at.exception and at.warning and "idle" in at.warning[0].value
    assert studio(at).owner == a.owner and studio(at) is not a and studio(at).ws.tables() == ["synthetic"]  # its tables are kept (its DuckDB file)
    assert "tables and finished runs are still here" in at.warning[0].value
    at.switch_page("views/export.py").run()  # its finished run is still there
    assert not at.exception and at.selectbox(key="export_run").options
    reset_hub()


def test_two_sessions_cannot_see_or_touch_each_others_tables_and_runs(tmp_path, monkeypatch, small_spec, synthetic_csv):
    import sys

    a = _session_with_run(tmp_path, monkeypatch, small_spec, "cd" * 16)
    load_file(a, synthetic_csv)
    state = sys.modules["state"]
    run_id = studio(a).job_ids[0]
    b = AppTest.from_file(APP, default_timeout=120)
    b.run()
    assert studio(b).owner != studio(a).owner and b.info  # no tables yet
    assert "synthetic" not in studio(b).ws.tables()
    from studio_core.common.errors import StudioError

    with pytest.raises(StudioError, match="does not exist"):
        studio(b).ws.run_sql("SELECT * FROM synthetic")
    assert state.registry().get(run_id, studio(b).owner) is None  # cannot inspect, download or cancel it
    assert state.registry().owned(studio(b).owner) == []
    for page in ("views/inspect.py", "views/explain.py", "views/export.py"):
        b.switch_page(page).run()
        assert not b.exception and b.info and not b.get("download_button"), page
    fresh = AppTest.from_file(APP, default_timeout=120)
    fresh.query_params["s"] = "zz" * 16  # a guessed token gets a fresh, empty session
    fresh.run()
    assert studio(fresh).owner not in (studio(a).owner,) and studio(fresh).ws.tables() == []
    reset_hub()


@pytest.mark.parametrize("payload", [b"{not json", b'{"data": {"table": "adult", "label": "income", "evil": 1}}',
                                     b'{"data": {"sql": "SELECT 1) ; DROP TABLE adult; SELECT * FROM (SELECT 1", "label": "income"}}',
                                     b'{"data": {"sql": "SELECT * FROM read_csv(\'/etc/passwd\')", "label": "income"}}',
                                     b'{"train": {"epochs": 1e308}}', b"\x80\x81\x82"])
def test_uploaded_spec_json_is_validated_before_use(app, payload):
    at = app
    load_sample(at)
    at.switch_page("views/features.py").run()
    at.file_uploader(key="spec_upload").set_value(("spec.json", payload, "application/json")).run()
    at.button(key="use_spec").click().run()
    assert not at.exception and at.error and studio(at).spec is None
    assert studio(at).ws.tables() == ["adult"] and len(studio(at).ws.run_sql("SELECT * FROM adult", limit=5)) == 5


def test_rows_shown_are_capped_and_the_server_config_bounds_work(app):
    import tomllib

    at = app
    load_sample(at)
    at.text_area(key="sql_text").set_value("SELECT * FROM adult")
    at.button(key="run_sql").click().run()
    assert not at.exception and max(len(d.value) for d in at.dataframe) == 1000  # of 48,842 rows
    config = tomllib.loads((Path(APP).parents[1] / ".streamlit" / "config.toml").read_text())
    assert 0 < config["server"]["maxUploadSize"] <= 1024  # MB: the upload cap
    assert config["runner"]["postScriptGC"] is False and config["server"]["fileWatcherType"] == "none"


def test_what_if_on_an_unedited_row_with_missing_values_reproduces_its_score(tmp_path, monkeypatch):
    """Adult has missing workclass/occupation: the what-if copy of a row must score exactly as
    the row itself (missing stays missing, not the text 'nan')."""
    from studio_core.data.workspace import Workspace
    from studio_core.features.suggest import suggest
    from studio_core.spec.schema import DataSpec

    ws = Workspace()
    adult = Path(APP).parents[1] / "sample_data" / "adult.csv"
    ws.con.execute(f"CREATE TABLE adult AS SELECT * FROM read_csv('{adult}', nullstr='?') "
                   "WHERE workclass IS NULL OR occupation IS NULL OR hash(age, fnlwgt) % 10 = 0")
    spec = suggest(ws, DataSpec(table="adult", label="income")).spec
    spec.train.epochs, spec.model.hidden_units = 1, [16]
    at = _session_with_run(tmp_path, monkeypatch, (ws, spec), "ee" * 16)
    frame = ws.con.sql("SELECT * FROM adult").df()
    studio(at).ws.register_frame("adult", frame)
    at.switch_page("views/explain.py").run()
    at.number_input(key="explain_rows").set_value(30)
    at.number_input(key="explain_background").set_value(20)
    at.button(key="explain_start").click().run()
    _wait_for_explanation(at)
    result = next(iter(studio(at).explain_jobs.values())).snapshot().result.explanation
    missing_rows = [i for i in range(len(result.data)) if pd_isna_any(result.data.iloc[i])]
    assert missing_rows
    at.selectbox(key="explain_row").set_value(missing_rows[0]).run()
    assert not at.exception and not at.error
    assert at.metric[0].delta.startswith("+0.000") or at.metric[0].delta.startswith("-0.000"), at.metric[0].delta
    reset_hub()


def pd_isna_any(row) -> bool:
    import pandas as pd

    return bool(pd.isna(row[[c for c in ("workclass", "occupation", "native_country") if c in row]]).any())


def test_create_table_or_view_in_the_query_box_saves_and_lists_it(app):
    at = app
    load_sample(at)
    for sql, name in (("CREATE TABLE rich AS SELECT * FROM adult WHERE income = '>50K'", "rich"),
                      ("CREATE VIEW old AS SELECT * FROM adult WHERE age > 70 -- the elderly", "old")):
        at.text_area(key="sql_text").set_value(sql)
        at.button(key="run_sql").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert at.success and f"Saved as {name} " in at.success[0].value
        assert name in studio(at).ws.tables()


def test_out_of_core_training_from_the_studio_notes_hashed_columns_and_inspects(app):
    at = app
    load_sample(at)
    suggest_income(at)
    at.switch_page("views/train.py").run()
    at.number_input(key="epochs").set_value(1)
    at.selectbox(key="out_of_core").set_value("always")
    at.number_input(key="max_vocabulary").set_value(20)
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not at.error, [e.value for e in at.error]
    _wait_for_task(at, lambda: {0: selected_job(at)})
    assert not at.exception and at.success, [e.value for e in at.error]
    metrics = selected_job(at).snapshot().result.metrics
    assert metrics["out_of_core"] is True and metrics["split"]["method"] == "hash"
    notes = [i.value for i in at.info]
    assert any("native_country" in n and "max_vocabulary" in n for n in notes), notes  # 41 countries > 20
    at.switch_page("views/inspect.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    drawn = {c["title"].split(" (")[0]: c for c in charts(at)}
    assert {"ROC", "Precision-recall", "Calibration"} <= set(drawn) and sum(r["rows"] for r in drawn["Calibration"]["data"][0]) == metrics["n_test"]


def test_tables_survive_a_server_restart_and_count_against_the_disk_budget(app, tmp_path):
    """A restarted studio showed no tables: every page asked to load the data again."""
    load_sample(app)
    app.text_area(key="sql_text").set_value("SELECT age, income FROM adult WHERE age > 60")
    app.text_input(key="sql_save_as").set_value("older")
    app.button(key="run_sql").click().run()
    s = studio(app)
    token, database = s.owner, s.database
    assert database.is_file() and database.parent == tmp_path / "runs" / token and s.disk_used() >= database.stat().st_size
    reset_hub()  # a fresh server process: the old connections go with it
    again = AppTest.from_file(APP, default_timeout=120)
    again.query_params["s"] = token
    again.run()
    assert not again.exception and set(studio(again).ws.tables()) >= {"adult", "older"}
    assert studio(again).ws.run_sql("SELECT count(*) AS n FROM older")["n"][0] == studio(again).ws.run_sql(
        "SELECT count(*) AS n FROM adult WHERE age > 60")["n"][0]
    other = AppTest.from_file(APP, default_timeout=120)
    other.run()
    assert studio(other).ws.tables() == [] and studio(other).database != database  # each session its own file
    reset_hub()


def test_a_damaged_tables_file_starts_an_empty_session_with_a_warning(tmp_path, monkeypatch, small_spec):
    from studio_core.runs import train as pipeline

    ws, spec = small_spec
    token = "cd" * 16
    pipeline.train(spec, ws, tmp_path / "runs" / token / ("ef" * 16))
    (tmp_path / "runs" / token / ".workspace.duckdb").write_bytes(b"not a database" * 100)
    monkeypatch.setenv("WDSTUDIO_RUNS", str(tmp_path / "runs"))
    reset_hub()
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["s"] = token
    at.run()
    assert not at.exception and any("saved tables could not be opened" in w.value for w in at.warning)
    at.switch_page("views/train.py").run()
    assert at.radio(key="run_pick").options == ["run 1"]  # the runs are kept
    reset_hub()
