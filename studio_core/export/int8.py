"""INT8 dynamic quantisation of an exported model graph, chosen by measurement.

onnxruntime's ``quantize_dynamic`` stores weights as int8 and quantises activations per call.
Which op types to quantise is not obvious (see INT8_CANDIDATES), so every export measures the
candidates on real rows and keeps the smallest within a score-change budget, then reports size
ratio, metric change, largest score change and how much a row's score depends on its batch.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from studio_core.common.errors import StudioError
from studio_core.export.onnx_run import max_abs, run_model, session
from studio_core.features.preprocess import Preprocessor

INT8_BUDGET = 0.01  # largest acceptable score change: probability (binary) or label std units (regression)
BATCH_CHECK_ROWS = 200  # validation rows scored one by one to measure INT8's batch dependence
# Measured on Adult (suggested spec, 2 epochs): quantising every MatMul (the MLP, after Gemm ->
# MatMul) gives 0.40x the bytes but moves single probabilities by up to 0.14, because the first
# layer's input (standardised numerics next to embeddings) has a wide range and one activation
# scale; keeping that one layer in float gives 0.69x at <= 0.007 and no AUC change; Gather
# (embeddings) alone saves little.  So each export measures these candidates on the validation
# rows and ships the smallest whose largest score change stays within INT8_BUDGET.
INT8_CANDIDATES = (
    ("MatMul+Gather", ("MatMul", "Gather"), False),
    ("MatMul", ("MatMul",), False),
    ("MatMul+Gather, first MLP layer kept float", ("MatMul", "Gather"), True),
    ("MatMul, first MLP layer kept float", ("MatMul",), True),
    ("Gather", ("Gather",), False),
)
FIRST_MLP_WEIGHT = "model.mlp.0.weight"


def gemm_to_matmul(model: Any) -> Any:
    """Rewrite ``Gemm(x, W, b)`` with constant W as ``MatMul(x, W') + b``: onnxruntime's dynamic
    quantiser handles MatMul but not Gemm, which is how the exporter writes ``nn.Linear``."""
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inits = {t.name: t for t in g.initializer}
    nodes = []
    for node in g.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0 and not attrs.get("transA", 0)
        if node.op_type != "Gemm" or node.input[1] not in inits or not plain:
            nodes.append(node)
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        w = w.T if attrs.get("transB", 0) else w
        g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w), node.input[1] + "/matmul"))
        has_bias = len(node.input) > 2 and node.input[2]
        mm_out = node.output[0] + "/matmul" if has_bias else node.output[0]
        nodes.append(helper.make_node("MatMul", [node.input[0], node.input[1] + "/matmul"], [mm_out], name=node.name + "/matmul"))
        if has_bias:
            nodes.append(helper.make_node("Add", [mm_out, node.input[2]], [node.output[0]], name=node.name + "/bias"))
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in g.node for i in n.input}
    kept = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    return out


def quantize_int8(model: Any, op_types: tuple[str, ...], keep_first_layer: bool) -> bytes:
    """Dynamic INT8 quantisation (weights QInt8) of the given op types; one self-contained file."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    prepared = gemm_to_matmul(model)
    exclude = [n.name for n in prepared.graph.node if n.op_type == "MatMul" and FIRST_MLP_WEIGHT + "/matmul" in n.input] if keep_first_layer else []
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save_model(prepared, src, save_as_external_data=False)
        logging.disable(logging.WARNING)  # the quantiser logs advice (pre-processing) at WARNING
        try:
            quantize_dynamic(src, dst, op_types_to_quantize=list(op_types), weight_type=QuantType.QInt8,
                             nodes_to_exclude=exclude, use_external_data_format=False)
        finally:
            logging.disable(logging.NOTSET)
        return dst.read_bytes()


def score_change(prep: Preprocessor, a: np.ndarray, b: np.ndarray) -> float:
    return max_abs(prep.decode_label(a), prep.decode_label(b))


def int8_figures(prep: Preprocessor, proto: Any, float_bytes: bytes, measure: dict[str, np.ndarray],
                  val: dict[str, np.ndarray] | None, y: np.ndarray | None) -> tuple[bytes, dict[str, Any]]:
    """Try every candidate on ``measure`` rows, keep the best, report it on the validation rows."""
    float_sess = session(float_bytes)
    base = run_model(float_sess, measure)
    budget = INT8_BUDGET if prep.task != "regression" else INT8_BUDGET * prep.label_std_
    has_first = any(t.name == FIRST_MLP_WEIGHT for t in proto.graph.initializer)
    tried = []
    failures = []
    for label, ops, keep_first in INT8_CANDIDATES:
        if keep_first and not has_first:
            continue
        try:
            blob = quantize_int8(proto, ops, keep_first)
        except Exception as exc:  # the quantiser's own errors; another candidate may still work
            failures.append(f"{label}: {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}")
            continue
        change = score_change(prep, run_model(session(blob), measure), base)
        tried.append({"label": label, "op_types": list(ops), "first_mlp_layer_float": keep_first, "bytes": len(blob),
                      "size_ratio": round(len(blob) / len(float_bytes), 4), "max_score_change": change, "_blob": blob})
    if not tried:
        raise StudioError(f"onnxruntime could not quantise this model ({'; '.join(failures)}); export without --int8")
    within = [t for t in tried if t["max_score_change"] <= budget]
    best = min(within, key=lambda t: t["bytes"]) if within else min(tried, key=lambda t: t["max_score_change"])
    blob = best["_blob"]
    figures: dict[str, Any] = {
        "weight_type": "QInt8", "chosen": best["label"], "op_types": best["op_types"], "first_mlp_layer_float": best["first_mlp_layer_float"],
        "float_bytes": len(float_bytes), "int8_bytes": len(blob), "size_ratio": round(len(blob) / len(float_bytes), 4),
        "budget_max_score_change": budget, "within_budget": bool(within),
        "candidates": [{k: v for k, v in t.items() if k != "_blob"} for t in tried],
    }
    if val is not None and y is not None and len(y):
        from studio_core.common.metrics import binary_metrics, regression_metrics

        q_sess = session(blob)
        f_logit, q_logit = run_model(float_sess, val), run_model(q_sess, val)
        figures["validation_rows"] = int(len(y))
        figures["max_score_change"] = score_change(prep, q_logit, f_logit)
        # activations are quantised per call: a row's INT8 score depends a little on its batch
        n = min(BATCH_CHECK_ROWS, len(y))
        alone = np.concatenate([run_model(q_sess, {k: v[i : i + 1] for k, v in val.items()}) for i in range(n)])
        figures["batch_dependence_max_change"] = score_change(prep, alone, q_logit[:n])
        if prep.task == "binary":
            auc_f, auc_q = binary_metrics(f_logit, y)["auc"], binary_metrics(q_logit, y)["auc"]
            figures.update(auc_float=auc_f, auc_int8=auc_q, auc_change=auc_q - auc_f)
        elif prep.task == "multiclass":
            from studio_core.common.multiclass import multiclass_metrics

            acc_f, acc_q = multiclass_metrics(f_logit, y)["accuracy"], multiclass_metrics(q_logit, y)["accuracy"]
            figures.update(accuracy_float=acc_f, accuracy_int8=acc_q, accuracy_change=acc_q - acc_f)
        else:
            truth = prep.decode_label(y)
            rmse_f = regression_metrics(prep.decode_label(f_logit), truth)["rmse"]
            rmse_q = regression_metrics(prep.decode_label(q_logit), truth)["rmse"]
            figures.update(rmse_float=rmse_f, rmse_int8=rmse_q, rmse_change=rmse_q - rmse_f)
    else:
        figures["validation_rows"] = None
        figures["max_score_change_synthetic"] = score_change(prep, run_model(session(blob), measure), base)
        figures["note"] = "no training data given: validation metric changes not measured"
    return blob, figures
