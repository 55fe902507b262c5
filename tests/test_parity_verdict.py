"""The export's parity check: a tolerance that fits the output's scale, and one consistent
verdict when a graph really differs -- an error in the page, exit 2 from the CLI (unless
``--allow-mismatch``), and a line in the model card.  Runs torch, onnxruntime and DuckDB for real;
a wrong graph is made by shifting one weight of the real exported graph."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from test_export import _small_run, mixed_spec, train_run

from studio_core.cli.main import main
from studio_core.export import onnx_export
from studio_core.export.bundle import _rows_source, export_bundle
from studio_core.export.onnx_run import PARITY_ATOL, tolerance_used


def test_tolerance_scales_with_the_value():
    want = np.array([-13.0, 0.1, 2.0])
    assert tolerance_used(want + np.array([3e-4, 0, 0]), want) < 1  # 3e-4 at -13 is within rounding: 1.3e-3 allowed there
    assert tolerance_used(want + np.array([0, 3e-4, 0]), want) > 1  # the same difference near 0 is not
    assert tolerance_used(want, want) == 0.0


def _wrong_graph(monkeypatch):
    """Exported graphs whose first float weight is shifted by 0.5: a real mismatch with the model."""
    real = onnx_export.export_model

    def shifted(*args, **kwargs):
        proto = real(*args, **kwargs)
        for init in proto.graph.initializer:
            arr = numpy_helper.to_array(init)
            if arr.dtype == np.float32 and arr.size:
                init.CopyFrom(numpy_helper.from_array(arr + np.float32(0.5), init.name))
                break
        return proto

    monkeypatch.setattr(onnx_export, "export_model", shifted)


def test_large_logits_pass_a_check_that_an_absolute_bound_failed(tmp_path):
    """Rare-positive tables have logits far from 0, where float32 rounding alone exceeds 1e-5
    (the 77-column table: logits near -13).  With every weight scaled by 10 here, the graphs
    still match the model to rounding, and the check says so."""
    run = _small_run(tmp_path)
    with torch.no_grad():
        for weight in run.model.parameters():
            weight.mul_(10.0)
    fig = export_bundle(run, tmp_path / "b.zip")
    p = fig["parity"]
    assert p["model_max_abs_diff"] > PARITY_ATOL  # the old absolute rule would have called this a failure
    assert p["ok"] and p["tolerance_used"] <= 1 and "x |value|" in p["tolerance"]


def test_a_wrong_graph_is_one_verdict_card_cli_and_bundle(tmp_path, monkeypatch, capsys):
    run_dir, ws = train_run(tmp_path, mixed_spec(), name="run")
    _wrong_graph(monkeypatch)
    fig = export_bundle(run_dir, tmp_path / "in.zip", ws=ws)
    assert not fig["parity"]["ok"] and fig["parity"]["tolerance_used"] > 1
    with zipfile.ZipFile(tmp_path / "in.zip") as z:
        card = z.read("model_card.md").decode()
        assert json.loads(z.read("bundle.json"))["parity"]["ok"] is False
    assert "PARITY CHECK FAILED" in card and "Do not serve this bundle" in card

    out = tmp_path / "b.zip"
    rc = main(["export", "--run", str(run_dir), "--out", str(out)])
    _, err = capsys.readouterr()
    errors = [line for line in err.strip().splitlines() if not line.startswith("warning: ")]
    assert rc == 2 and len(errors) == 1 and errors[0].startswith("error: ") and "--allow-mismatch" in errors[0]
    assert not out.exists()  # nothing downstream can pick it up
    rc = main(["export", "--run", str(run_dir), "--out", str(out), "--allow-mismatch"])
    _, err = capsys.readouterr()
    assert rc == 0 and out.is_file() and "kept because of --allow-mismatch" in err


@pytest.mark.parametrize("n_val, words", [(4884, "the 4,884 validation rows, then again from the first (2.05 passes)"),
                                          (14653, "the first 10,000 of the 14,653 validation rows")])
def test_the_parity_rows_say_what_was_done(n_val, words):
    assert _rows_source(n_val, 10_000) == f"10,000 rows: {words}"


def test_the_export_page_shows_a_failed_check_as_an_error_and_holds_the_downloads(tmp_path, monkeypatch, small_spec, synthetic_csv):
    from test_app import _session_with_run, _wait_for_task, load_file, studio

    at = _session_with_run(tmp_path, monkeypatch, small_spec, "9c" * 16)
    load_file(at, synthetic_csv)
    at.switch_page("views/export.py").run()
    _wrong_graph(monkeypatch)
    at.button(key="export_build").click().run()
    _wait_for_task(at, lambda: studio(at).exports)
    assert not at.exception and not [s for s in at.success if "Parity" in s.value]
    assert at.error and "parity check failed" in at.error[0].value
    labels = {b.proto.label for b in at.get("download_button")}
    assert "Download bundle (zip)" not in labels and "Download model.onnx" not in labels
    at.checkbox(key="export_anyway").check().run()
    assert "Download bundle (zip)" in {b.proto.label for b in at.get("download_button")}
    onnx.checker.check_model(onnx.load_from_string(next(iter(studio(at).exports.values())).snapshot().result.graphs["model.onnx"]))
