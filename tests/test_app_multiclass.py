"""A multiclass label through the studio (issue 16): Features says multiclass, Train reports the
test accuracy with its interval, Inspect draws the confusion matrix and per-class precision and
recall, Explain explains a chosen class, Predict writes a probability per class, Export builds
a bundle with one output per class."""

from __future__ import annotations

import io

import pandas as pd
from test_app import _wait_for_task, charts, load_file, selected_job, studio
from test_multiclass import write_classes

from studio_core.runs.store import load_run


def test_a_multiclass_label_goes_from_features_to_export(app, tmp_path):
    at = app
    load_file(at, write_classes(tmp_path / "bands.csv"))
    at.switch_page("views/features.py").run()
    at.selectbox(key="feat_table").set_value("bands").run()
    at.selectbox(key="feat_label").set_value("band")
    at.button(key="suggest").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Task: **multiclass**" in " ".join(c.value for c in at.caption)
    assert not [s for s in at.selectbox if s.key == "positive"]  # no positive class to pick

    at.switch_page("views/train.py").run()
    at.number_input(key="epochs").set_value(10)
    assert at.selectbox(key="class_weight").value == "none"
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    _wait_for_task(at, lambda: {0: selected_job(at)})
    assert not at.exception and not at.error, [e.value for e in at.error]
    metrics = selected_job(at).snapshot().result.metrics
    assert at.success[0].value.startswith(f"Test accuracy {metrics['test']['accuracy']:.4f} (95% interval")
    drawn = {c["title"]: c for c in charts(at)}
    assert [r["logloss"] for r in drawn["Validation log loss"]["data"][0]] == [p.val["logloss"] for p in selected_job(at).snapshot().progress.epochs]

    at.switch_page("views/inspect.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [m.label for m in at.metric][:4] == ["test accuracy", "test macro-F1", "test log loss", "test macro AUC (one vs rest)"]
    drawn = {c["title"].split(" (")[0]: c for c in charts(at)}
    cells = drawn["Confusion matrix"]["data"][0]
    classes = load_run(selected_job(at).snapshot().result.run_dir).preprocessor.classes_
    assert len(cells) == len(classes) ** 2 and sum(r["rows"] for r in cells) == metrics["n_test"]
    table = next(d for d in at.dataframe if "recall" in d.value.columns)
    assert list(table.value["class"]) == classes and table.value.support.sum() == metrics["n_test"]
    at.selectbox(key="weights_class").set_value("coral").run()
    assert not at.exception

    at.switch_page("views/explain.py").run()
    at.selectbox(key="explain_class").set_value("blue")
    at.number_input(key="explain_rows").set_value(12)
    at.number_input(key="explain_background").set_value(20)
    at.button(key="explain_start").click().run()
    _wait_for_task(at, lambda: studio(at).explain_jobs)
    assert not at.exception and not at.error, [e.value for e in at.error]
    drawn = {c["title"].split(" (")[0]: c for c in charts(at)}
    assert {r["feature"] for r in drawn["Which columns move the score"]["data"][0]} == {"shade", "x1", "x2", "part"}
    assert at.metric[0].label == "probability of blue" and 0 <= float(at.metric[0].value) <= 1

    at.switch_page("views/predict.py").run()
    assert not at.exception
    at.selectbox(key="predict_table").set_value("bands")
    at.button(key="predict_start").click().run()
    _wait_for_task(at, lambda: studio(at).predicts)
    assert not at.exception and not at.error, [e.value for e in at.error]
    done = next(iter(studio(at).predicts.values())).snapshot().result
    scored = pd.read_csv(io.BytesIO(done.csv))
    assert list(scored.columns[: len(classes) + 1]) == ["prediction"] + [f"p_{c}" for c in classes]
    assert ((scored[[f"p_{c}" for c in classes]].sum(axis=1) - 1).abs() < 1e-6).all()

    at.switch_page("views/export.py").run()
    at.button(key="export_build").click().run()
    _wait_for_task(at, lambda: studio(at).exports)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.success and "raw.onnx vs the engine" in at.success[0].value and not at.warning  # the raw-row graph gives each class's probability
    assert "Download raw.onnx" in [b.proto.label for b in at.get("download_button")]
