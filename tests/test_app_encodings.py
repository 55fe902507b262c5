"""The numeric encodings on the pages (issue 14): the Features editor offers and shows each
column's encoding, and the Inspect page draws a numeric column's wide effect curve."""

from __future__ import annotations

import pytest
from test_app import _session_with_run, charts, load_sample, studio, suggest_income

from studio_core.features.editing import apply_rows, feature_rows
from studio_core.jobs.hub import reset_hub
from studio_core.runs.inspect import effect_curve
from studio_core.runs.store import load_run
from studio_core.spec.schema import NUMERIC_TRANSFORMS


def _editor(at):
    return next(d for d in at.dataframe if getattr(d, "key", None) == "columns_editor")


def test_features_editor_offers_every_numeric_encoding_and_shows_the_chosen_one(app):
    import json

    at = app
    load_sample(at)
    suggest_income(at)
    editor = _editor(at)
    config = json.loads(editor.proto.columns)
    options = config["encoding"]["type_config"]["options"]
    assert set(NUMERIC_TRANSFORMS) | {"piecewise-tree"} <= set(options) and "piecewise-tree" in config["encoding"]["help"]
    rows = editor.value.set_index("column")
    assert rows.loc["fnlwgt", "encoding"] == "piecewise-tree" and "where the label changes" in rows.loc["fnlwgt", "reason"]
    spec = studio(at).spec
    fnlwgt = {f.name: f for f in spec.features.numeric}["fnlwgt"]
    assert (fnlwgt.transform, fnlwgt.binning) == ("piecewise", "tree")
    assert "+ 80 numeric" in at.get("graphviz_chart")[0].proto.spec  # age, fnlwgt, capital gain and loss, hours: 16 bins each

    def choose(encoding: str) -> None:  # an edit in the grid goes through apply_rows; the page keeps the spec it makes
        spec = studio(at).spec
        studio(at).spec = apply_rows(spec, [dict(r, encoding=encoding) if r["column"] == "age" else r
                                            for r in feature_rows(spec, list(rows.index), {})])
        at.run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert _editor(at).value.set_index("column").loc["age", "encoding"] == encoding

    choose("standardize")
    assert "+ 65 numeric" in at.get("graphviz_chart")[0].proto.spec  # age is one scaled value now
    choose("periodic")
    assert "+ 80 numeric" in at.get("graphviz_chart")[0].proto.spec and {f.name: f.transform for f in studio(at).spec.features.numeric}["age"] == "periodic"
    choose("piecewise")  # piecewise over quantile bins, then with tree bins, then back
    assert {f.name: f.binning for f in studio(at).spec.features.numeric}["age"] == "quantile"
    choose("piecewise-tree")
    age = {f.name: f for f in studio(at).spec.features.numeric}["age"]
    assert (age.transform, age.binning) == ("piecewise", "tree")
    choose("piecewise")
    assert {f.name: f.binning for f in studio(at).spec.features.numeric}["age"] == "quantile"


def test_inspect_draws_a_numeric_columns_wide_effect_curve(tmp_path, monkeypatch, small_spec):
    ws, spec = small_spec
    col = spec.features.numeric[0]
    col.transform, col.wide, col.buckets = "piecewise", True, 6
    at = _session_with_run(tmp_path, monkeypatch, (ws, spec), "34" * 16)
    at.switch_page("views/inspect.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.selectbox(key="effect_column").options == [col.name]
    drawn = {c["title"]: c for c in charts(at)}
    chart = drawn[f"Wide effect of {col.name}"]
    assert chart["marks"] == ["line"] and chart["fields"][0]["x"] == "value" and chart["fields"][0]["y"] == "weight"
    run = load_run(tmp_path / "runs" / ("34" * 16) / ("ef" * 16))
    curve = effect_curve(run, col.name)
    known = curve[curve.bucket > 0]
    points = chart["data"][0]
    assert len(points) == len(known) + 1  # each bucket's start, then the last bucket's end
    assert [p["value"] for p in points] == pytest.approx(list(known.start) + [known.end.iloc[-1]])
    assert [p["weight"] for p in points] == pytest.approx(list(known.weight) + [known.weight.iloc[-1]])
    assert any(col.name in c.value for c in at.caption)
    reset_hub()


def _train_page(at, small_spec, synthetic_csv, epochs: int):
    """The Train page with the small spec over the synthetic table loaded."""
    from test_app import load_file

    _, spec = small_spec
    spec.train.epochs = epochs
    load_file(at, synthetic_csv)
    studio(at).spec = spec
    at.switch_page("views/train.py").run()
    return at


def test_train_page_tunes_in_the_background_draws_the_trials_and_offers_the_best_spec(app, small_spec, synthetic_csv):
    from test_app import _wait_for_task

    at = _train_page(app, small_spec, synthetic_csv, epochs=1)
    at.number_input(key="tune_trials").set_value(3)
    at.button(key="tune_start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    _wait_for_task(at, lambda: {0: studio(at).tune.task})
    job = studio(at).tune
    result = job.task.snapshot().result
    assert job.task.snapshot().status == "done" and len(result.trials) == 3
    chart = {c["title"]: c for c in charts(at)}["Tuning trials (validation rows)"]
    assert chart["marks"] == ["circle", "line"]
    drawn = chart["data"][0]
    assert [r["value"] for r in drawn] == pytest.approx([t.value for t in result.trials])
    assert drawn[-1]["best"] == pytest.approx(result.best_value)  # the step line ends at the best trial
    assert any(f"Best validation auc {result.best_value:.4f}" in m.value for m in at.success)
    at.button(key="tune_use").click().run()
    assert not at.exception and studio(at).spec.to_dict() == result.best_spec.to_dict()


def test_train_page_sets_ensemble_members_and_a_time_budget(app, small_spec, synthetic_csv):
    from test_app import _wait_for_task, selected_job

    at = _train_page(app, small_spec, synthetic_csv, epochs=2)
    at.number_input(key="ensemble").set_value(3)
    at.number_input(key="max_minutes").set_value(0.5)
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    _wait_for_task(at, lambda: {0: selected_job(at)})
    run = load_run(selected_job(at).snapshot().result.run_dir)
    assert run.spec.model.ensemble == 3 and run.model.members == 3 and run.spec.train.max_minutes == 0.5
