"""ONNX export and bundles: parity of the model graph and of the raw-row graph with the engine,
INT8 figures, the bundle's files and manifest, fallbacks and the export CLI.

Everything runs for real (torch, onnxruntime, DuckDB) on small tables, 1-2 epochs."""

from __future__ import annotations

import csv
import io
import json
import threading
import zipfile
from pathlib import Path

import mmh3
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import write_synthetic

from studio_core.cli.main import main
from studio_core.common.errors import Cancelled, StudioError
from studio_core.data.workspace import Workspace
from studio_core.export.bundle import export_bundle
from studio_core.export.onnx_raw_inputs import MISSING_TEXT, raw_input_names
from studio_core.export.onnx_run import PARITY_TOL
from studio_core.export.scoring import load_bundle
from studio_core.runs import train as pipeline
from studio_core.runs.results import change_text
from studio_core.runs.store import load_run
from studio_core.spec.schema import CategoricalFeature, CrossFeature, DataSpec, FeatureSpec, ModelSpec, NumericFeature, Spec, TrainSpec

CITIES = ["Zürich", "東京", "São Paulo", "Kraków", "Oslo", "Paris"]


def write_mixed(path: Path, n: int = 900, seed: int = 1, regression: bool = False) -> Path:
    """Text with non-ASCII values and NULLs, a numeric zip code used as a category, a boolean,
    numerics with NULLs, awkward column names (space, dash, 'logit')."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["city", "user agent", "zip", "flag", "amount", "age", "score-1", "logit", "target"])
        for i in range(n):
            city = CITIES[rng.integers(len(CITIES))]
            amount, age = rng.exponential(50), rng.integers(18, 80)
            z = (city in ("Zürich", "東京")) * 1.5 + 0.02 * (age - 45) + rng.normal()
            y = round(float(z), 4) if regression else int(z > 0.5)
            w.writerow(["" if i % 13 == 0 else city, f"ua-{rng.integers(300)}", rng.choice([8001, 10115, 75001, 100]),
                        "true" if rng.random() < 0.5 else "false", "" if i % 11 == 0 else f"{amount:.2f}",
                        "" if i % 7 == 0 else int(age), f"{rng.normal():.3f}", f"{rng.normal():.3f}", y])
    return path


def mixed_spec(task: str = "binary", model: ModelSpec | None = None, features: FeatureSpec | None = None) -> Spec:
    features = features or FeatureSpec(
        numeric=[NumericFeature("amount", "standardize", buckets=8), NumericFeature("age", "bucketize", buckets=6, wide=True),
                 NumericFeature("score-1", "standardize", embed=True, buckets=5), NumericFeature("logit", "standardize")],
        categorical=[CategoricalFeature("city", "vocab", embedding_dim=4), CategoricalFeature("user agent", "hash", hash_buckets=64, embedding_dim=4),
                     CategoricalFeature("zip", "vocab", embedding_dim=3), CategoricalFeature("flag", "hash", hash_buckets=8, embedding_dim=2)],
        crosses=[CrossFeature(["city", "user agent"], "hash", hash_buckets=128), CrossFeature(["city", "zip"], "vocab"),
                 CrossFeature(["age", "city"], "vocab", min_count=2), CrossFeature(["amount", "flag"], "hash", hash_buckets=32)])
    return Spec(data=DataSpec(table="mixed", label="target", task=task, positive_class="1" if task == "binary" else ""),
                features=features, model=model or ModelSpec(hidden_units=[16, 8]), train=TrainSpec(epochs=1, batch_size=128))


def train_run(tmp_path: Path, spec: Spec, name: str = "run", regression: bool = False) -> tuple[Path, Workspace]:
    ws = Workspace()
    ws.load(write_mixed(tmp_path / f"{name}.csv", regression=regression), name="mixed")
    pipeline.train(spec, ws, tmp_path / name)
    return tmp_path / name, ws


def write_new_rows(path: Path, drop: str = "") -> Path:
    """Rows to score: unseen and non-ASCII categories, empty and NULL values, an unknown zip."""
    header = ["city", "user agent", "zip", "flag", "amount", "age", "score-1", "logit", "extra"]
    rows = [["Reykjavík", "ua-1", "8001", "true", "12.5", "33", "0.1", "1", "x"],
            ["🙂 emoji", "никогда", "99999", "false", "", "", "", "", "y"],
            ["", "", "", "", "1e6", "200", "-9", "0", ""],
            ["Zürich", "ua-7", "100", "true", "0", "18", "3.2", "-1", "z"],
            ["東京", "ua-299", "75001", "", "abc", "45", "0", "2", ""]]
    keep = [i for i, h in enumerate(header) if h != drop]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([header[i] for i in keep])
        w.writerows([[r[i] for i in keep] for r in rows * 3])
    return path


def score_both(bundle: Path, run_dir: Path, data: Path, int8: bool = False) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Bundle predictions (onnxruntime) and ``Run.predict`` (engine) on the same file."""
    b = load_bundle(bundle)
    ws = Workspace()
    table = ws.table(ws.load(data, name="input").table)
    got, warn_b = b.predict(table, int8=int8)
    want, warn_r = load_run(run_dir).predict(table)
    return got, want, warn_b, warn_r


def test_ort_murmurhash3_equals_mmh3_on_unicode():
    texts = ["", "a", "Private", "Zürich", "東京", "🙂 emoji", "никогда", "9", "-1.5", "x" * 500, "a\u0000b", MISSING_TEXT]
    g = onnx.helper.make_graph([onnx.helper.make_node("MurmurHash3", ["x"], ["y"], domain="com.microsoft", positive=1, seed=0)], "h",
                               [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.STRING, ["n"])],
                               [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.UINT32, ["n"])])
    m = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", 18), onnx.helper.make_opsetid("com.microsoft", 1)])
    got = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": np.array(texts, dtype=object)})[0]
    assert [int(v) for v in got] == [mmh3.hash(t, 0, signed=False) for t in texts]


def test_raw_input_names_are_safe_unique_and_not_outputs():
    names = raw_input_names(["user agent", "user_agent", "logit", "9lives", "prediction", "é"])
    assert list(names.values()) == ["user_agent", "user_agent_2", "logit_2", "c_9lives", "prediction_2", "_"]
    # a multiclass graph's outputs (logit_k, prob_k per class) are taken too: a column called logit skips logit_2
    multi = ("logit", "prediction", "logit_0", "logit_1", "logit_2", "prob_0", "prob_1", "prob_2")
    assert list(raw_input_names(["logit", "Logit_1", "prob_2", "prob_3"], multi).values()) == ["logit_3", "Logit_1_2", "prob_2_2", "prob_3"]


def test_bundle_with_data_parity_int8_and_manifest(tmp_path):
    run_dir, ws = train_run(tmp_path, mixed_spec())
    out = tmp_path / "b.zip"
    fig = export_bundle(run_dir, out, ws=ws, int8=True)
    p = fig["parity"]
    # acceptance: 10,000 validation-like rows, both graphs within 1e-5 of the engine
    assert p["rows"] == 10_000 and "validation" in p["rows_source"] and p["ok"]
    assert p["model_max_abs_diff"] <= PARITY_TOL and p["raw_logit_max_abs_diff"] <= PARITY_TOL and p["raw_prediction_max_abs_diff"] <= PARITY_TOL
    assert p["raw_id_mismatches"] == 0 and p["raw_num_max_abs_diff"] == 0.0
    q = fig["int8"]
    assert 0 < q["size_ratio"] < 1 and q["validation_rows"] == fig["validation_rows"] > 0
    assert np.isfinite(q["auc_change"]) and abs(q["auc_change"]) < 0.02 and 0 <= q["max_score_change"] < 0.05
    assert q["raw_int8_vs_model_int8_max_abs_diff"] < 1e-5 and 0 <= q["batch_dependence_max_change"] < 0.05
    assert q["chosen"] in [c["label"] for c in q["candidates"]] and len(q["candidates"]) >= 3

    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        assert names == {"model.onnx", "raw.onnx", "model.int8.onnx", "raw.int8.onnx", "preprocess.json", "spec.json",
                         "metrics.json", "bundle.json", "model_card.md"}
        model = onnx.load_model_from_string(z.read("model.onnx"))
        manifest = json.loads(z.read("bundle.json"))
        card = z.read("model_card.md").decode()
    # one self-contained file, opset >= 17, dynamic batch, inputs wide/cat/num, output logit [batch]
    onnx.checker.check_model(model)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert next(o.version for o in model.opset_import if o.domain == "") >= 17
    assert [i.name for i in model.graph.input] == ["wide", "cat", "num"] and [o.name for o in model.graph.output] == ["logit"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    assert len(model.graph.output[0].type.tensor_type.shape.dim) == 1
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        feeds = {i.name: np.zeros((batch, i.shape[1]), np.float32 if i.name == "num" else np.int64) for i in sess.get_inputs()}
        assert sess.run(None, feeds)[0].shape == (batch,)

    assert manifest["format_version"] == 1 and manifest["score_with"] == "raw.onnx" and manifest["task"] == "binary"
    assert manifest["positive_class"] == "1" and manifest["label"] == "target"
    raw = manifest["raw_graph"]
    assert raw["name_map"] == {"age": "age", "amount": "amount", "city": "city", "flag": "flag", "logit_2": "logit",
                               "score_1": "score-1", "user_agent": "user agent", "zip": "zip"}
    assert {r["column"]: r["dtype"] for r in raw["inputs"]}["zip"] == "string" and raw["missing_text"] == MISSING_TEXT
    for needle in ("## Data", "## Features", "cross `age` x `city`", "## ONNX export and parity", "## INT8", "AUC", "## Intended use", "## Limits"):
        assert needle in card

    # raw graph on truly new rows: unseen/non-ASCII/empty/NULL values, a missing column -> same as Run.predict
    new = write_new_rows(tmp_path / "new.csv", drop="flag")
    got, want, warn_b, warn_r = score_both(out, run_dir, new)
    assert len(got) == 15
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=PARITY_TOL)
    assert warn_b == warn_r and "flag" in warn_b[0]
    got8, _, _, _ = score_both(out, run_dir, new, int8=True)
    assert np.max(np.abs(got8 - want)) < 0.05


@pytest.mark.parametrize("variant", ["regression_wide_off", "deep_off", "no_num", "no_cat"])
def test_parts_off_and_empty_inputs(tmp_path, variant):
    """Regression, a part switched off, and W, C or N = 0: only the inputs that exist are exported."""
    f = mixed_spec().features
    task, model, expect = "binary", ModelSpec(hidden_units=[8]), ["wide", "cat", "num"]
    if variant == "regression_wide_off":
        task, model, expect = "regression", ModelSpec(wide=False, hidden_units=[8]), ["cat", "num"]
    elif variant == "deep_off":
        model, expect = ModelSpec(deep=False), ["wide"]
    elif variant == "no_num":  # every numeric bucketized: N = 0
        f = FeatureSpec(numeric=[NumericFeature("age", "bucketize", buckets=5)], categorical=f.categorical[:2], crosses=[])
        f.categorical[0].wide = f.categorical[1].wide = True
        expect = ["wide", "cat"]
    elif variant == "no_cat":  # nothing embedded: C = 0
        f = FeatureSpec(numeric=[NumericFeature("amount"), NumericFeature("score-1")],
                        categorical=[CategoricalFeature("city", "hash", hash_buckets=16, deep=False)], crosses=[CrossFeature(["city", "amount"])])
        expect = ["wide", "num"]
    spec = mixed_spec(task, model, f)
    run_dir, ws = train_run(tmp_path, spec, regression=task == "regression")
    out = tmp_path / "b.zip"
    fig = export_bundle(run_dir, out)  # no data: parity on synthetic raw rows
    p = fig["parity"]
    assert p["rows"] == 10_000 and "synthetic" in p["rows_source"] and fig["int8"] is None
    assert p["model_max_abs_diff"] <= PARITY_TOL and p["raw_prediction_max_abs_diff"] <= PARITY_TOL and p["raw_id_mismatches"] == 0
    manifest = load_bundle(out).manifest
    assert [i["name"] for i in manifest["model_graph"]["inputs"]] == expect
    got, want, _, _ = score_both(out, run_dir, write_new_rows(tmp_path / "new.csv"))
    # extreme new values (amount 1e6) give |values| in the thousands: float32 rounding is relative there
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=PARITY_TOL)


def test_fallback_without_raw_graph_scores_with_python_preprocessing(tmp_path):
    """Preprocessing that has no ONNX form: the bundle says why and scores via model.onnx."""
    run_dir, _ = train_run(tmp_path, mixed_spec(features=FeatureSpec(
        numeric=[NumericFeature("amount")], categorical=[CategoricalFeature("city"), CategoricalFeature("zip")])))
    run = load_run(run_dir)
    vocab = run.preprocessor.encoders_["cat:zip"].vocabulary_
    vocab[-1] = 12345  # a non-text vocabulary entry (no LabelEncoder form); the engine still looks values up
    fig = export_bundle(run, tmp_path / "b.zip")
    assert fig["graphs"] == ["model.onnx"] and fig["score_with"] == "model.onnx"
    assert "non-text" in fig["parity"]["raw_unavailable"] and fig["parity"]["model_max_abs_diff"] <= PARITY_TOL
    b = load_bundle(tmp_path / "b.zip")
    assert b.manifest["raw_graph"] is None and "non-text" in b.manifest["raw_unavailable_reason"]
    ws = Workspace()
    table = ws.table(ws.load(write_new_rows(tmp_path / "new.csv"), name="input").table)
    got, _ = b.predict(table)
    want, _ = run.predict(table)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=PARITY_TOL)


def test_export_cli_prints_figures_and_refuses_bad_input(capsys, tmp_path):
    data = write_synthetic(tmp_path / "syn.csv", n=600)
    assert main(["train", "--data", str(data), "--label", "target", "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    capsys.readouterr()
    rc = main(["export", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "b.zip"), "--int8", "--data", str(data)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "parity (|difference| <= 1e-05 + 0.0001 x |value|" in out and "): yes" in out and err == ""
    with zipfile.ZipFile(tmp_path / "b.zip") as z:  # the printed figures are the manifest's
        manifest = json.loads(z.read("bundle.json"))
    p, q = manifest["parity"], manifest["int8"]
    assert f"model.onnx vs torch max abs diff {p['model_max_abs_diff']:.3g}" in out
    assert f"raw.onnx vs engine: logit {p['raw_logit_max_abs_diff']:.3g}, prediction {p['raw_prediction_max_abs_diff']:.3g}" in out
    assert f"size ratio {q['size_ratio']:.3f}, {change_text('AUC', q['auc_change'])}" in out and f"on {q['validation_rows']} validation rows" in out
    rc = main(["export", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "nodata.zip")])
    out, _ = capsys.readouterr()
    assert rc == 0 and "synthetic" in out
    with zipfile.ZipFile(tmp_path / "nodata.zip") as z:
        assert "validation" not in json.loads(z.read("bundle.json"))["parity"]["rows_source"]
    for args, needle in ((["--run", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.zip")], "not a complete run directory"),
                         (["--run", str(tmp_path / "run"), "--out", str(tmp_path / "x.onnx")], ".zip"),
                         (["--run", str(tmp_path / "run"), "--out", str(tmp_path / "x.zip"), "--data", str(tmp_path / "missing.csv")], "no such file")):
        rc = main(["export", *args])
        _, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]


def test_bundle_json_is_plain_json(tmp_path):
    """No pickle anywhere: every non-graph file of a bundle parses as JSON or is Markdown."""
    run_dir, _ = train_run(tmp_path, mixed_spec(features=FeatureSpec(numeric=[NumericFeature("amount")], categorical=[CategoricalFeature("city")])))
    export_bundle(run_dir, tmp_path / "b.zip")
    with zipfile.ZipFile(tmp_path / "b.zip") as z:
        names = z.namelist()
        assert {"bundle.json", "preprocess.json", "spec.json", "metrics.json", "model_card.md", "model.onnx"} <= set(names)
        for name in names:  # each file is a graph, JSON or Markdown: nothing else can hide in a bundle
            blob = z.read(name)
            if name.endswith(".onnx"):
                onnx.load_from_string(blob)
            elif name.endswith(".json"):
                json.load(io.BytesIO(blob))
            else:
                assert name.endswith(".md") and blob.decode("utf-8").startswith("# Model card"), name


def _small_run(tmp_path: Path):
    run_dir, _ = train_run(tmp_path, mixed_spec(features=FeatureSpec(numeric=[NumericFeature("amount")], categorical=[CategoricalFeature("city")])))
    return load_run(run_dir)


def test_cpython_ast_race_during_export_is_retried_and_other_errors_are_not(tmp_path, monkeypatch, caplog):
    """CPython 3.11's AST converter keeps its recursion depth per interpreter, so a page compiled
    on another thread can make the exporter's own parsing fail spuriously (seen in the studio's
    tests).  The real exporter runs; only its first call is made to fail the way CPython does."""
    import torch

    from studio_core.export import onnx_export

    run = _small_run(tmp_path)
    real, calls = torch.onnx.export, []

    def racing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise SystemError("AST constructor recursion depth mismatch (before=42, after=18)")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", racing)
    proto = onnx_export.export_model(run.model, run.preprocessor.layout())
    assert len(calls) == 2 and "retrying" in caplog.text
    onnx.checker.check_model(proto)
    assert [i.name for i in proto.graph.input] == onnx_export.model_inputs(run.model, run.preprocessor.layout())

    def other(*args, **kwargs):
        calls.append(1)
        raise SystemError("some other interpreter error")

    monkeypatch.setattr(torch.onnx, "export", other)
    calls.clear()
    with pytest.raises(StudioError, match="could not export this model to ONNX.*some other interpreter error"):
        onnx_export.export_model(run.model, run.preprocessor.layout())
    assert len(calls) == 1


def test_two_exports_on_threads_at_once_both_succeed(tmp_path):
    """The studio exports on background threads; two users' exports may overlap."""
    import threading

    from studio_core.export import onnx_export

    run = _small_run(tmp_path)
    layout = run.preprocessor.layout()
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(onnx_export.export_model(run.model, layout))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert len(results) == 2 and all(isinstance(r, onnx.ModelProto) for r in results)
    assert results[0].graph.SerializeToString() == results[1].graph.SerializeToString()


class _SetAfter(threading.Event):
    """A stop event that turns set on its n-th reading: a cancel arriving mid-export."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.reads = n, 0

    def is_set(self) -> bool:
        self.reads += 1
        return self.reads >= self.n or super().is_set()


@pytest.mark.parametrize("at", [1, 3, 5])
def test_a_cancel_stops_the_export_at_its_next_stage_and_writes_nothing(tmp_path, at):
    run_dir, ws = train_run(tmp_path, mixed_spec())
    stop = _SetAfter(at)
    with pytest.raises(Cancelled):
        export_bundle(run_dir, tmp_path / "b.zip", ws=ws, int8=True, stop=stop)
    assert stop.reads == at and not (tmp_path / "b.zip").exists()
    # the user's workspace is left as it was: its table there, none of the export's copies
    assert ws.con.sql("SELECT count(*) FROM mixed").fetchall()[0][0] > 0
    assert ws.con.sql("SELECT table_name FROM duckdb_tables() WHERE starts_with(table_name, '__wd')").fetchall() == []


def test_a_cancelled_export_task_ends_cancelled_without_a_bundle(tmp_path):
    from studio_core.jobs.export_job import export_task
    from studio_core.runs.store import load_run

    run_dir, ws = train_run(tmp_path, mixed_spec())
    task = export_task(load_run(run_dir), ws.fork(), int8=True)
    task.cancel()
    task.join(120)
    snap = task.snapshot()
    assert snap.status == "cancelled" and snap.result is None and snap.error == ""
