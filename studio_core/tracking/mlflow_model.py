"""A run's raw-row ONNX graph as an MLflow model (``mlflow.onnx.log_model``): a Wide & Deep
run's merged graph, or a LightGBM baseline's (``export.lightgbm_onnx``), so a challenger is
registered the same way.

The raw graph's contract is what MLflow's ONNX flavour wants: one 1-D input per feature column
(double for numbers with NaN for missing; string for categories and text, numbers used as
categories written as DuckDB writes them, ``"\\u0000"`` for missing) named after the column, and
1-D outputs ``logit`` / ``prediction`` (``logit_k`` / ``prob_k`` per class).  The signature is
tensor-based and the input example a dict of arrays, because the flavour's DataFrame path hands
onnxruntime ``df[name].values``, which under pandas 3 is an Arrow string array that onnxruntime
refuses (checked with MLflow 3.17 and pandas 3.1); a dict of arrays (``{"inputs": {...}}`` when
served) works.  MLflow scores the example when it logs, which checks the model loads and runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def input_example(prep: Any, n: int = 5) -> dict[str, np.ndarray]:
    """``n`` raw rows as the graph's feeds: one 1-D array per input, named as the input."""
    import duckdb

    from studio_core.export.onnx_raw_inputs import MISSING_TEXT, iter_raw_feeds, synthetic_raw_rows

    con = duckdb.connect(":memory:")
    try:
        rows = synthetic_raw_rows(prep, 200, seed=1)
        con.register("__wd_example", rows)
        feeds = next(iter_raw_feeds(con, prep, "__wd_example", batch_rows=200))
    finally:
        con.close()
    keep = np.ones(len(next(iter(feeds.values()))), bool)
    for v in feeds.values():  # rows without missing values read best as an example
        keep &= ~np.isnan(v) if v.dtype != object else (v != MISSING_TEXT)
    rows = np.flatnonzero(keep)[:n] if keep.sum() >= n else np.arange(n)
    return {k: v[rows] for k, v in feeds.items()}


def signature(prep: Any, proto: Any) -> Any:
    """The model's signature as named 1-D tensors: what a caller feeds (``{"inputs": {name: [...]}}``
    to a served model, or a dict of arrays to the pyfunc) and what comes back."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec
    from onnx.helper import tensor_dtype_to_np_dtype

    from studio_core.export.onnx_raw_inputs import raw_inputs

    inputs = [TensorSpec(np.dtype(object) if r.kind == "text" else np.dtype(np.float64), (-1,), r.name) for r in raw_inputs(prep)]
    outputs = [TensorSpec(np.dtype(tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type)), (-1,), o.name) for o in proto.graph.output]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


def log_onnx_model(mlflow: Any, run_id: str, run_dir: str | Path) -> str | None:
    """Log the run's raw-row ONNX model into MLflow run ``run_id``; return its model card (None
    for a LightGBM baseline, whose card comes with its bundle)."""
    from studio_core.export.onnx_raw_inputs import raw_inputs
    from studio_core.runs.store import is_lightgbm_run

    card = None
    if is_lightgbm_run(run_dir):
        from studio_core.export.lightgbm_onnx import lightgbm_raw_graph
        from studio_core.runs.lightgbm_run import load_lightgbm

        gbm = load_lightgbm(run_dir)
        prep, proto = gbm.preprocessor, lightgbm_raw_graph(gbm)
    else:
        from studio_core.export.model_card import model_card
        from studio_core.export.onnx_export import export_model
        from studio_core.export.onnx_preprocess import merge_raw
        from studio_core.runs.store import load_run

        run = load_run(run_dir)
        prep = run.preprocessor
        proto = merge_raw(prep, export_model(run.model, prep.layout()))
        card = model_card(run, prep)
    mapping = {r.name: r.column for r in raw_inputs(prep)}
    with mlflow.start_run(run_id=run_id):
        mlflow.onnx.log_model(proto, name="model", input_example=input_example(prep), signature=signature(prep, proto),
                              metadata={"inputs": mapping, "task": prep.task, "label": prep.label},
                              save_as_external_data=False, onnx_execution_providers=["CPUExecutionProvider"])
    return card
