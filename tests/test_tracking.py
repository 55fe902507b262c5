"""MLflow tracking (issue 17): a trained run and a LightGBM baseline logged into a temporary
SQLite store and read back with ``mlflow.search_runs`` -- the spec as params, every epoch's
metrics with the epoch as step, the test metrics with their intervals, the report and model card
as artifacts, and an ONNX model that scores raw rows as the run does.  A store that cannot be
used is refused before training; the engine never imports mlflow unless asked."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest

from studio_core.cli.main import main
from studio_core.tracking.mlflow_log import spec_params


@pytest.fixture(autouse=True)
def _no_global_store(monkeypatch):
    """Reading back sets MLflow's global URI (and MLFLOW_TRACKING_URI); no later test inherits it."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield
    mlflow.set_tracking_uri(None)


def _store(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _runs(uri: str) -> pd.DataFrame:
    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(search_all_experiments=True)


def test_train_and_baseline_log_params_epoch_metrics_intervals_report_and_a_working_onnx_model(tmp_path, synthetic_csv, capsys):
    uri = _store(tmp_path)
    run, lgb = tmp_path / "run", tmp_path / "lgb"
    assert main(["train", "--data", str(synthetic_csv), "--label", "target", "--epochs", "3", "--out", str(run), "--quiet", "--mlflow", uri]) == 0
    assert main(["baseline", "--run", str(run), "--data", str(synthetic_csv), "--kind", "lightgbm", "--out", str(lgb), "--mlflow", uri]) == 0
    out = capsys.readouterr()
    assert out.out.count(f"to MLflow {uri}") == 2 and out.out.count("ONNX model") == 2
    assert "MLFLOW_TRACKING_URI" not in os.environ  # logging did not redirect what this process does next

    found = _runs(uri).set_index("tags.mlflow.runName")
    assert set(found.index) == {"run", "lgb"} and (found["status"] == "FINISHED").all()
    assert found["experiment_id"].nunique() == 1  # one experiment per table and label: the baseline sits beside its run
    metrics = json.loads((run / "metrics.json").read_text())
    spec = json.loads((run / "spec.json").read_text())
    row = found.loc["run"]
    # the spec as params: every field under its dotted name, lists as JSON
    assert row["params.model.hidden_units"] == json.dumps(spec["model"]["hidden_units"])
    assert row["params.data.label"] == "target" and row["params.train.deep_lr"] == json.dumps(spec["train"]["deep_lr"])
    # test metrics with their 95 % intervals, exactly the run's
    for key, value in metrics["test"].items():
        assert row[f"metrics.test_{key}"] == pytest.approx(value)
        lo, hi = metrics["test_ci"][key]
        assert row[f"metrics.test_{key}_ci_low"] == pytest.approx(lo) and row[f"metrics.test_{key}_ci_high"] == pytest.approx(hi)
    assert row["tags.wdstudio.kind"] == "Wide & Deep" and found.loc["lgb", "tags.wdstudio.kind"] == "LightGBM"
    assert row["tags.wdstudio.fingerprint.test"] == metrics["split"]["fingerprints"]["test"]
    assert found.loc["lgb", "metrics.test_auc"] == pytest.approx(json.loads((lgb / "metrics.json").read_text())["test"]["auc"])

    client = mlflow.MlflowClient(uri)
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    logged = client.get_metric_history(row["run_id"], "val_auc")
    assert [(m.step, m.value) for m in sorted(logged, key=lambda m: m.step)] == [(r["epoch"], pytest.approx(r["val_auc"])) for r in history]
    assert len(history) >= 2
    names = {a.path for a in client.list_artifacts(row["run_id"])} | {a.path for a in client.list_artifacts(row["run_id"], "run")}
    assert {"report.html", "model_card.md", "run/spec.json", "run/preprocess.json", "run/history.jsonl"} <= names
    report = client.download_artifacts(row["run_id"], "report.html", str(tmp_path / "dl"))
    assert f"{metrics['test']['auc']:.4f}" in open(report, encoding="utf-8").read()
    assert "report.html" in {a.path for a in client.list_artifacts(found.loc["lgb", "run_id"])}

    # the logged model: raw columns in, the run's own predictions out
    models = {m.source_run_id: m for m in mlflow.search_logged_models(experiment_ids=[row["experiment_id"]], output_format="list")}
    assert set(models) == {row["run_id"], found.loc["lgb", "run_id"]}  # the challenger is logged as a model too
    model = mlflow.pyfunc.load_model(models[row["run_id"]].model_uri)
    names_in = [s.name for s in model.metadata.get_input_schema().inputs]
    assert names_in == ["colour", "size", "x1", "x2"]
    rows = pd.read_csv(synthetic_csv).head(50)
    feeds = {"colour": rows["colour"].to_numpy(object), "size": rows["size"].to_numpy(object),
             "x1": rows["x1"].to_numpy(np.float64), "x2": rows["x2"].to_numpy(np.float64)}
    scored = model.predict(feeds)
    head = tmp_path / "head.csv"
    rows.drop(columns=["target"]).to_csv(head, index=False)
    assert main(["predict", "--run", str(run), "--data", str(head), "--out", str(tmp_path / "p.csv")]) == 0
    expected = pd.read_csv(tmp_path / "p.csv")["prediction"].to_numpy()
    np.testing.assert_allclose(scored["prediction"], expected, atol=1e-5)
    assert main(["predict", "--run", str(lgb), "--data", str(head), "--out", str(tmp_path / "q.csv")]) == 0
    challenger = mlflow.pyfunc.load_model(models[found.loc["lgb", "run_id"]].model_uri).predict(feeds)
    np.testing.assert_allclose(challenger["prediction"], pd.read_csv(tmp_path / "q.csv")["prediction"].to_numpy(), atol=1e-5)


def test_a_store_that_cannot_be_used_is_refused_before_training_and_track_logs_a_kept_run(tmp_path, synthetic_csv, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["train", "--data", str(synthetic_csv), "--label", "target", "--out", str(out), "--quiet", "--mlflow", "mlflow.db"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --mlflow 'mlflow.db' is not a tracking URI") and "sqlite:///mlflow.db" in err[0]
    assert not out.exists()  # refused before any work
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert main(["train", "--data", str(synthetic_csv), "--label", "target", "--out", str(out), "--quiet",
                 "--mlflow", f"sqlite:///{blocked}/mlflow.db"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot use the MLflow store sqlite:///{blocked}/mlflow.db") and not out.exists()

    # MLFLOW_TRACKING_URI alone turns logging on; `track` logs a run trained earlier
    uri = _store(tmp_path)
    assert main(["train", "--data", str(synthetic_csv), "--label", "target", "--epochs", "2", "--out", str(out), "--quiet"]) == 0
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(["track", "--run", str(out), "--mlflow-experiment", "kept"]) == 0
    assert main(["track", "--run", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    found = _runs(uri)
    assert len(found) == 1 and mlflow.get_experiment(found["experiment_id"][0]).name == "kept"


def test_spec_params_flatten_every_section_and_stay_within_mlflows_limit(small_spec):
    _ws, spec = small_spec
    spec.features.categorical = [f"c{i}" * 40 for i in range(200)]  # a huge list: cut, not refused
    params = spec_params(spec)
    assert {k.split(".")[0] for k in params} == set(spec.to_dict())
    assert all(len(v) <= 6000 for v in params.values()) and params["features.categorical"].endswith("…")
    assert params["data.label"] == "target"


def test_the_engine_never_imports_mlflow_unless_asked(tmp_path, synthetic_csv):
    code = ("import sys; from studio_core.cli.main import main; "
            f"rc = main(['train', '--data', {str(synthetic_csv)!r}, '--label', 'target', '--epochs', '1', '--out', {str(tmp_path / 'r')!r}, '--quiet']); "
            "assert rc == 0; assert 'mlflow' not in sys.modules, 'mlflow imported'")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
