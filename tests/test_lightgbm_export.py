"""A LightGBM baseline exported as a bundle (issue 17: a challenger that ships like the model):
for a binary, a regression and a multiclass label, ``wdstudio score`` with the bundle (onnxruntime
only) gives what ``wdstudio predict`` gives with the booster on every row of the file, unseen
categories and missing values included; the parity figures say so; --int8 is refused."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from conftest import write_synthetic

from studio_core.cli.main import main


@pytest.mark.parametrize("label,kind", [("target", "binary"), ("target", "regression"), ("size", "multiclass")])
def test_the_bundle_scores_every_row_as_the_booster_does(tmp_path, capsys, label, kind):
    data = write_synthetic(tmp_path / "t.csv", label="binary" if kind == "binary" else "regression")
    run, gbm = tmp_path / "run", tmp_path / "gbm"
    assert main(["train", "--data", str(data), "--label", label, "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    assert main(["baseline", "--run", str(run), "--data", str(data), "--kind", "lightgbm", "--out", str(gbm)]) == 0
    bundle = tmp_path / "gbm.zip"
    assert main(["export", "--run", str(gbm), "--out", str(bundle)]) == 0  # parity on synthetic rows: NULLs, unseen values
    manifest = json.loads(zipfile.ZipFile(bundle).read("bundle.json"))
    assert manifest["kind"] == "LightGBM" and manifest["task"] == kind and manifest["score_with"] == "raw.onnx"
    assert manifest["parity"]["ok"] and manifest["parity"]["rows_over_1e-5"] == 0 and manifest["parity"]["rows"] == 10_000
    # new rows with a category never seen in training and missing numbers
    rows = pd.read_csv(data).drop(columns=[label])
    rows.loc[:19, "colour"] = "ultraviolet"
    rows.loc[10:29, "x1"] = np.nan
    fresh = tmp_path / "fresh.csv"
    rows.to_csv(fresh, index=False)
    assert main(["score", "--bundle", str(bundle), "--data", str(fresh), "--out", str(tmp_path / "s.csv")]) == 0
    assert main(["predict", "--run", str(gbm), "--data", str(fresh), "--out", str(tmp_path / "p.csv")]) == 0
    scored, predicted = pd.read_csv(tmp_path / "s.csv"), pd.read_csv(tmp_path / "p.csv")
    assert list(scored.columns) == list(predicted.columns) and len(scored) == len(rows)
    if kind == "multiclass":
        assert (scored["prediction"] == predicted["prediction"]).all()
        probs = [c for c in scored.columns if c.startswith("p_")]
        np.testing.assert_allclose(scored[probs].to_numpy(), predicted[probs].to_numpy(), atol=1e-5)
    else:
        np.testing.assert_allclose(scored["prediction"].to_numpy(), predicted["prediction"].to_numpy(), atol=1e-5, rtol=1e-6)
    capsys.readouterr()
    assert main(["export", "--run", str(gbm), "--out", str(tmp_path / "q.zip"), "--int8"]) == 2
    assert capsys.readouterr().err.strip() == "error: --int8 quantises a network's weights; a LightGBM bundle has none: export it without --int8"


@pytest.mark.parametrize("label,kind", [("target", "binary"), ("size", "multiclass")])
def test_treeshap_values_add_up_to_the_boosters_raw_output_and_find_the_signal(tmp_path, label, kind):
    """Each row's SHAP values plus the base add up to the booster's own raw score (of the chosen
    class); the noise column x2 matters least (the label depends on colour, size and x1)."""
    from studio_core.data.split import split_for
    from studio_core.data.workspace import Workspace
    from studio_core.explain.lightgbm_shap import lightgbm_explanation
    from studio_core.runs.lightgbm_run import load_lightgbm

    data = write_synthetic(tmp_path / "t.csv", n=3000, label="binary" if kind == "binary" else "regression")
    run, gbm = tmp_path / "run", tmp_path / "gbm"
    assert main(["train", "--data", str(data), "--label", label, "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    assert main(["baseline", "--run", str(run), "--data", str(data), "--kind", "lightgbm", "--out", str(gbm)]) == 0
    baseline = load_lightgbm(gbm)
    ws = Workspace()
    ws.load(data)
    split = split_for(ws, baseline.spec, baseline.metrics)
    raw = baseline.output(baseline.frame(split.val))
    for k in range(3 if kind == "multiclass" else 1):
        e = lightgbm_explanation(baseline, split.val, class_index=k)
        want = raw[:, k] if kind == "multiclass" else raw
        np.testing.assert_allclose(e.values.sum(axis=1) + e.base_value, want, atol=1e-6)
        np.testing.assert_allclose(e.outputs, want, atol=1e-6)
        assert len(e.values) == split.n_val and list(e.data.columns[-4:]) == list(e.columns)
    importance = lightgbm_explanation(baseline, split.val).importance()
    assert importance.feature.iloc[-1] == "x2" and e.output_name == ("log-odds" if kind == "binary" else "logit of S")
