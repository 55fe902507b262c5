"""Defects a live demo hit (issue 13), each in the page where it showed: AppTest runs the real
pages on a real engine (DuckDB, torch).  Each test failed before its fix."""

from __future__ import annotations

import time

from test_app import _wait_for_task, load_file, selected_job, studio


def _train(at, epochs: int) -> None:
    at.switch_page("views/train.py").run()
    at.number_input(key="epochs").set_value(epochs)
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]


def test_a_second_run_is_selected_and_shown_live(app, synthetic_csv):
    """After a run finished, Start training again used to leave the radio on the old run (its
    widget state overrode ``index=``): the page showed the old Done box, no progress, no Cancel.
    And the selected option's label changed from "running" to its AUC, so the browser's remembered
    label matched no option and nothing looked selected."""
    at = app
    load_file(at, synthetic_csv)
    at.switch_page("views/features.py").run()
    at.selectbox(key="feat_label").set_value("target")
    at.button(key="suggest").click().run()
    _train(at, 1)
    first = studio(at).job_ids[0]
    running_options = at.radio(key="run_pick").options
    _wait_for_task(at, lambda: {0: selected_job(at)})
    assert selected_job(at).snapshot().status == "done"
    assert at.radio(key="run_pick").value == first and at.radio(key="run_pick").options == running_options == ["run 1"]
    assert at.success and at.success[0].value.startswith("Test AUC")

    _train(at, 200)  # long enough to be watched
    second = studio(at).job_ids[1]
    pick = at.radio(key="run_pick")
    assert pick.value == second and pick.options == ["run 1", "run 2"]
    assert any(b.proto.label == "Cancel" for b in at.button), "the new run shows its Cancel button"
    assert not [s for s in at.success if s.value.startswith("Test AUC")], "the old run's Done box is not shown"
    assert at.get("progress"), "the new run shows its progress"
    selected_job(at).cancel()
    deadline = time.time() + 60
    while selected_job(at).snapshot().active and time.time() < deadline:
        time.sleep(0.2)
    at.run()
    assert at.radio(key="run_pick").value == second and at.radio(key="run_pick").options == ["run 1", "run 2"]
    assert [c for c in at.radio(key="run_pick").proto.captions][1] == "cancelled"
    at.radio(key="run_pick").set_value(first).run()  # an earlier run can still be picked and shows its result
    assert at.success and at.success[0].value.startswith("Test AUC")


def test_loading_or_saving_under_an_existing_name_never_replaces_a_table(app):
    """Loading a sample or saving a query result under a taken name replaced the table without a
    word (and a run trained on it was then evaluated on other rows)."""
    from studio_core.data.datafiles import free_table_name

    at = app
    at.selectbox(key="sample_name").set_value("clicklog.csv")
    at.button(key="load_sample").click().run()
    ws = studio(at).ws
    ws.run_sql("CREATE TABLE adult AS SELECT 1 AS mine")  # the user's own table called adult
    at.selectbox(key="sample_name").set_value("adult.csv")
    at.button(key="load_sample").click().run()
    said = at.success[0].value.replace("\\", "")  # Markdown escapes of the user's text
    assert not at.exception and "Loaded adult_2" in said and "a table adult exists and is unchanged" in said
    assert ws.run_sql("SELECT * FROM adult")["mine"].tolist() == [1] and ws.table("adult_2").n_rows() == 48842

    at.text_area(key="sql_text").set_value("SELECT 2 AS other")
    at.text_input(key="sql_save_as").set_value("Adult")  # DuckDB names are case-blind: still the same table
    at.button(key="run_sql").click().run()
    said = at.error[0].value.replace("\\", "") if at.error else ""
    assert "a table named adult exists" in said and "(e.g. adult_3)" in said
    assert ws.run_sql("SELECT * FROM adult")["mine"].tolist() == [1]
    at.checkbox(key="sql_replace").check()
    at.button(key="run_sql").click().run()
    assert not at.error and ws.run_sql("SELECT * FROM adult")["other"].tolist() == [2]
    assert free_table_name("t", ["T", "t_2", "x"]) == "t_3" and free_table_name("new", ["t"]) == "new"


def test_charts_name_their_axes_in_words_and_predicted_vs_actual_has_its_diagonal():
    import numpy as np
    import pandas as pd

    from studio_core.runs import charts

    roc = charts.roc_chart(pd.DataFrame({"false_positive_rate": [0, 0.5, 1], "true_positive_rate": [0, 0.8, 1], "threshold": [1, 0.5, 0]}), 0.8).to_dict()
    enc = roc["layer"][0]["encoding"]
    assert (enc["x"]["title"], enc["y"]["title"]) == ("false positive rate", "true positive rate")  # was "false_positive_rate, x"
    actual = np.linspace(10, 110, 50)
    scatter = charts.scatter_chart(actual, actual * 0.9 + 3).to_dict()
    diagonal = scatter["layer"][1]
    rows = scatter["datasets"][diagonal["data"]["name"]]
    assert diagonal["mark"]["strokeDash"] and [r["x"] for r in rows] == [r["y"] for r in rows] == [10.0, 110.0]
    cal = charts.calibration_chart(pd.DataFrame({"predicted": [0.1, 0.9], "observed": [0.2, 0.8], "rows": [5, 5]})).to_dict()
    assert cal["layer"][0]["encoding"]["y"]["title"] == "observed share of positives"
    # a layer with another title (or None) makes Vega-Lite join the titles or drop the axis title: every layer says the same
    for chart, words in ((roc, ("false positive rate", "true positive rate")), (cal, ("predicted probability", "observed share of positives")),
                         (scatter, ("actual", "predicted"))):
        assert {(lay["encoding"]["x"].get("title"), lay["encoding"]["y"].get("title")) for lay in chart["layer"]} == {words}


def test_small_texts_say_what_happened():
    from studio_core.runs.results import change_text, early_stop_text, result_line

    assert change_text("AUC", -0.000001) == "AUC unchanged to 5 decimals"  # was "AUC change -0.00000"
    assert change_text("AUC", 0.00123) == "AUC change +0.00123"
    assert early_stop_text({"stopped_early": True, "epochs_run": 9, "epochs_planned": 40}) == ", stopped early after 9 of 40 epochs"
    assert early_stop_text({"stopped_early": False, "epochs_run": 40, "epochs_planned": 40}) == ""
    m = {"task": "binary", "best_epoch": 6, "epochs_run": 9, "epochs_planned": 40, "stopped_early": True, "auc": 0.9, "logloss": 0.3,
         "accuracy": 0.85, "train_rows_per_s": 1000.0, "total_seconds": 3.0, "processes": 1}
    assert "best epoch 6 of 9, stopped early after 9 of 40 epochs" in result_line("run", m)


def test_the_confusion_matrix_labels_its_rows_first(tmp_path, monkeypatch, small_spec):
    from test_app import _session_with_run, load_run_of

    at = _session_with_run(tmp_path, monkeypatch, small_spec, "9d" * 16)
    at.switch_page("views/inspect.py").run()
    table = at.table[0].value
    assert list(table.index) == ["actual positive", "actual negative"] and list(table.columns) == ["predicted positive", "predicted negative"]
    assert int(table.to_numpy().sum()) == load_run_of(at).metrics["n_test"]  # every test row in one cell


def test_features_page_shows_what_was_just_done(app):
    """'Remove all crosses' left the old list on screen until the next click; the positive-class
    text went stale after the class was changed; an uploaded spec blanked the reason column; no
    page named the studio or its steps."""
    from test_app import load_sample, suggest_income

    at = app
    assert "Wide & Deep Studio" in " ".join(m.value for m in at.markdown) and "○ 1. Data" in " ".join(c.value for c in at.sidebar.caption)
    load_sample(at)
    suggest_income(at)
    assert "✓ 1. Data" in " ".join(c.value for c in at.sidebar.caption) and "✓ 2. Features" in " ".join(c.value for c in at.sidebar.caption)
    assert studio(at).spec.features.crosses and not at.exception
    at.button(key="clear_crosses").click().run()
    assert "In the spec: no crosses" in [m.value for m in at.markdown]  # in the same run as the click
    other = [v for v in at.selectbox(key="positive").options if v != at.selectbox(key="positive").value][0]
    at.selectbox(key="positive").set_value(other).run()
    said = " ".join(c.value for c in at.caption).replace("\\", "")
    assert f"probability that income is {other}" in said and "positive class" not in said.split("Scores will be")[0]

    studio(at).suggestion = None  # as after "Use uploaded spec"
    at.run()
    editor = at.dataframe[0].value  # the columns editor is the first frame on the page
    reasons = dict(zip(editor["column"], editor["reason"]))
    assert reasons["age"] == "set in the uploaded spec" and all(reasons.values())


def test_a_wide_tables_diagram_and_beeswarm_stay_compact():
    """75 inputs: the diagram dropped everything past 12 without a word and stood ~1,000 px tall;
    the beeswarm drew a band for every column."""
    import json

    import pandas as pd

    from studio_core.features.editing import ModelSummary, diagram_dot
    from studio_core.runs.charts import beeswarm_chart

    names = [f"col{i:02d}" for i in range(75)]
    dot = diagram_dot(ModelSummary(names, 1000, [(n, 10, 4) for n in names], 0, [64], False, 5000))
    assert dot.count("col0") == 2 * 8 and dot.count("+ 67 more") == 2  # 8 names listed in each part, then the count
    assert "col08" not in dot
    long = pd.DataFrame({"row": 0, "feature": names, "shap": range(75), "value": "1", "percentile": 0.5})
    spec = json.loads(beeswarm_chart(long, names, "log-odds").to_json())
    drawn = next(iter(spec["datasets"].values()))
    assert {r["feature"] for r in drawn} == set(names[:20]) and "top 20 of 75 columns" in spec["title"]


def test_what_if_helpers_search_any_column_and_start_from_a_typical_row():
    import numpy as np
    import pandas as pd

    from studio_core.explain.whatif import row_matches, typical_row

    data = pd.DataFrame({"a": ["x", "y", "z"], "b": [1, 2, 3], "zz": ["", "Bachelors", "HS"], "__wd_row": [10, 11, 12]})
    assert row_matches(data, ["__wd_row", "a", "b", "zz"], "bachelors") == [1]  # the 4th column, any case
    assert row_matches(data, ["__wd_row", "a", "b", "zz"], "12") == [2] and row_matches(data, ["a"], "") == [0, 1, 2]
    assert typical_row(np.array([-9.0, 0.1, 0.3, 8.0, 0.2])) == 4  # nearest the median, not the first or an extreme
