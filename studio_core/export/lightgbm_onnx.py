"""A LightGBM baseline as one raw-row ONNX graph, so it ships and scores as a challenger the way a
Wide & Deep bundle does (``wdstudio score``, onnxruntime only).

The graph keeps the raw contract of ``onnx_raw_inputs``: one 1-D input per feature column (double
for numbers, string for categories, as the SQL side computes them), and 1-D outputs ``logit`` /
``prediction`` (``logit_k`` / ``prob_k`` per class).  Inside, each category becomes LightGBM's
category code through a ``LabelEncoder`` over the training categories stored in the model (an
unseen value becomes NaN, which LightGBM also treats as not-in-any-category), numbers are cast to
float, and the columns are concatenated into the matrix the trees read; the trees themselves are
onnxmltools' conversion of the booster.  LightGBM compares in double precision and the ONNX trees
in float32, so a value within float32 rounding of a split threshold can take the other branch:
the parity figures count such rows instead of hiding them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from studio_core.common.errors import StudioError
from studio_core.export.onnx_raw_inputs import RawInput, raw_inputs

OPSET, ML_OPSET = 15, 2  # LabelEncoder with float values needs ai.onnx.ml 2
PREFIX = "gbm/"
EPS = 1e-7


def _trees(booster: Any, n_features: int) -> onnx.ModelProto:
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    try:
        model = onnxmltools.convert_lightgbm(booster, initial_types=[("input", FloatTensorType([None, n_features]))],
                                            target_opset=OPSET, zipmap=False)
    except Exception as exc:  # noqa: BLE001 - an objective or feature onnxmltools cannot convert
        raise StudioError(f"onnxmltools cannot convert this LightGBM model ({str(exc).splitlines()[0][:160]}); "
                          "compare and predict with it instead") from None
    return onnx.compose.add_prefix(model, PREFIX)


def lightgbm_raw_graph(run: Any) -> onnx.ModelProto:
    """The raw-row graph of a ``LightGBMRun``: raw columns in, ``logit``/``prediction`` out."""
    return lightgbm_graphs(run)[0]


def lightgbm_graphs(run: Any) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """(the raw-row graph, the trees alone on the ``[batch, features]`` float matrix of numbers
    and category codes) of a ``LightGBMRun``."""
    prep, booster = run.preprocessor, run.booster
    numeric, categorical = run.columns
    both = sorted(set(numeric) & set(categorical))
    if both:
        raise StudioError(f"column(s) {', '.join(both)} are both numbers and categories in this baseline's spec; "
                          "its ONNX graph is not built for that (predict with the run instead)")
    inputs = {r.column: r for r in raw_inputs(prep)}
    cats = dict(zip(categorical, booster.pandas_categorical or []))
    nodes: list[Any] = []
    inits: list[Any] = [numpy_helper.from_array(np.array([1], np.int64), "pre/axis1")]
    columns = []
    for i, col in enumerate(numeric + categorical):
        r: RawInput = inputs[col]
        out = f"pre/f{i}"
        if col in numeric:
            nodes.append(helper.make_node("Cast", [r.name], [out], name=f"pre/cast{i}", to=TensorProto.FLOAT))
        else:
            keys = [str(v) for v in cats.get(col, [])]
            nodes.append(helper.make_node("LabelEncoder", [r.name], [out], name=f"pre/codes{i}", domain="ai.onnx.ml",
                                          keys_strings=keys or ["\u0000"], values_floats=[float(k) for k in range(len(keys))] or [float("nan")],
                                          default_float=float("nan")))
        nodes.append(helper.make_node("Unsqueeze", [out, "pre/axis1"], [f"{out}/col"], name=f"pre/unsq{i}"))
        columns.append(f"{out}/col")
    nodes.append(helper.make_node("Concat", columns, [f"{PREFIX}input"], name="pre/concat", axis=1))
    trees = _trees(booster, len(columns))
    nodes += list(trees.graph.node)
    inits += list(trees.graph.initializer)
    post, outputs = _post(prep, [o.name for o in trees.graph.output])
    nodes += post
    graph_inputs = [helper.make_tensor_value_info(r.name, TensorProto.DOUBLE if r.kind == "number" else TensorProto.STRING, ["batch"])
                    for r in raw_inputs(prep)]
    graph = helper.make_graph(nodes, "wdstudio_lightgbm_raw", graph_inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
                              producer_name="wdstudio")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, trees


def _post(prep: Any, tree_outputs: list[str]) -> tuple[list[Any], list[Any]]:
    """The trees' outputs as the raw contract's 1-D outputs."""
    mk = helper.make_node
    f, d = TensorProto.FLOAT, TensorProto.DOUBLE
    if prep.task == "regression":
        value = tree_outputs[0]
        nodes = [mk("Squeeze", [value, "pre/axis1"], ["logit"], name="post/squeeze"),
                 mk("Cast", ["logit"], ["prediction"], name="post/value", to=d)]
        return nodes, [helper.make_tensor_value_info("logit", f, ["batch"]), helper.make_tensor_value_info("prediction", d, ["batch"])]
    probs = next(o for o in tree_outputs if o.endswith("probabilities"))
    nodes = [mk("Clip", [probs, "post/eps", "post/one_minus_eps"], ["post/p"], name="post/clip")]
    if prep.task == "binary":
        nodes += [mk("Gather", ["post/p", "post/one"], ["post/p1"], name="post/p1", axis=1),
                  mk("Sub", ["post/1f", "post/p1"], ["post/q1"], name="post/q1"),
                  mk("Div", ["post/p1", "post/q1"], ["post/odds"], name="post/odds"),
                  mk("Log", ["post/odds"], ["logit"], name="post/logit"),
                  mk("Cast", ["logit"], ["post/logit64"], name="post/logit64", to=d),
                  mk("Sigmoid", ["post/logit64"], ["prediction"], name="post/prediction")]
        outs = [helper.make_tensor_value_info("logit", f, ["batch"]), helper.make_tensor_value_info("prediction", d, ["batch"])]
    else:
        k = prep.n_outputs
        nodes += [mk("Split", ["post/p", "post/ones"], [f"post/p{i}" for i in range(k)], name="post/split", axis=1)]
        outs = []
        for i in range(k):
            nodes += [mk("Squeeze", [f"post/p{i}", "pre/axis1"], [f"post/s{i}"], name=f"post/squeeze{i}"),
                      mk("Log", [f"post/s{i}"], [f"logit_{i}"], name=f"post/logit{i}"),
                      mk("Cast", [f"post/s{i}"], [f"prob_{i}"], name=f"post/prob{i}", to=d)]
        outs = [helper.make_tensor_value_info(f"logit_{i}", f, ["batch"]) for i in range(k)]
        outs += [helper.make_tensor_value_info(f"prob_{i}", d, ["batch"]) for i in range(k)]
    return [_const("post/eps", np.float32(EPS)), _const("post/one_minus_eps", np.float32(1 - EPS)), _const("post/1f", np.float32(1.0)),
            _const("post/one", np.array(1, np.int64)), _const("post/ones", np.ones(max(prep.n_outputs, 1), np.int64)), *nodes], outs


def _const(name: str, value: Any) -> Any:
    return helper.make_node("Constant", [], [name], name=f"{name}/const", value=numpy_helper.from_array(np.asarray(value), name))
