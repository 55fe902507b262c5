"""Ship a run as a self-contained bundle zip: ONNX graphs checked against the engine, a card.

``export_bundle`` writes ``model.onnx`` (the network), ``raw.onnx`` (preprocessing + network,
scoring raw column values), optional INT8 versions of both, the run's JSON files, a manifest
``bundle.json`` and ``model_card.md``, and returns the figures it measured: parity of both graphs
against the engine (torch + Python preprocessing) on 10,000 validation-like rows, and for INT8
the size ratio and the metric and score changes on the run's validation rows.

Reading and scoring a bundle is ``scoring`` (no torch); INT8 is ``int8``; the card is
``model_card``.  Torch and the exporter are imported lazily inside ``export_bundle``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import threading
import uuid
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from studio_core.common.errors import Cancelled, StudioError
from studio_core.common.jsonsafe import json_safe
from studio_core.data.source import Source
from studio_core.data.workspace import Workspace
from studio_core.export.int8 import int8_figures
from studio_core.export.model_card import model_card
from studio_core.export.onnx_raw_inputs import MISSING_TEXT, iter_raw_feeds, raw_inputs, synthetic_raw_rows
from studio_core.export.onnx_run import PARITY_ATOL, PARITY_RTOL, TOLERANCE_TEXT, max_abs, run_model, run_raw, session, tolerance_used
from studio_core.export.scoring import FORMAT, FORMAT_VERSION
from studio_core.features.preprocess import Preprocessor

if TYPE_CHECKING:  # runs.py imports torch: only for type hints here
    from studio_core.runs.store import Run

RAW_FALLBACK_TOL = 1e-3  # beyond float rounding: the raw graph is wrong, ship without it
SPLIT_TABLE = "__wd_export"


def _validation(run: Run, ws: Workspace, table: str | None) -> Any:
    """The run's validation rows, re-created with the engine's own deterministic split."""
    from studio_core.runs.evaluation import run_split

    split = run_split(run, ws, table, SPLIT_TABLE)
    if run.preprocessor.label not in split.column_types:
        raise StudioError(f"the data has no label column {run.preprocessor.label!r}; pass the run's training data with --data")
    if split.n_val == 0:
        raise StudioError("the data gives no validation rows; pass the run's training data with --data")
    return split


def _rows_source(n_val: int, n: int) -> str:
    """What the parity rows are, in words: the first ``n`` validation rows, or all of them cycled to ``n``."""
    if n_val >= n:
        return f"{n:,} rows: the first {n:,} of the {n_val:,} validation rows"
    return f"{n:,} rows: the {n_val:,} validation rows, then again from the first ({n / n_val:.2f} passes)"


def _parity_relation(con: Any, source_relation: str, n_rows: int, n: int) -> str:
    """A temp table of ``n`` rows: the source rows in order, repeated as needed."""
    reps = max(1, math.ceil(n / max(n_rows, 1)))
    name = f"__wd_parity_{uuid.uuid4().hex[:8]}"
    con.execute(f"CREATE TEMP TABLE {name} AS SELECT s.* FROM (SELECT *, row_number() OVER () AS __wd_k FROM {source_relation}) s, "
                f"range({reps}) AS __wd_rep(i) ORDER BY __wd_rep.i, s.__wd_k LIMIT {int(n)}")
    return name


def _check(stop: threading.Event | None) -> None:
    """Between the export's stages: a cancel ends it there, and nothing is written."""
    if stop is not None and stop.is_set():
        raise Cancelled()


def export_bundle(run: Run | str | Path, out_zip: str | Path, ws: Workspace | None = None, table: str | None = None,
                  int8: bool = False, stop: threading.Event | None = None) -> dict[str, Any]:
    """Write the bundle zip of ``run`` (a ``Run`` or a run directory) and return its figures.
    A set ``stop`` ends it with ``Cancelled`` at the next stage (export, parity, raw graph, INT8).

    ``ws`` (+ ``table``, default the spec's ``data.table`` / ``data.sql``) holds the training
    data: the validation rows are re-created from it for parity and INT8 figures.  Without it,
    parity uses synthetic raw rows and the validation figures are skipped (the card says so)."""
    import duckdb

    from studio_core.export.onnx_export import (
        PARITY_ROWS,
        encoded_inputs,
        export_model,
        model_bytes,
        model_inputs,
        model_parity,
        torch_logits,
    )
    from studio_core.export.onnx_preprocess import build_preprocess_graph, merge_raw, unsupported
    from studio_core.runs.store import Run, load_run

    _check(stop)
    run = run if isinstance(run, Run) else load_run(run)
    prep, model = run.preprocessor, run.model
    layout = prep.layout()
    proto = export_model(model, layout)
    _check(stop)
    float_bytes = model_bytes(proto)
    inputs = model_inputs(model, layout)

    # rows for parity: validation rows (repeated to PARITY_ROWS) or synthetic raw rows
    val_inputs, val_y = None, None
    if ws is not None:
        split = _validation(run, ws, table)
        con, available = split.con, set(split.column_types)
        val_enc = prep.transform(split.val, with_label=True, available=available)
        val_inputs, val_y = {"wide": val_enc.wide, "cat": val_enc.cat, "num": val_enc.num}, val_enc.y
        parity_rel, rows_source = _parity_relation(con, split.val.relation, split.n_val, PARITY_ROWS), _rows_source(split.n_val, PARITY_ROWS)
    else:
        con = duckdb.connect(":memory:")
        con.register("__wd_synthetic", synthetic_raw_rows(prep, PARITY_ROWS))
        parity_rel, available, rows_source = "__wd_synthetic", None, f"{PARITY_ROWS:,} synthetic raw rows (no data given)"
    try:
        _check(stop)
        enc = prep.transform(Source(con, parity_rel), with_label=False, available=available)
        par_inputs = encoded_inputs(enc, len(enc))
        parity: dict[str, Any] = {"rows": len(enc), "rows_source": rows_source, "tolerance": TOLERANCE_TEXT,
                                  "atol": PARITY_ATOL, "rtol": PARITY_RTOL}
        checked = model_parity(model, layout, float_bytes, par_inputs)
        parity["model_max_abs_diff"], parity["model_tolerance_used"] = checked["max_abs_diff"], checked["tolerance_used"]

        _check(stop)
        raw_bytes, reason = None, None
        reasons = unsupported(prep)
        if reasons:
            reason = "; ".join(reasons)
        else:
            try:
                raw_proto = merge_raw(prep, proto)
                raw_bytes = model_bytes(raw_proto)
                want_logit = torch_logits(model, par_inputs, layout)
                got_logit, got_pred = run_raw(session(raw_bytes), con, prep, parity_rel, available)
                pre = build_preprocess_graph(prep, inputs, next(o.version for o in proto.opset_import if o.domain == ""), proto.ir_version)
                pre_sess = session(pre.SerializeToString())
                parts = [pre_sess.run(None, feeds) for feeds in iter_raw_feeds(con, prep, parity_rel, available)]
                pre_out = {k: np.concatenate([p[i] for p in parts]) for i, k in enumerate(inputs)}
                parity["raw_id_mismatches"] = int(sum(np.count_nonzero(pre_out[k] != par_inputs[k]) for k in inputs if k != "num"))
                parity["raw_num_max_abs_diff"] = max_abs(pre_out["num"], par_inputs["num"]) if "num" in inputs else 0.0
                parity["raw_logit_max_abs_diff"] = max_abs(got_logit, want_logit)
                parity["raw_prediction_max_abs_diff"] = max_abs(got_pred, prep.decode_label(want_logit))
                parity["raw_logit_tolerance_used"] = tolerance_used(got_logit, want_logit)
                # a regression prediction is the logit times label_std_: the absolute part scales with it
                parity["raw_prediction_tolerance_used"] = tolerance_used(got_pred, prep.decode_label(want_logit),
                                                                         1.0 if prep.task == "binary" else max(1.0, prep.label_std_))
                if parity["raw_id_mismatches"] or parity["raw_logit_max_abs_diff"] > RAW_FALLBACK_TOL:
                    reason = (f"the raw graph does not reproduce the engine ({parity['raw_id_mismatches']} differing ids, "
                              f"logit diff {parity['raw_logit_max_abs_diff']:.2g})")
            except StudioError:
                raise
            except Exception as exc:  # onnx/onnxruntime refusing the graph (e.g. a build without contrib ops)
                reason = f"the preprocessing graph could not be built or run ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
        if reason:
            raw_bytes = None
            parity["raw_unavailable"] = reason
        used = [parity["model_tolerance_used"]] + ([parity["raw_logit_tolerance_used"], parity["raw_prediction_tolerance_used"]]
                                                   if raw_bytes is not None else [])
        parity["tolerance_used"] = max(used)  # the worst graph and row: <= 1 is a match
        parity["ok"] = bool(parity["tolerance_used"] <= 1.0)

        graphs = {"model.onnx": float_bytes}
        if raw_bytes is not None:
            graphs["raw.onnx"] = raw_bytes
        q_figures = None
        _check(stop)
        if int8:
            import onnx

            int8_bytes, q_figures = int8_figures(prep, proto, float_bytes, par_inputs, val_inputs, val_y)
            graphs["model.int8.onnx"] = int8_bytes
            if raw_bytes is not None:
                raw8 = model_bytes(merge_raw(prep, onnx.load_from_string(int8_bytes)))
                _, pred8 = run_raw(session(raw8), con, prep, parity_rel, available)
                model8 = prep.decode_label(run_model(session(int8_bytes), par_inputs))
                q_figures["raw_int8_vs_model_int8_max_abs_diff"] = max_abs(pred8, model8)
                graphs["raw.int8.onnx"] = raw8
    finally:
        with contextlib.suppress(Exception):
            if ws is not None:  # leave the user's workspace as it was
                con.execute(f"DROP TABLE IF EXISTS {parity_rel}")
                split.drop()
            else:
                con.close()

    _check(stop)
    figures = {"bundle": str(Path(out_zip)), "score_with": "raw.onnx" if "raw.onnx" in graphs else "model.onnx",
               "graphs": sorted(graphs), "parity": parity, "int8": q_figures,
               "validation_rows": int(len(val_y)) if val_y is not None else None}
    manifest = _manifest(run, prep, proto, inputs, graphs, figures)
    card = model_card(run, prep, manifest, figures)
    write_bundle_zip(Path(out_zip), run, graphs, manifest, card)
    return figures


def _manifest(run: Run, prep: Preprocessor, proto: Any, inputs: list[str], graphs: dict[str, bytes], figures: dict[str, Any]) -> dict[str, Any]:
    from studio_core import __version__

    layout = prep.layout()
    widths = {"wide": layout.wide_width, "cat": layout.cat_width, "num": len(layout.numeric_inputs)}
    raw = "raw.onnx" in graphs
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "engine_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "task": prep.task, "label": prep.label, "positive_class": prep.positive_class if prep.task == "binary" else None,
        "classes": list(prep.classes_) if prep.task == "multiclass" else None,
        "score_with": figures["score_with"],
        "graphs": {"model": "model.onnx", "raw": "raw.onnx" if raw else None,
                   "model_int8": "model.int8.onnx" if "model.int8.onnx" in graphs else None,
                   "raw_int8": "raw.int8.onnx" if "raw.int8.onnx" in graphs else None},
        "raw_unavailable_reason": figures["parity"].get("raw_unavailable"),
        "opset": next((o.version for o in proto.opset_import if o.domain == ""), None),
        "model_graph": {
            "inputs": [{"name": k, "dtype": "float32" if k == "num" else "int64", "shape": ["batch", widths[k]]} for k in inputs],
            "outputs": ([{"name": f"logit_{k}", "dtype": "float32", "shape": ["batch"], "meaning": f"logit of class {c!r}; p = softmax over the logit_ outputs"}
                         for k, c in enumerate(prep.classes_)] if prep.task == "multiclass" else
                        [{"name": "logit", "dtype": "float32", "shape": ["batch"],
                          "meaning": "logit" if prep.task == "binary" else "standardised value: prediction = logit * label_std + label_mean"}]),
            "preprocessing": "preprocess.json, applied by studio_core.features.preprocess.Preprocessor.transform",
            "wide_fields": list(layout.wide_fields), "deep_fields": list(layout.deep_fields), "numeric_inputs": list(layout.numeric_inputs),
        },
        "raw_graph": None if not raw else {
            "inputs": [r.manifest() for r in raw_inputs(prep)],
            "name_map": {r.name: r.column for r in raw_inputs(prep)},
            "missing_text": MISSING_TEXT,
            "contract": ("one input per feature column; text: tensor(string) [batch] = the DuckDB SQL in 'sql' (canonical text), "
                         "missing = the string U+0000; number: tensor(double) [batch] = the SQL in 'sql', missing = NaN"),
            "outputs": ([{"name": f"logit_{k}", "dtype": "float32", "shape": ["batch"], "meaning": f"logit of class {c!r}"} for k, c in enumerate(prep.classes_)]
                        + [{"name": f"prob_{k}", "dtype": "float64", "shape": ["batch"], "meaning": f"probability of class {c!r} (softmax)"}
                           for k, c in enumerate(prep.classes_)] if prep.task == "multiclass" else
                        [{"name": "logit", "dtype": "float32", "shape": ["batch"]},
                         {"name": "prediction", "dtype": "float64", "shape": ["batch"],
                          "meaning": "sigmoid(logit)" if prep.task == "binary" else "logit * label_std + label_mean"}]),
        },
        "label_mean": prep.label_mean_, "label_std": prep.label_std_,
        "parity": figures["parity"], "int8": figures["int8"],
    }


def write_bundle_zip(out: Path, run: Any, graphs: dict[str, bytes], manifest: dict[str, Any], card: str) -> None:
    """Write atomically: a crash never leaves half a bundle at ``out``.  The JSON files come from
    the loaded run (what was exported), in the run directory's formats."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, blob in graphs.items():
                z.writestr(name, blob)
            z.writestr("preprocess.json", run.preprocessor.to_json())
            z.writestr("spec.json", run.spec.to_json())
            z.writestr("metrics.json", json.dumps(json_safe(run.metrics), indent=2))
            z.writestr("bundle.json", json.dumps(json_safe(manifest), indent=2, ensure_ascii=False))
            z.writestr("model_card.md", card)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
