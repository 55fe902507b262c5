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
    from studio_core.datafiles import free_table_name

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
