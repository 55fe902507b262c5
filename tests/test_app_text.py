"""A table with free text and a tag set through the studio (issue 16): Features shows the text
roles, Train trains them, Inspect names the words, Explain credits the text column and its
what-if box moves the score, Export builds a bundle that says why it has no raw-row graph."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from test_app import _wait_for_task, charts, load_file, selected_job, studio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from reviews import frame as reviews_frame  # noqa: E402


def test_text_columns_go_from_features_to_export(app, tmp_path):
    at = app
    path = tmp_path / "reviews.csv"
    reviews_frame(4000, seed=5).drop(columns=["rating_band"]).to_csv(path, index=False)
    load_file(at, path)
    at.switch_page("views/features.py").run()
    at.selectbox(key="feat_table").set_value("reviews").run()
    at.selectbox(key="feat_label").set_value("recommended")
    at.button(key="suggest").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    editor = next(d for d in at.dataframe if getattr(d, "key", None) == "columns_editor")
    rows = editor.value.set_index("column")
    assert rows.loc["review", "role"] == "text" and rows.loc["review", "encoding"] == "text" and "free text" in rows.loc["review", "reason"]
    assert rows.loc["tags", "role"] == "text" and rows.loc["tags", "encoding"] == "multi"
    options = json.loads(editor.proto.columns)["role"]["type_config"]["options"]
    assert "text" in options
    assert "review" in at.get("graphviz_chart")[0].proto.spec  # the diagram lists the text column's wide input

    studio(at).spec.features.text[0].deep_min_count = 20  # a small table: some words reach the deep part too
    at.switch_page("views/train.py").run()
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not at.error, [e.value for e in at.error]
    _wait_for_task(at, lambda: {0: selected_job(at)})
    assert not at.exception and not at.error, [e.value for e in at.error]
    metrics = selected_job(at).snapshot().result.metrics
    assert metrics["test"]["auc"] > 0.65

    at.switch_page("views/inspect.py").run()
    assert not at.exception and not at.error
    drawn = {c["title"].split(" (")[0]: c for c in charts(at)}
    weights = drawn["Wide weights: what pushes the score up or down"]["data"][0]
    words = {r["value"] for r in weights if r.get("feature") == "review"}
    assert words & {"great", "excellent", "terrible", "awful", "refund", "love", "broke", "perfect"}, weights[:5]

    at.switch_page("views/explain.py").run()
    at.number_input(key="explain_rows").set_value(15)
    at.number_input(key="explain_background").set_value(20)
    at.button(key="explain_start").click().run()
    _wait_for_task(at, lambda: studio(at).explain_jobs)
    assert not at.exception and not at.error, [e.value for e in at.error]
    drawn = {c["title"].split(" (")[0]: c for c in charts(at)}
    importance = {r["feature"]: r["mean_abs_shap"] for r in drawn["Which columns move the score"]["data"][0]}
    assert set(importance) == {"review", "tags", "category", "price"} and max(importance, key=importance.get) == "review"
    row = at.selectbox(key="explain_row").value
    run_id = studio(at).selected_job
    box = at.text_area(key=f"whatif_{run_id}_{row}_review")
    before = float(at.metric[0].value)
    box.set_value("terrible awful broke refund waste worst").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    worse = float(at.metric[0].value)
    at.text_area(key=f"whatif_{run_id}_{row}_review").set_value("great excellent perfect love superb fantastic").run()
    better = float(at.metric[0].value)
    assert worse < better and (worse < before or better > before), (before, worse, better)
    tokens = next(d for d in at.dataframe if "token" in d.value.columns)
    assert {"great", "excellent"} <= set(tokens.value.token)

    at.switch_page("views/export.py").run()
    at.button(key="export_build").click().run()
    _wait_for_task(at, lambda: studio(at).exports)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.success and at.warning and "No raw-row graph" in at.warning[0].value and "regular expression" in at.warning[0].value
    labels = [b.proto.label for b in at.get("download_button")]
    assert "Download bundle (zip)" in labels and "Download model.onnx" in labels
