"""The Compare page (issue 17): the leaderboard of a session's runs with its intervals and charts,
the ablations trained from it, and runs on other test rows refused without losing the page."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_app import charts, load_file, studio

from studio_core.compare.leaderboard import leaderboard
from studio_core.compare.slices import slices_for
from studio_core.jobs.hub import reset_hub
from studio_core.runs import train as pipeline

APP = str(Path(__file__).resolve().parents[1] / "app" / "studio.py")


def _session(tmp_path, monkeypatch, small_spec, synthetic_csv, split_seeds=(42, 42)):
    """A server whose session owns a Wide & Deep run and a wide-only run of the same spec."""
    ws, spec = small_spec
    token = "c0" * 16
    dirs = []
    for i, split_seed in enumerate(split_seeds):
        variant = type(spec).from_dict(spec.to_dict())
        variant.data.split_seed = split_seed
        variant.model.deep = i == 0
        dirs.append(pipeline.train(variant, ws, tmp_path / "runs" / token / f"{i + 1:02d}{'ab' * 15}").run_dir)
    monkeypatch.setenv("WDSTUDIO_RUNS", str(tmp_path / "runs"))
    reset_hub()
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["s"] = token
    at.run()
    load_file(at, synthetic_csv)
    at.switch_page("views/compare.py").run()
    return at, dirs


def _ordered(at, dirs=None):
    """The session's runs in its own order (run 1, run 2, ...), as their folders."""
    s = studio(at)
    from state import registry

    by_id = {i: registry().get(i, s.owner).snapshot().result.run_dir for i in s.job_ids}
    return [Path(by_id[i]) for i in s.job_ids]


def test_the_leaderboard_shows_each_runs_interval_and_paired_difference(tmp_path, monkeypatch, small_spec, synthetic_csv):
    at, dirs = _session(tmp_path, monkeypatch, small_spec, synthetic_csv)
    assert not at.exception and not at.error, [e.value for e in at.error]
    frame = at.dataframe[0].value
    runs = _ordered(at, dirs)
    expected = leaderboard(runs, "auc", names=["run 1", "run 2"])
    assert list(frame["run"]) == ["run 1", "run 2"] and sorted(frame["kind"]) == ["Wide & Deep", "wide-only"]
    assert list(frame["test AUC"]) == pytest.approx([r.test["auc"] for r in expected.rows], abs=1e-12)
    assert list(frame["difference"]) == ["reference", f"{expected.rows[1].diff['auc']:+.4f}"]
    lo, hi = expected.rows[1].diff_ci["auc"]
    assert list(frame["paired 95 % interval"]) == ["", f"{lo:+.4f} – {hi:+.4f}"] and list(frame["P(better)"]) == ["", f"{expected.rows[1].p_better:.3f}"]
    drawn = {c["title"]: c for c in charts(at)}
    metric = drawn["test AUC (95 % intervals)"]
    assert metric["marks"] == ["rule", "point"] and metric["fields"][0]["x"] == "low" and metric["fields"][0]["x2"] == "high"
    rows = {r["run"]: r for r in metric["data"][0]}
    for r in expected.rows:
        assert rows[r.run]["low"] == pytest.approx(r.test_ci["auc"][0]) and rows[r.run]["high"] == pytest.approx(r.test_ci["auc"][1])
    diff = drawn["Paired difference from the reference (95 % intervals)"]
    assert diff["marks"] == ["rule", "rule", "point"]  # the zero line, the intervals, the differences
    shown = [r for r in diff["data"][-1] if r.get("run")] if diff["data"] else []
    assert [r["run"] for r in shown] == ["run 2"] and shown[0]["difference"] == pytest.approx(expected.rows[1].diff["auc"])
    at.selectbox(key="compare_metric").set_value("logloss").run()
    assert list(at.dataframe[0].value["test log loss"]) == pytest.approx([r.test["logloss"] for r in leaderboard(runs, "logloss").rows])
    reset_hub()


def test_slices_show_every_runs_metric_per_value_with_the_engines_figures(tmp_path, monkeypatch, small_spec, synthetic_csv):
    at, _dirs = _session(tmp_path, monkeypatch, small_spec, synthetic_csv)
    assert "colour" in at.selectbox(key="compare_slice").options and "x1" in at.selectbox(key="compare_slice").options
    at.selectbox(key="compare_slice").set_value("colour").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    expected = slices_for(_ordered(at), studio(at).ws, "colour", "auc", ["run 1", "run 2"])
    frame = at.dataframe[1].value
    assert set(frame["slice"]) == {"red", "green", "blue", "grey"}
    for sl in expected.slices:
        for run, value in sl.metric.items():
            shown = frame[(frame["slice"] == sl.value) & (frame["run"] == run)]
            assert shown["auc"].iloc[0] == pytest.approx(value) and shown["rows"].iloc[0] == sl.rows
    chart = {c["title"]: c for c in charts(at)}["test AUC per colour"]
    assert chart["marks"] == ["rule", "point"]
    drawn = {(r["slice"], r["run"]): r for r in chart["data"][0]}
    sl = expected.slices[0]
    assert drawn[(sl.value, "run 2")]["low"] == pytest.approx(sl.ci["run 2"][0]) and drawn[(sl.value, "run 2")]["auc"] == pytest.approx(sl.metric["run 2"])
    said = " ".join(x.value for x in [*at.warning, *at.info, *at.caption])
    flipped = [x.value for x in expected.slices if x.flips]
    assert (f"differs on {', '.join(flipped)}" in said or "flips on" in said) if flipped else "same on every slice" in said
    at.selectbox(key="compare_slice").set_value("(no slices)").run()
    assert len(at.dataframe) == 1 and not at.exception
    reset_hub()


def test_ablations_train_from_the_page_and_join_the_leaderboard(tmp_path, monkeypatch, small_spec, synthetic_csv):
    at, _dirs = _session(tmp_path, monkeypatch, small_spec, synthetic_csv)
    first = next(i for i in studio(at).job_ids if at.dataframe[0].value["kind"].tolist()[studio(at).job_ids.index(i)] == "Wide & Deep")
    at.selectbox(key="ablation_run").set_value(first).run()
    at.button(key="train_ablations").click().run()
    assert not at.exception and len(studio(at).job_ids) == 4 and len(at.success) == 2, [e.value for e in at.error]
    from state import registry

    deadline = time.time() + 180
    while time.time() < deadline and any(registry().get(i, studio(at).owner).snapshot().active for i in studio(at).job_ids):
        time.sleep(0.3)
    at.run()
    frame = at.dataframe[0].value
    assert list(frame["run"]) == ["run 1", "run 2", "run 3", "run 4"] and not at.error
    assert sorted(frame["kind"][2:]) == ["deep-only", "wide-only"]
    deep_only = studio(at).job_ids[list(frame["kind"]).index("deep-only")]
    for page, key in (("views/inspect.py", "inspect_run"), ("views/explain.py", "explain_run")):  # every run page says which kind of run it shows
        at.switch_page(page).run()
        at.selectbox(key=key).set_value(deep_only).run()
        assert not at.exception and "deep-only run" in [c.value for c in at.caption], page
    reset_hub()


def test_runs_on_other_test_rows_are_refused_on_the_page(tmp_path, monkeypatch, small_spec, synthetic_csv):
    at, _dirs = _session(tmp_path, monkeypatch, small_spec, synthetic_csv, split_seeds=(42, 7))
    assert not at.exception and at.error and "cannot be compared" in at.error[0].value
    at.multiselect(key="compare_runs").set_value([studio(at).job_ids[0]]).run()  # one run alone still shows
    assert not at.exception and not at.error and len(at.dataframe[0].value) == 1
    reset_hub()


def _finish(at, task, seconds: float = 60):
    """Wait for one background task of the page to end, then draw the page again."""
    deadline = time.time() + seconds
    while time.time() < deadline and task.snapshot().active:
        time.sleep(0.2)
    at.run()


def _wait(at):
    from state import registry

    deadline = time.time() + 180
    while time.time() < deadline and any(registry().get(i, studio(at).owner).snapshot().active for i in studio(at).job_ids):
        time.sleep(0.3)
    at.run()


def test_baselines_join_the_leaderboard_and_the_report_downloads_from_the_page(tmp_path, monkeypatch, small_spec, synthetic_csv):
    import re

    at, _dirs = _session(tmp_path, monkeypatch, small_spec, synthetic_csv)
    first = studio(at).job_ids[list(at.dataframe[0].value["kind"]).index("Wide & Deep")]
    at.selectbox(key="ablation_run").set_value(first).run()
    at.button(key="add_lightgbm").click().run()
    at.button(key="add_constant").click().run()
    assert not at.exception and len(studio(at).job_ids) == 4 and len(at.success) == 1, [e.value for e in at.error]
    _wait(at)
    frame = at.dataframe[0].value
    assert list(frame["kind"][2:]) == ["LightGBM", "constant"] and not at.error
    runs = _ordered(at, None)
    expected = leaderboard(runs, "auc", names=["run 1", "run 2", "run 3", "run 4"])
    assert list(frame["test AUC"]) == pytest.approx([r.test["auc"] for r in expected.rows], abs=1e-12)
    assert frame["test AUC"].iloc[3] == 0.5  # the constant ranks nothing
    # ... and stays off the charts' scale, where it would squeeze the models' intervals into one point
    drawn = {c["title"]: c for c in charts(at)}
    assert {r["run"] for r in drawn["test AUC (95 % intervals)"]["data"][0]} == {"run 1", "run 2", "run 3"}
    assert any("run 4 (the constant baseline) is in the table but not in the charts" in c.value for c in at.caption)
    # the report is built on request and offered for download; it holds every run of the leaderboard
    assert not [b for b in at.get("download_button") if b.proto.label == "Download report (HTML)"]
    at.button(key="build_report").click().run()
    assert not at.exception and not at.error
    assert studio(at).report is not None
    html = studio(at).report[1].decode("utf-8")
    assert [b for b in at.get("download_button") if b.proto.label == "Download report (HTML)"]
    assert all(f"<td>run {i}</td>" in html for i in range(1, 5)) and "<td>LightGBM</td>" in html
    assert {"leaderboard", "difference", "roc"} <= set(re.findall(r'data-chart="([a-z_]+)"', html))
    # Inspect shows a LightGBM baseline's test figures and curves from its stored test rows, and says what it lacks
    lgb = studio(at).job_ids[2]
    at.switch_page("views/inspect.py").run()
    at.selectbox(key="inspect_run").set_value(lgb).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "LightGBM run" in [c.value for c in at.caption] and at.radio(key="inspect_part").options == ["test rows (stored at training)"]
    shown = {m.label: m.value for m in at.metric}
    assert shown["test AUC"] == f"{expected.rows[2].test['auc']:.4f}"
    roc = next(c for c in charts(at) if "ROC" in str(c["title"]))
    assert roc["marks"] and roc["data"][0] and "has no wide weights" in " ".join(i.value for i in at.info)
    # the Predict page scores a table with the LightGBM baseline as it scored its test rows
    at.switch_page("views/predict.py").run()
    at.selectbox(key="predict_run").set_value(lgb).run()
    at.selectbox(key="predict_table").set_value("synthetic")
    at.button(key="predict_start").click().run()
    _finish(at, studio(at).predicts[lgb])
    scored = studio(at).predicts[lgb].snapshot().result
    assert not at.exception and not at.error and scored.rows == 1200, [e.value for e in at.error]
    import pandas as pd
    import pyarrow.parquet as pq

    predicted = pd.read_csv(__import__("io").BytesIO(scored.csv))["prediction"].to_numpy()
    stored = pq.read_table(runs[2] / "test_predictions.parquet")
    np.testing.assert_allclose(predicted[stored.column("row").to_numpy()], stored.column("prediction").to_numpy(), atol=1e-6)
    # the Export page builds the baseline's bundle, checked against LightGBM, ready to download
    at.switch_page("views/export.py").run()
    at.selectbox(key="export_run").set_value(lgb).run()
    at.button(key="export_build").click().run()
    _finish(at, studio(at).exports[lgb])
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.success and "raw.onnx vs LightGBM" in at.success[0].value and "0 rows over 1e-5" in at.success[0].value
    built = studio(at).exports[lgb].snapshot().result
    assert set(built.graphs) == {"raw.onnx", "model.onnx"} and built.figures["parity"]["ok"]
    assert {b.proto.label for b in at.get("download_button")} >= {"Download bundle (zip)", "Download raw.onnx"}
    # Explain: exact TreeSHAP of the baseline, drawn with the network's charts
    at.switch_page("views/explain.py").run()
    at.selectbox(key="explain_run").set_value(lgb).run()
    at.button(key="explain_start").click().run()
    _finish(at, studio(at).explain_jobs[lgb])
    assert not at.exception and not at.error, [e.value for e in at.error]
    explained = studio(at).explain_jobs[lgb].snapshot().result.explanation
    assert set(explained.columns) == {"colour", "size", "x1", "x2"} and len(explained.values) == 180  # every validation row
    drawn = next(c for c in charts(at) if c["marks"] == ["bar"] and "SHAP" in str(c["title"]))
    expected_importance = explained.importance()
    assert [r["feature"] for r in drawn["data"][0]] == list(expected_importance.feature)
    assert [r["mean_abs_shap"] for r in drawn["data"][0]] == pytest.approx(list(expected_importance.mean_abs_shap))
    # a restarted server lists the baselines again (a LightGBM run has no network files)
    reset_hub()
    again = AppTest.from_file(APP, default_timeout=120)
    again.query_params["s"] = "c0" * 16
    again.run()
    load_file(again, synthetic_csv)
    again.switch_page("views/compare.py").run()
    assert not again.exception and sorted(again.dataframe[0].value["kind"][2:]) == ["LightGBM", "constant"]
    reset_hub()


def test_the_first_run_of_a_table_trains_its_ablations_by_default(tmp_path, monkeypatch, small_spec, synthetic_csv):
    _ws, spec = small_spec
    monkeypatch.setenv("WDSTUDIO_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("WDSTUDIO_FIRST_RUN_ABLATIONS", "1")  # a real server's default (tests turn it off elsewhere)
    reset_hub()
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    load_file(at, synthetic_csv)
    studio(at).spec = spec
    at.switch_page("views/train.py").run()
    assert at.checkbox(key="with_ablations").value is True  # the first run of this table
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(studio(at).job_ids) == 3 and "wide-only as run 2 and deep-only as run 3" in at.success[0].value
    at.run()  # the same page again, the runs still training: the switch is a new one, off
    assert at.checkbox(key="with_ablations_more").value is False
    _wait(at)
    at.switch_page("views/compare.py").run()
    frame = at.dataframe[0].value
    assert list(frame["run"]) == ["run 1", "run 2", "run 3"] and list(frame["kind"]) == ["Wide & Deep", "wide-only", "deep-only"]
    runs = _ordered(at)
    assert list(frame["test AUC"]) == pytest.approx([r.test["auc"] for r in leaderboard(runs, "auc").rows], abs=1e-12)
    at.switch_page("views/train.py").run()
    assert at.checkbox(key="with_ablations_more").value is False  # the table has runs now: one run per Start
    at.button(key="FormSubmitter:train_form-Start training").click().run()
    assert not at.exception and len(studio(at).job_ids) == 4
    _wait(at)
    reset_hub()
