"""The studio shows honest numbers: test figures first, undefined metrics named, splits editable,
and two tabs on one session token each get their own query results."""

import threading
from pathlib import Path

import pyarrow as pa
from streamlit.testing.v1 import AppTest
from test_app import APP, _session_with_run, _wait_for_task, charts, load_sample, selected_job, studio

from studio_core.jobs.hub import reset_hub
from studio_core.spec.schema import CategoricalFeature, DataSpec, FeatureSpec, NumericFeature, Spec


def test_a_run_whose_held_out_rows_hold_one_class_says_so_on_inspect_and_export(tmp_path, monkeypatch):
    """Validation and test rows all negative: AUC is undefined.  Inspect and Export used to crash
    formatting it; they now say 'not defined (one class)'."""
    from studio_core.data.workspace import Workspace

    n = 600
    part = ["validation" if i % 10 == 0 else "test" if i % 10 == 1 else "train" for i in range(n)]
    target = [0 if p != "train" else int(i % 3 == 0) for i, p in enumerate(part)]
    ws = Workspace()
    ws.con.register("raw", pa.table({"colour": [("red", "blue", "green")[i % 3] for i in range(n)], "x": [float(i % 7) for i in range(n)],
                                     "part": part, "target": target}))
    ws.con.execute("CREATE TABLE one AS SELECT * FROM raw")
    spec = Spec(data=DataSpec(table="one", label="target", positive_class="1", split="column", split_column="part"),
                features=FeatureSpec([NumericFeature("x")], [CategoricalFeature("colour")]))
    spec.train.epochs, spec.model.hidden_units = 1, [8]
    at = _session_with_run(tmp_path, monkeypatch, (ws, spec), "1c" * 16)
    for page in ("views/train.py", "views/inspect.py", "views/export.py"):
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
    at.switch_page("views/inspect.py").run()
    assert [m.value for m in at.metric if m.label == "test AUC"] == ["not defined (one class)"]
    assert any("only one class" in i.value for i in at.info) and "Calibration" in [c["title"] for c in charts(at)]
    at.switch_page("views/export.py").run()
    assert "not defined (one class)" in at.selectbox(key="export_run").options[0]
    reset_hub()


def test_a_spec_reading_data_sql_opens_on_the_features_page(app):
    at = app
    load_sample(at)
    studio(at).spec = Spec(data=DataSpec(sql="SELECT * FROM adult WHERE age > 30", label="income", positive_class=">50K"),
                           features=FeatureSpec([NumericFeature("age")], [CategoricalFeature("workclass")]))
    at.switch_page("views/features.py").run()
    assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
    assert at.selectbox(key="positive").value == ">50K"


def test_the_train_page_sets_the_split_and_the_run_records_it(app):
    at = app
    load_sample(at)
    studio(at).ws.run_sql("SELECT *, (row_number() OVER ()) % 400 AS household FROM adult", save_as="households")
    at.switch_page("views/features.py").run()
    at.selectbox(key="feat_table").set_value("households").run()
    at.selectbox(key="feat_label").set_value("income")
    at.button(key="suggest").click().run()
    at.switch_page("views/train.py").run()
    at.number_input(key="epochs").set_value(1)
    at.selectbox(key="split_kind").set_value("group")
    at.selectbox(key="split_column").set_value("household")
    at.number_input(key="test_fraction").set_value(0.2)
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not at.error, [e.value for e in at.error]
    _wait_for_task(at, lambda: {0: selected_job(at)})
    record = selected_job(at).snapshot().result.metrics["split"]
    assert record["kind"] == "group" and record["column"] == "household" and record["fractions"]["test"] == 0.2
    assert 0.15 < record["counts"]["test"] / 48842 < 0.25
    assert at.success and at.success[0].value.startswith("Test AUC")


def test_two_tabs_on_one_token_each_get_their_own_query_results(app):
    """Two tabs with the same ?s= token run their scripts on two threads at once; each reaches
    the session's database through a cursor of its own, so neither sees the other's result."""
    at = app
    load_sample(at)
    shared = studio(at)
    errors, wrong = [], []

    def tab(age: int) -> None:
        try:
            for _ in range(60):
                got = shared.ws.run_sql(f"SELECT count(*) AS n, min(age) AS a FROM adult WHERE age = {age}")
                if int(got["a"][0]) != age:
                    wrong.append((age, int(got["a"][0])))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(repr(exc))

    threads = [threading.Thread(target=tab, args=(age,)) for age in (25, 40, 60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not wrong, (errors[:3], wrong[:3])
    assert Path(shared.spool).is_dir() and shared.ws.tables() == ["adult"]


def test_a_slow_view_is_stopped_by_the_query_timeout_on_every_page(tmp_path, monkeypatch):
    """The page's own queries (row counts, previews, profiles, validation, label values) go
    through the session's query timeout: a view that would scan for minutes cannot hang them."""
    import sys
    import time

    sys.path.insert(0, str(Path(APP).parent))

    monkeypatch.setenv("WDSTUDIO_QUERY_TIMEOUT_S", "1")
    monkeypatch.setenv("WDSTUDIO_RUNS", str(tmp_path / "runs"))
    reset_hub()
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    load_sample(at)
    # every query on it scans 10^10 rows (a filter: DuckDB 2 answers count(*) of an ungrouped aggregate without scanning)
    studio(at).ws.run_sql("CREATE VIEW slow AS SELECT range AS s, 1 AS target FROM range(10000000000) WHERE hash(range) % 1000 = 0")
    at.run()
    started = time.time()
    at.selectbox(key="data_table").set_value("slow")
    at.toggle(key="show_profile").set_value(True).run()
    assert not at.exception and any("slow" in w.value and "query timeout" in w.value for w in at.warning)
    assert any("longer than 1 s" in e.value for e in at.error)
    studio(at).spec = Spec(data=DataSpec(table="slow", label="target", positive_class="1"), features=FeatureSpec([NumericFeature("s")]))
    at.switch_page("views/features.py").run()
    assert not at.exception and any("longer than 1 s" in e.value for e in at.error)
    assert time.time() - started < 30
    reset_hub()
