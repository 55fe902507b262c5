"""A fitted ``Preprocessor`` as an ONNX graph, so onnxruntime scores raw column values.

Strings cannot be traced through torch, so the encoders are written here directly as ONNX
nodes and the result is joined to the model graph (``onnx.compose.merge_models``) into the
*raw graph*.  It reproduces ``Preprocessor._encode_batch`` exactly (same ids, same floats).

Input contract of the raw graph (also written to the bundle manifest):

* one input per feature column, in ``Preprocessor.input_columns()`` order, named by the column
  made into a plain identifier (``raw_input_names``; the manifest keeps the name -> column map);
* a categorical column: ``tensor(string)`` [batch] holding DuckDB's canonical text of the value,
  exactly ``text_expr(column, type)`` in SQL (so ``9``, ``9.0`` and ``'9'`` agree); a missing
  value is the sentinel ``MISSING_TEXT`` ("\\u0000"), which maps to id 0 / code 0 like NULL does;
* a numeric column: ``tensor(double)`` [batch] holding ``number_expr(column)``, NaN if missing.

``raw_select_sql`` + ``raw_feeds`` compute those inputs with DuckDB, so text columns are truly
raw.  Outputs: ``logit`` (float32 [batch]) and ``prediction`` (double [batch]): sigmoid(logit)
for a binary task, ``logit * label_std_ + label_mean_`` for regression (``decode_label``).

Encoders as ONNX (all int64 unless said otherwise):
  VocabEncoder       ai.onnx.ml LabelEncoder, keys = vocabulary, values 1..n, default 0;
  HashEncoder        1 + MurmurHash3(text) mod buckets (com.microsoft.MurmurHash3, seed 0,
                     positive=1: the unsigned x86_32 hash of the UTF-8 bytes, == ``mmh3.hash``);
  Standardizer       (x - mean) / std in double, NaN -> 0, then float32 (+ 0/1 missing column);
  PiecewiseLinear    per bin (x - left) / width in double, clipped (ends open), NaN -> 0 (+ missing);
                     quantile mode: 2 * sum / bins - 1, one column;
  QuantileBucketizer 1 + count(boundaries < x), NaN -> 0;
  CrossEncoder       codes folded as c = (c * 1000003 + code + 1) mod 2^32, then
                     1 + c mod buckets (hash) or LabelEncoder over the kept codes (vocab).
Caveat: a real text value equal to the sentinel itself is read as missing.

No torch here: the scoring path imports this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from studio_core.export.onnx_raw_inputs import MISSING_TEXT, RawInput, raw_inputs
from studio_core.features.encoders import CROSS_PRIME, HASH_SEED, CrossEncoder, HashEncoder, QuantileBucketizer, Standardizer, VocabEncoder
from studio_core.features.piecewise import PiecewiseLinear
from studio_core.features.preprocess import Preprocessor
from studio_core.spec.schema import SCALED_TRANSFORMS

ML_DOMAIN, MS_DOMAIN = "ai.onnx.ml", "com.microsoft"
ML_OPSET, MS_OPSET = 3, 1
MODEL_PREFIX = "model/"  # names inside the model graph once merged: never clash with column names
_SUPPORTED = {"cat": (VocabEncoder, HashEncoder), "std": (Standardizer, PiecewiseLinear), "bkt": (QuantileBucketizer,), "cross": (CrossEncoder,)}


def unsupported(prep: Preprocessor) -> list[str]:
    """Why the preprocessing cannot be written as ONNX (empty when it can)."""
    reasons = []
    texts = [key[4:] for key in prep.encoders_ if key.startswith("txt:")]
    if texts:
        reasons.append(f"text column(s) {', '.join(map(repr, texts))} are split into tokens by a regular expression (words of any script) "
                       "or at a delimiter, deduplicated per row and truncated, which ONNX's string operators cannot express exactly")
    for key, enc in prep.encoders_.items():
        kind = key.split(":", 1)[0]
        if kind == "txt":
            continue
        if not isinstance(enc, _SUPPORTED.get(kind, ())):
            reasons.append(f"encoder {key!r} ({type(enc).__name__}) has no ONNX form")
        elif isinstance(enc, VocabEncoder) and not all(isinstance(v, str) for v in enc.vocabulary_):
            reasons.append(f"encoder {key!r} has a vocabulary of non-text values")
        elif isinstance(enc, CrossEncoder) and enc.encoding not in ("hash", "vocab"):
            reasons.append(f"cross {key!r} has encoding {enc.encoding!r}")
    if prep.task not in ("binary", "regression", "multiclass"):
        reasons.append(f"task {prep.task!r} has no output mapping")
    return reasons


# ---- graph ---------------------------------------------------------------------------------
class _Builder:
    """Collects nodes and constants under unique ``pp/`` names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0

    def name(self, hint: str) -> str:
        self.n += 1
        return f"pp/{hint}_{self.n}"

    def const(self, value: Any, dtype: Any, hint: str = "c") -> str:
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str = "", domain: str = "", **attrs: Any) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, domain=domain, **attrs))
        return out


class _Encoders:
    """Per-column ONNX values, each built once and shared (hash of a column, NaN mask...)."""

    def __init__(self, prep: Preprocessor, b: _Builder, inputs: dict[str, RawInput]):
        self.prep, self.b, self.inputs = prep, b, inputs
        self.cache: dict[tuple[str, str], str] = {}

    def _memo(self, key: tuple[str, str], make: Any) -> str:
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    def x(self, col: str) -> str:
        return self.inputs[col].name

    def zeros(self, col: str) -> str:
        return self._memo(("zeros", col), lambda: self.b.op("ConstantOfShape", [self.b.op("Shape", [self.x(col)])], "zeros",
                                                            value=helper.make_tensor("v", TensorProto.INT64, [1], [0])))

    def missing(self, col: str) -> str:
        """bool [batch]: the value is missing (sentinel text or NaN)."""
        def make() -> str:
            if self.inputs[col].kind == "number":
                return self.b.op("IsNaN", [self.x(col)], "isnan")
            flag = self.b.op("LabelEncoder", [self.x(col)], "is_sentinel", domain=ML_DOMAIN,
                             keys_strings=[MISSING_TEXT], values_int64s=[1], default_int64=0)
            return self.b.op("Cast", [flag], "missing", to=TensorProto.BOOL)
        return self._memo(("missing", col), make)

    def text_hash(self, col: str) -> str:
        """int64 murmur3 of the text (unsigned 32-bit), 0 for missing: ``text_codes``."""
        def make() -> str:
            h = self.b.op("MurmurHash3", [self.x(col)], "murmur", domain=MS_DOMAIN, positive=1, seed=HASH_SEED)
            h64 = self.b.op("Cast", [h], "murmur64", to=TensorProto.INT64)
            return self.b.op("Where", [self.missing(col), self.b.const(0, np.int64), h64], "text_code")
        return self._memo(("hash", col), make)

    def category(self, col: str) -> str:
        """Per-field id of a categorical column (VocabEncoder or HashEncoder)."""
        def make() -> str:
            enc = self.prep.encoders_[f"cat:{col}"]
            if isinstance(enc, HashEncoder):
                ids = self.b.op("Add", [self.b.op("Mod", [self.text_hash(col), self.b.const(int(enc.buckets), np.int64)]),
                                        self.b.const(1, np.int64)], "hash_id")
                return self.b.op("Where", [self.missing(col), self.b.const(0, np.int64), ids], "cat_id")
            keys = [(v, i + 1) for i, v in enumerate(enc.vocabulary_) if v != MISSING_TEXT]
            if not keys:
                return self.zeros(col)
            return self.b.op("LabelEncoder", [self.x(col)], "vocab_id", domain=ML_DOMAIN, keys_strings=[k for k, _ in keys],
                             values_int64s=[i for _, i in keys], default_int64=0)
        return self._memo(("cat", col), make)

    def bucket(self, col: str) -> str:
        """Quantile bucket id: 1 + count(boundaries < x), NaN -> 0."""
        def make() -> str:
            bounds = np.asarray(self.prep.encoders_[f"bkt:{col}"].boundaries_, np.float64)
            one = self.b.const(1, np.int64)
            if len(bounds):
                below = self.b.op("Less", [self.b.const(bounds.reshape(1, -1), np.float64, "boundaries"),
                                           self.b.op("Unsqueeze", [self.x(col), self.b.const([1], np.int64)])])
                count = self.b.op("ReduceSum", [self.b.op("Cast", [below], to=TensorProto.INT64), self.b.const([1], np.int64)], keepdims=0)
                ids = self.b.op("Add", [count, one], "bucket")
            else:
                ids = self.b.op("Add", [self.zeros(col), one], "bucket")
            return self.b.op("Where", [self.missing(col), self.b.const(0, np.int64), ids], "bkt_id")
        return self._memo(("bkt", col), make)

    def standardized(self, col: str) -> list[str]:
        """float32 [batch, 1] columns of the scaled value (standardised, or the piecewise-linear
        encoding's bins, or its CDF value) and, if fitted with missing values, the indicator."""
        enc = self.prep.encoders_[f"std:{col}"]
        x, nan = self.x(col), self.missing(col)
        if isinstance(enc, PiecewiseLinear):
            return self._piecewise(enc, x, nan)
        scaled = self.b.op("Div", [self.b.op("Sub", [x, self.b.const(float(enc.mean_), np.float64)]), self.b.const(float(enc.std_), np.float64)])
        value = self.b.op("Where", [nan, self.b.const(0.0, np.float64), scaled], "scaled")
        cols = [self.b.op("Cast", [value], to=TensorProto.FLOAT)]
        if enc.has_missing_:
            cols.append(self.b.op("Cast", [nan], "missing_flag", to=TensorProto.FLOAT))
        axis = self.b.const([1], np.int64)
        return [self.b.op("Unsqueeze", [c, axis]) for c in cols]

    def _piecewise(self, enc: PiecewiseLinear, x: str, nan: str) -> list[str]:
        """``PiecewiseLinear.transform`` in float64: (x - left edge) / width per bin, clipped
        (the ends open in piecewise mode), zeros for missing; quantile mode: 2 * mean - 1."""
        e = np.asarray(enc.edges_, np.float64)
        lower, upper = enc.clip_bounds()
        axis = self.b.const([1], np.int64)
        x2, nan2 = self.b.op("Unsqueeze", [x, axis]), self.b.op("Unsqueeze", [nan, axis])
        v = self.b.op("Div", [self.b.op("Sub", [x2, self.b.const(e[:-1].reshape(1, -1), np.float64, "bin_left")]),
                              self.b.const((e[1:] - e[:-1]).reshape(1, -1), np.float64, "bin_width")])
        v = self.b.op("Min", [self.b.op("Max", [v, self.b.const(lower.reshape(1, -1), np.float64, "clip_low")]),
                              self.b.const(upper.reshape(1, -1), np.float64, "clip_high")])
        if enc.mode == "quantile":
            total = self.b.op("ReduceSum", [v, axis], keepdims=1)
            v = self.b.op("Sub", [self.b.op("Mul", [total, self.b.const(2.0 / enc.n_bins, np.float64)]), self.b.const(1.0, np.float64)], "cdf")
        v = self.b.op("Where", [nan2, self.b.const(0.0, np.float64), v], "piecewise")
        cols = [self.b.op("Cast", [v], to=TensorProto.FLOAT)]
        if enc.has_missing_:
            cols.append(self.b.op("Cast", [nan2], "missing_flag", to=TensorProto.FLOAT))
        return cols

    def cross(self, i: int) -> str:
        """Cross id: fold the component codes, then hash into buckets or look the code up."""
        enc, spec = self.prep.encoders_[f"cross:{i}"], self.prep.features.crosses[i]
        numeric = self.prep._numeric_cols()
        codes = [self.bucket(c) if c in numeric else self.text_hash(c) for c in spec.columns]
        one, prime, mask = self.b.const(1, np.int64), self.b.const(CROSS_PRIME, np.int64), self.b.const(1 << 32, np.int64)
        folded = self.b.op("Add", [codes[0], one], "fold")  # (0 * prime + code + 1) mod 2^32: code < 2^32
        for code in codes[1:]:
            folded = self.b.op("Mod", [self.b.op("Add", [self.b.op("Add", [self.b.op("Mul", [folded, prime]), code]), one]), mask], "fold")
        if enc.encoding == "vocab":
            if not enc.codes_:
                return self.zeros(spec.columns[0])
            return self.b.op("LabelEncoder", [folded], "cross_id", domain=ML_DOMAIN, keys_int64s=[int(c) for c in enc.codes_],
                             values_int64s=list(range(1, len(enc.codes_) + 1)), default_int64=0)
        return self.b.op("Add", [self.b.op("Mod", [folded, self.b.const(int(enc.buckets), np.int64)]), one], "cross_id")


def build_preprocess_graph(prep: Preprocessor, outputs: list[str], opset: int, ir_version: int) -> onnx.ModelProto:
    """Raw inputs -> the model inputs named in ``outputs`` (``wide``/``cat``/``num``), exactly as
    ``Preprocessor._encode_batch`` computes them (same columns, same order, same offsets)."""
    inputs = raw_inputs(prep)
    by_col = {r.column: r for r in inputs}
    b = _Builder()
    e = _Encoders(prep, b, by_col)
    f = prep.features
    axis = b.const([1], np.int64)
    produced: dict[str, str] = {}
    if "wide" in outputs:
        fields = [e.category(c.name) for c in f.categorical if c.wide] + [e.bucket(n.name) for n in f.numeric if n.wide]
        fields += [e.cross(i) for i in range(len(f.crosses))]
        offsets = [start for _, start, _ in prep.wide_offsets()]
        cols = [b.op("Unsqueeze", [b.op("Add", [ids, b.const(off, np.int64)]) if off else ids, axis]) for ids, off in zip(fields, offsets)]
        produced["wide"] = b.op("Concat", cols, "wide", axis=1)
    if "cat" in outputs:
        fields = [e.category(c.name) for c in f.categorical if c.deep]
        fields += [e.bucket(n.name) for n in f.numeric if n.transform == "bucketize" or n.embed]
        produced["cat"] = b.op("Concat", [b.op("Unsqueeze", [ids, axis]) for ids in fields], "cat", axis=1)
    if "num" in outputs:
        produced["num"] = b.op("Concat", [c for n in f.numeric if n.transform in SCALED_TRANSFORMS for c in e.standardized(n.name)], "num", axis=1)
    for k, v in produced.items():
        b.nodes.append(helper.make_node("Identity", [v], [f"pp/out_{k}"], name=f"pp/out_{k}"))
    graph_inputs = [helper.make_tensor_value_info(r.name, TensorProto.STRING if r.kind == "text" else TensorProto.DOUBLE, ["batch"]) for r in inputs]
    out_types = {"wide": TensorProto.INT64, "cat": TensorProto.INT64, "num": TensorProto.FLOAT}
    graph_outputs = [helper.make_tensor_value_info(f"pp/out_{k}", out_types[k], ["batch", None]) for k in produced]
    graph = helper.make_graph(b.nodes, "wdstudio_preprocess", graph_inputs, graph_outputs, initializer=b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(ML_DOMAIN, ML_OPSET),
                                                     helper.make_opsetid(MS_DOMAIN, MS_OPSET)], producer_name="wdstudio")
    model.ir_version = ir_version
    return model


def _opset(model: onnx.ModelProto, domain: str = "") -> int:
    return next((o.version for o in model.opset_import if o.domain in (domain, "ai.onnx" if domain == "" else domain)), 0)


def _class_outputs(g: onnx.GraphProto, logits: list[str]) -> None:
    """A multiclass graph's outputs: each class's logit, and its softmax probability in float64."""
    nodes, columns = [], []
    axes = "post/axes"
    g.initializer.append(numpy_helper.from_array(np.array([1], np.int64), axes))
    for k, name in enumerate(logits):
        nodes.append(helper.make_node("Identity", [f"{MODEL_PREFIX}{name}"], [name], name=f"post/{name}"))
        nodes.append(helper.make_node("Unsqueeze", [f"{MODEL_PREFIX}{name}", axes], [f"post/col{k}"], name=f"post/col{k}"))
        columns.append(f"post/col{k}")
    nodes.append(helper.make_node("Concat", columns, ["post/logits"], name="post/concat", axis=1))
    nodes.append(helper.make_node("Cast", ["post/logits"], ["post/logits64"], name="post/logits64", to=TensorProto.DOUBLE))
    nodes.append(helper.make_node("Softmax", ["post/logits64"], ["post/probs"], name="post/softmax", axis=1))
    probs = [f"prob_{k}" for k in range(len(logits))]
    g.initializer.append(numpy_helper.from_array(np.ones(len(logits), np.int64), "post/split"))
    nodes.append(helper.make_node("Split", ["post/probs", "post/split"], [f"post/p{k}" for k in range(len(logits))], name="post/split", axis=1))
    nodes += [helper.make_node("Squeeze", [f"post/p{k}", axes], [p], name=f"post/{p}") for k, p in enumerate(probs)]
    g.node.extend(nodes)
    del g.output[:]
    g.output.extend([helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch"]) for n in logits]
                    + [helper.make_tensor_value_info(p, TensorProto.DOUBLE, ["batch"]) for p in probs])


def merge_raw(prep: Preprocessor, model: onnx.ModelProto) -> onnx.ModelProto:
    """Preprocessing graph + model graph -> one graph from raw columns to ``logit`` and
    ``prediction`` -- multiclass: ``logit_k`` and ``prob_k`` per class k (1-D each, softmax)."""
    from onnx import compose

    model_inputs = [i.name for i in model.graph.input]
    pre = build_preprocess_graph(prep, model_inputs, _opset(model), model.ir_version)
    ms = _opset(model, MS_DOMAIN)
    if ms and ms != MS_OPSET:  # a quantised model may import com.microsoft at another version
        for o in pre.opset_import:
            if o.domain == MS_DOMAIN:
                o.version = ms
    body = onnx.ModelProto()
    body.CopyFrom(model)
    logits = [o.name for o in model.graph.output]  # "logit", or "logit_0" .. "logit_{K-1}"
    merged = compose.merge_models(pre, body, io_map=[(f"pp/out_{k}", k) for k in model_inputs], prefix2=MODEL_PREFIX,
                                  outputs=[f"{MODEL_PREFIX}{name}" for name in logits], name="wdstudio_raw")
    seen: dict[str, int] = {}
    for o in merged.opset_import:
        seen.setdefault(o.domain, o.version)
    del merged.opset_import[:]
    merged.opset_import.extend(helper.make_opsetid(d, v) for d, v in seen.items())
    g = merged.graph
    if prep.task == "multiclass":
        _class_outputs(g, logits)
        present = {i.name for i in g.input}
        g.input.extend([i for i in pre.graph.input if i.name not in present])
        onnx.checker.check_model(merged)
        return merged
    logit64 = helper.make_node("Cast", [f"{MODEL_PREFIX}logit"], ["post/logit64"], name="post/logit64", to=TensorProto.DOUBLE)
    if prep.task == "binary":
        post = [logit64, helper.make_node("Sigmoid", ["post/logit64"], ["prediction"], name="post/sigmoid")]
    else:
        g.initializer.extend([numpy_helper.from_array(np.array(prep.label_std_, np.float64), "post/std"),
                              numpy_helper.from_array(np.array(prep.label_mean_, np.float64), "post/mean")])
        post = [logit64, helper.make_node("Mul", ["post/logit64", "post/std"], ["post/scaled"], name="post/mul"),
                helper.make_node("Add", ["post/scaled", "post/mean"], ["prediction"], name="post/add")]
    g.node.extend([helper.make_node("Identity", [f"{MODEL_PREFIX}logit"], ["logit"], name="post/logit"), *post])
    del g.output[:]
    g.output.extend([helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["batch"]),
                     helper.make_tensor_value_info("prediction", TensorProto.DOUBLE, ["batch"])])
    # keep every raw input, even one no encoder reads (the contract is one input per feature column)
    present = {i.name for i in g.input}
    g.input.extend([i for i in pre.graph.input if i.name not in present])
    onnx.checker.check_model(merged)
    return merged
