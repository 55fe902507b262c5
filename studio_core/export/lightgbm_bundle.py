"""A LightGBM baseline exported as a bundle that ``wdstudio score`` (and the Predict page's bundle
upload) reads like a Wide & Deep one: ``raw.onnx`` (raw columns in, the raw contract's outputs),
``model.onnx`` (the trees alone, on the float matrix of numbers and category codes), the run's
JSON files, a manifest and a model card -- with parity figures measured on the run's validation
rows (or synthetic raw rows with missing and unseen values when no data is given)."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from studio_core.common.metrics import METRIC_KEYS, format_metric, metric_label
from studio_core.data.source import Source
from studio_core.export.bundle import write_bundle_zip
from studio_core.export.lightgbm_onnx import lightgbm_graphs
from studio_core.export.onnx_raw_inputs import MISSING_TEXT, raw_inputs, synthetic_raw_rows
from studio_core.export.onnx_run import PARITY_ATOL, PARITY_RTOL, TOLERANCE_TEXT, max_abs, run_raw, session, tolerance_used
from studio_core.export.scoring import FORMAT, FORMAT_VERSION

PARITY_ROWS = 10_000  # as the Wide & Deep export (export.onnx_export.PARITY_ROWS, which imports torch)


def export_lightgbm_bundle(run: Any, out_zip: str | Path, ws: Any = None, table: str | None = None) -> dict[str, Any]:
    """Write the bundle of a ``LightGBMRun`` and return its figures (``parity`` says whether the
    raw graph reproduces the booster within the export's tolerance)."""
    from studio_core.runs.evaluation import run_split

    prep = run.preprocessor
    raw, trees = lightgbm_graphs(run)
    raw_bytes = raw.SerializeToString()
    split = None
    if ws is not None:
        split = run_split(run, ws.fork(), table)
        con, relation, available, source = split.con, split.val.relation, set(split.column_types), f"the run's {split.n_val:,} validation rows"
    else:
        con = duckdb.connect(":memory:")
        con.register("__wd_synthetic", synthetic_raw_rows(prep, PARITY_ROWS))
        relation, available, source = "__wd_synthetic", None, f"{PARITY_ROWS:,} synthetic raw rows (no data given)"
    try:
        want = run.output(run.frame(Source(con, relation), available))
        want = want if prep.task == "regression" else prep.decode_label(want)
        _, got = run_raw(session(raw_bytes), con, prep, relation, available)
    finally:
        if split is not None:
            split.drop()
        else:
            con.close()
    scale = 1.0 if prep.task != "regression" else max(1.0, float(np.std(want)) if len(want) else 1.0)
    diff = np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64)).reshape(len(want), -1)
    parity = {"rows": int(len(want)), "rows_source": source, "tolerance": TOLERANCE_TEXT, "atol": PARITY_ATOL, "rtol": PARITY_RTOL,
              "raw_prediction_max_abs_diff": max_abs(got, want), "rows_over_1e-5": int(np.sum(diff.max(axis=1) > 1e-5)) if len(diff) else 0,
              "tolerance_used": tolerance_used(got, want, scale)}
    parity["ok"] = bool(parity["tolerance_used"] <= 1.0)
    graphs = {"model.onnx": trees.SerializeToString(), "raw.onnx": raw_bytes}
    figures = {"bundle": str(Path(out_zip)), "score_with": "raw.onnx", "graphs": sorted(graphs), "parity": parity, "int8": None,
               "validation_rows": parity["rows"] if split is not None else None}
    manifest = _manifest(run, figures)
    write_bundle_zip(Path(out_zip), run, graphs, manifest, _card(run, manifest))
    return figures


def _outputs(prep: Any) -> list[dict[str, Any]]:
    if prep.task == "multiclass":
        return ([{"name": f"logit_{k}", "dtype": "float32", "shape": ["batch"], "meaning": f"log probability of class {c!r}"}
                 for k, c in enumerate(prep.classes_)]
                + [{"name": f"prob_{k}", "dtype": "float64", "shape": ["batch"], "meaning": f"probability of class {c!r}"}
                   for k, c in enumerate(prep.classes_)])
    return [{"name": "logit", "dtype": "float32", "shape": ["batch"], "meaning": "log odds" if prep.task == "binary" else "the value"},
            {"name": "prediction", "dtype": "float64", "shape": ["batch"],
             "meaning": "probability of the positive class" if prep.task == "binary" else "the value"}]


def _manifest(run: Any, figures: dict[str, Any]) -> dict[str, Any]:
    from studio_core import __version__

    prep = run.preprocessor
    numeric, categorical = run.columns
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "engine_version": __version__, "kind": "LightGBM",
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "task": prep.task, "label": prep.label, "positive_class": prep.positive_class if prep.task == "binary" else None,
        "classes": list(prep.classes_) if prep.task == "multiclass" else None,
        "score_with": "raw.onnx", "graphs": {"model": "model.onnx", "raw": "raw.onnx", "model_int8": None, "raw_int8": None},
        "raw_unavailable_reason": None,
        "model_graph": {"inputs": [{"name": "gbm/input", "dtype": "float32", "shape": ["batch", len(numeric) + len(categorical)]}],
                        "features": numeric + categorical,
                        "meaning": "numbers as they are, then each category column as its LightGBM category code (NaN: missing or unseen)"},
        "raw_graph": {"inputs": [r.manifest() for r in raw_inputs(prep)], "name_map": {r.name: r.column for r in raw_inputs(prep)},
                      "missing_text": MISSING_TEXT,
                      "contract": ("one input per feature column; text: tensor(string) [batch] = the DuckDB SQL in 'sql', missing = the "
                                   "string U+0000; number: tensor(double) [batch], missing = NaN. Text columns are inputs LightGBM does not read"),
                      "outputs": _outputs(prep)},
        "parity": figures["parity"], "int8": None,
    }


def _card(run: Any, manifest: dict[str, Any]) -> str:
    prep, m, p = run.preprocessor, run.metrics, manifest["parity"]
    test, ci = m.get("test") or {}, m.get("test_ci") or {}
    lines = [f"# Model card: LightGBM baseline for `{prep.label}`", "",
             f"Exported {manifest['created']} by Wide & Deep Studio {manifest['engine_version']} from run `{Path(run.path).name}`: "
             "LightGBM with its defaults on exactly a Wide & Deep run's training rows, early-stopped on its validation rows. "
             "A yardstick and a challenger: compare it with the run on the same test rows before shipping either.", "",
             "## Test rows (scored once, after training)"]
    for k in METRIC_KEYS[prep.task]:
        if k in test:
            band = ci.get(k)
            lines.append(f"- {metric_label(k)}: {format_metric(k, test[k])}" + (f" (95 % interval {band[0]:.4f}–{band[1]:.4f})" if band else ""))
    lines += ["", "## Export parity",
              f"- raw.onnx against LightGBM on {p['rows_source']}: largest difference {p['raw_prediction_max_abs_diff']:.3g}, "
              f"{p['rows_over_1e-5']:,} of {p['rows']:,} rows differ by more than 1e-5 ({'within' if p['ok'] else 'OUTSIDE'} the tolerance: {p['tolerance']})",
              "- The ONNX trees compare in float32, LightGBM in double: a value within float32 rounding of a threshold can take the other branch.",
              "", "## Use", "- `wdstudio score --bundle THIS.zip --data F --out preds.csv` (onnxruntime only), or feed raw.onnx one 1-D array per "
              "input named in bundle.json's raw_graph.", f"- Free-text columns are not read by LightGBM; {len(run.columns[1])} category and "
              f"{len(run.columns[0])} number columns are."]
    return "\n".join(lines) + "\n"
