"""Multiclass labels end to end (issue 16): metrics against scikit-learn, the task inferred,
a 2-row class, a class only the test rows have, the prediction columns, SHAP per class, ONNX
and INT8 -- real DuckDB, torch and onnxruntime on a small generated table."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn import metrics as skm

from studio_core.cli.main import main
from studio_core.common.errors import StudioError
from studio_core.common.multiclass import multiclass_metrics, softmax
from studio_core.data.workspace import Workspace
from studio_core.explain.shap_values import explain, frame_source
from studio_core.export.bundle import export_bundle
from studio_core.export.scoring import load_bundle
from studio_core.features.suggest import choose_task, suggest
from studio_core.runs import train as pipeline
from studio_core.runs.bootstrap import metric_intervals
from studio_core.runs.inspect import class_confusion
from studio_core.runs.store import load_run
from studio_core.spec.schema import DataSpec

CLASSES = ["amber", "blue", "coral", "dune"]


def test_metrics_equal_scikit_learns():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 600)
    logits = rng.normal(size=(600, 4))
    logits[np.arange(600), y] += 1.2
    p = softmax(logits)
    m = multiclass_metrics(logits, y)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, p.argmax(1)), abs=1e-12)
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, p.argmax(1), average="macro"), abs=1e-12)
    assert m["logloss"] == pytest.approx(skm.log_loss(y, p), abs=1e-9)
    assert m["macro_auc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"), abs=1e-12)
    iv = metric_intervals("multiclass", y.astype(float), logits, resamples=300)
    for key in ("accuracy", "macro_f1", "logloss", "macro_auc"):
        assert iv[key][0] < m[key] < iv[key][1]


def test_a_text_label_with_several_values_is_multiclass_and_too_many_is_refused():
    task, positive, reason = choose_task(["d", "c", "b", "a"], False, "band")
    assert task == "multiclass" and positive == "" and "4 values" in reason
    with pytest.raises(StudioError, match="group the rare ones"):
        choose_task([f"v{i}" for i in range(101)], False, "band")
    assert choose_task(["1", "2", "3"], True, "n")[0] == "regression"  # numbers stay a regression (a rating 1-3)...
    assert choose_task(["2", "0", "1"], True, "species")[0] == "multiclass"  # ...except integer codes 0..K-1, as a label encoder writes them
    assert choose_task(["0", "1", "2", "3.5"], True, "n")[0] == "regression"


def write_classes(path: Path, n: int = 1500, seed: int = 0) -> Path:
    """Four classes from a categorical and two numbers, a 2-row class ('rare'), and 3 rows of a
    class ('ghost') that the split column sends to the test part only."""
    rng = np.random.default_rng(seed)
    shades = ["red", "green", "blue", "grey", "black"]
    effect = rng.normal(0, 1.5, (len(shades), 4))
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["shade", "x1", "x2", "part", "band"])
        for i in range(n):
            s, x1, x2 = int(rng.integers(len(shades))), rng.normal(), rng.normal()
            score = effect[s] + np.array([1.5 * x1, -1.5 * x1, 1.5 * x2, -1.5 * x2]) + rng.gumbel(size=4)
            part = "test" if i % 10 == 0 else "validation" if i % 10 == 1 else "train"
            w.writerow([shades[s], f"{x1:.3f}", f"{x2:.3f}", part, CLASSES[int(score.argmax())]])
        w.writerow(["red", "0.1", "0.2", "train", "rare"])
        w.writerow(["blue", "-0.3", "0.5", "train", "rare"])
        for _ in range(3):
            w.writerow(["grey", "0.0", "0.0", "test", "ghost"])
    return path


@pytest.fixture(scope="module")
def multiclass_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("mc")
    path = write_classes(d / "bands.csv")
    ws = Workspace()
    ws.load(str(path))
    s = suggest(ws, DataSpec(table="bands", label="band", split="column", split_column="part"))
    spec = s.spec
    assert spec.data.task == "multiclass" and "6 values" in s.task_reason
    spec.train.epochs = 15
    out = pipeline.train(spec, ws, d / "run")
    return ws, load_run(out.run_dir), out, path


def test_a_multiclass_run_trains_with_a_2_row_class_and_reports_a_class_only_the_test_rows_have(multiclass_run):
    ws, run, out, _ = multiclass_run
    assert run.preprocessor.classes_ == sorted(CLASSES + ["rare"])  # the training rows' classes, sorted; 'ghost' is not one
    m = out.metrics
    assert set(m["test"]) == {"accuracy", "macro_f1", "logloss", "macro_auc"} and m["test"]["accuracy"] > 0.6
    assert m["test_ci"]["accuracy"][0] <= m["test"]["accuracy"] <= m["test_ci"]["accuracy"][1]
    assert any("'ghost' (3 rows)" in n and "test rows" in n for n in m["notes"])
    assert m["n_test"] == 150  # the ghost rows are not among the scored test rows
    stored = run.test_scores()
    assert stored.output.shape == (150, 5)
    np.testing.assert_allclose(multiclass_metrics(stored.output, stored.y)["accuracy"], m["test"]["accuracy"])
    matrix, per_class = class_confusion(run, stored)
    assert matrix.rows.sum() == 150 and list(per_class["class"]) == run.preprocessor.classes_
    amber = per_class.set_index("class").loc["amber"]
    assert amber.support == int((stored.y == 0).sum())


def test_predict_writes_the_class_and_one_probability_per_class_in_input_order(multiclass_run, tmp_path, capsys):
    ws, run, _, path = multiclass_run
    probs, _ = run.predict(ws.table("bands"))
    assert probs.shape == (1505, 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    out = tmp_path / "pred.csv"
    assert main(["predict", "--run", str(run.path), "--data", str(path), "--out", str(out)]) == 0
    got = pd.read_csv(out)
    classes = run.preprocessor.classes_
    assert list(got.columns) == ["prediction"] + [f"p_{c}" for c in classes]
    np.testing.assert_allclose(got[[f"p_{c}" for c in classes]].to_numpy(), probs, atol=1e-9)
    assert (got.prediction == np.array(classes)[probs.argmax(axis=1)]).all()


def test_shap_is_additive_for_every_class(multiclass_run):
    ws, run, _, _ = multiclass_run
    rows = frame_source(ws.con.sql("SELECT * FROM bands LIMIT 12").df())
    background = frame_source(ws.con.sql("SELECT * FROM bands LIMIT 40 OFFSET 200").df())
    logits = []
    for k, name in enumerate(run.preprocessor.classes_):
        e = explain(run, rows, background, class_index=k)
        assert e.output_name == f"logit of {name}"
        np.testing.assert_allclose(e.base_value + e.values.sum(axis=1), e.outputs, atol=1e-4)
        logits.append(e.outputs)
    probs, _ = run.predict(ws.table("bands"))
    np.testing.assert_allclose(softmax(np.stack(logits, axis=1)), probs[:12], atol=1e-5)
    with pytest.raises(StudioError, match="out of range"):
        explain(run, rows, background, class_index=9)


def test_onnx_gives_one_output_per_class_and_the_bundle_scores_like_the_run(multiclass_run, tmp_path):
    ws, run, _, path = multiclass_run
    fig = export_bundle(run, tmp_path / "b.zip", ws=ws, int8=True)
    p = fig["parity"]
    assert p["ok"] and fig["score_with"] == "raw.onnx" and p["raw_id_mismatches"] == 0 and p["raw_prediction_max_abs_diff"] < 1e-5
    assert "accuracy_change" in fig["int8"] and "raw.int8.onnx" in fig["graphs"]
    b = load_bundle(tmp_path / "b.zip")
    outputs = ort.InferenceSession(b.graphs["model.onnx"]).get_outputs()
    assert [(o.name, len(o.shape)) for o in outputs] == [(f"logit_{k}", 1) for k in range(5)]
    raw = [(o.name, len(o.shape)) for o in ort.InferenceSession(b.graphs["raw.onnx"]).get_outputs()]
    assert raw == [(f"logit_{k}", 1) for k in range(5)] + [(f"prob_{k}", 1) for k in range(5)]
    assert b.manifest["classes"] == run.preprocessor.classes_
    assert [o["meaning"] for o in b.manifest["raw_graph"]["outputs"]][5] == "probability of class 'amber' (softmax)"
    got, _ = b.predict(ws.table("bands"))
    want, _ = run.predict(ws.table("bands"))
    np.testing.assert_allclose(got, want, atol=1e-5)
    got8, _ = b.predict(ws.table("bands"), int8=True)
    assert got8.shape == want.shape and np.abs(got8 - want).max() < 0.1


def test_two_multiclass_runs_compare_on_their_shared_test_rows(multiclass_run, tmp_path):
    from studio_core.compare.leaderboard import leaderboard

    ws, run, _, _ = multiclass_run
    wide = load_run(run.path).spec
    wide.model.deep = False
    wide.train.epochs = 5
    other = pipeline.train(wide, ws, tmp_path / "wide").run_dir
    board = leaderboard([run.path, other], resamples=200, seed=3)
    ref, row = board.rows
    assert board.metric == "accuracy" and row.kind == "wide-only"
    a, b = load_run(run.path).test_scores(), load_run(other).test_scores()
    assert row.diff["accuracy"] == pytest.approx(multiclass_metrics(b.output, b.y)["accuracy"] - multiclass_metrics(a.output, a.y)["accuracy"], abs=1e-12)
    assert row.diff_ci["accuracy"][0] <= row.diff["accuracy"] <= row.diff_ci["accuracy"][1]
