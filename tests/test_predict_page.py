"""The Predict page: a new table scored with a finished run in the background, previewed and
downloadable; renamed columns refused as the CLI refuses them."""

from __future__ import annotations

import io
import time

import numpy as np
import pandas as pd
from test_app import _session_with_run, load_file, studio

from studio_core.jobs.hub import reset_hub


def _wait(at):
    deadline = time.time() + 120
    while time.time() < deadline:
        at.run()
        tasks = studio(at).predicts
        if tasks and not next(iter(tasks.values())).snapshot().active:
            break
        time.sleep(0.3)
    at.run()


def test_a_new_table_is_scored_previewed_and_downloadable(tmp_path, monkeypatch, small_spec):
    from conftest import write_synthetic

    at = _session_with_run(tmp_path, monkeypatch, small_spec, "78" * 16)
    fresh = write_synthetic(tmp_path / "fresh.csv", n=300, seed=9)
    load_file(at, fresh)
    at.switch_page("views/predict.py").run()
    assert not at.exception and not at.error
    at.selectbox(key="predict_table").set_value("fresh")
    at.button(key="predict_start").click().run()
    _wait(at)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Scored 300 rows" in m.value for m in at.success)
    preview = at.dataframe[0].value
    assert list(preview.columns)[0] == "prediction" and len(preview) == 100
    run_dir = next(iter(__import__("state").registry().owned(studio(at).owner))).snapshot().result.run_dir
    from studio_core.runs.store import load_run

    want, _ = load_run(run_dir).predict(studio(at).ws.table("fresh"))
    np.testing.assert_allclose(preview.prediction, want[:100], atol=1e-9)
    result = next(iter(studio(at).predicts.values())).snapshot().result
    scored = pd.read_csv(io.BytesIO(result.csv))
    assert len(scored) == 300 and list(scored.columns)[:2] == ["prediction", "colour"]
    np.testing.assert_allclose(scored.prediction, want, atol=1e-6)
    assert {m.label for m in at.metric} >= {"prediction mean", "share at or above 0.5"}
    reset_hub()


def test_renamed_columns_are_refused_with_the_likely_name(tmp_path, monkeypatch, small_spec, synthetic_csv):
    at = _session_with_run(tmp_path, monkeypatch, small_spec, "79" * 16)
    renamed = tmp_path / "renamed.csv"
    text = synthetic_csv.read_text().splitlines()
    renamed.write_text("\n".join([text[0].replace("x1", "X-1")] + text[1:]) + "\n")
    load_file(at, renamed)
    at.switch_page("views/predict.py").run()
    at.selectbox(key="predict_table").set_value("renamed")
    at.button(key="predict_start").click().run()
    _wait(at)
    assert not at.exception
    failed = [e.value for e in at.error]
    assert failed and "did you mean X-1?" in failed[0] and not at.success
    at.checkbox(key="predict_allow_missing").check()
    at.button(key="predict_start").click().run()
    _wait(at)
    assert any("Scored 1,200 rows" in m.value for m in at.success) and any("x1" in w.value for w in at.warning)
    reset_hub()
