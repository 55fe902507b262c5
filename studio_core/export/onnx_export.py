"""A run's ``WideDeep`` network as one self-contained ONNX graph, with a parity check.

The graph takes the model inputs the network really uses -- ``wide`` (int64 [batch, W]),
``cat`` (int64 [batch, C]) and ``num`` (float32 [batch, N]), each only when its width is above 0
and its part is switched on, because ONNX runtimes handle zero-size inputs badly -- and gives
``logit`` (float32 [batch]): the logit (binary) or the standardised value (regression), exactly
what ``WideDeep.forward`` returns.  The batch axis is dynamic.

Export uses ``torch.onnx.export(dynamo=True)`` in eval mode under ``torch.no_grad()``.  The wide
part is written as gather + sum instead of ``nn.EmbeddingBag``: the exporter turns an
EmbeddingBag into a per-row ``Loop``, which is much slower in onnxruntime; the sums are the same
up to float rounding (the parity check measures it).

This module imports torch: only export code imports it; scoring a bundle never does.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from studio_core.common.errors import StudioError
from studio_core.features.preprocess import Encoded, Layout
from studio_core.model.network import WideDeep

MODEL_INPUTS = ("wide", "cat", "num")
MIN_OPSET = 17
PARITY_ROWS = 10_000
# CPython 3.11 keeps the AST converter's recursion depth per interpreter, not per thread
# (python/cpython#106905 and its relatives): when another thread parses Python at the same time
# (Streamlit compiling a page, pandas.eval), one of them can fail with a spurious
# "SystemError: AST constructor recursion depth mismatch".  Every export builds onnxscript's
# registry (~500 ast.parse and ~2,000 compile(AST) calls), so it is the likely victim; the
# failure is transient and the export has no side effects, so it is retried.
AST_RACE = "AST constructor recursion depth mismatch"
EXPORT_ATTEMPTS = 5
log = logging.getLogger(__name__)


def model_inputs(model: WideDeep, layout: Layout) -> list[str]:
    """Names of the inputs the exported graph takes, in ``wide, cat, num`` order."""
    names = []
    if model.use_wide and layout.wide_width:
        names.append("wide")
    if model.use_deep and layout.cat_width:
        names.append("cat")
    if model.use_deep and len(layout.numeric_inputs):
        names.append("num")
    if not names:
        raise StudioError("the model uses no inputs (both parts have no features); add features and train again before exporting")
    return names


class _Exportable(nn.Module):
    """``WideDeep.forward`` over only the inputs that exist (no zero-width graph inputs)."""

    def __init__(self, model: WideDeep, inputs: list[str], n_cat: int, n_num: int):
        super().__init__()
        self.model = model
        self.inputs = list(inputs)
        self.n_cat, self.n_num = n_cat, n_num

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        x = dict(zip(self.inputs, args))
        m = self.model
        parts = []
        if "wide" in x:  # == nn.EmbeddingBag(mode="sum"), without the per-row Loop it exports to
            summed = nn.functional.embedding(x["wide"], m.wide.weight).sum(dim=1)
            parts.append(summed.squeeze(-1) if m.outputs == 1 else summed)
        if m.use_deep:
            first = args[0]
            cat = x["cat"] if "cat" in x else first.new_zeros((first.shape[0], 0), dtype=torch.int64)
            num = x["num"] if "num" in x else first.new_zeros((first.shape[0], 0), dtype=torch.float32)
            parts.append(m.deep_logit(cat, num))
        out = parts[0]
        for p in parts[1:]:
            out = out + p
        out = out + m.bias  # forward's order, wide + deep + bias: the same float rounding
        if m.outputs > 1:  # multiclass: one 1-D output per class (tools that read ONNX outputs one by one can)
            return tuple(out[:, k] for k in range(m.outputs))
        return out


def example_inputs(layout: Layout, names: list[str], n: int = 2) -> dict[str, np.ndarray]:
    """Small valid inputs of the right dtypes and widths (ids 0 are valid everywhere)."""
    widths = {"wide": layout.wide_width, "cat": layout.cat_width, "num": len(layout.numeric_inputs)}
    return {k: (np.zeros((n, widths[k]), np.float32) if k == "num" else np.zeros((n, widths[k]), np.int64)) for k in names}


# The exporter traces through process-wide state (torch.export, logger levels, warning filters),
# and the studio exports from background threads: one export at a time, so two concurrent
# exports can neither interleave their tracing nor restore each other's settings out of order.
_EXPORT_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter logs notes (missing torchvision ops, constant folding) that are no news to
    a user; keep them off the console, while real errors still raise.  With ``verbose=False`` it
    prints nothing to stdout, so stdout (process-wide, shared with the server) is left alone."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "torch.fx")]
    with _EXPORT_LOCK:
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def export_model(model: WideDeep, layout: Layout, opset: int | None = None) -> onnx.ModelProto:
    """The network as an ONNX ``ModelProto`` with a dynamic batch axis and weights inside."""
    names = model_inputs(model, layout)
    wrapper = _Exportable(model, names, layout.cat_width, len(layout.numeric_inputs))
    was_training = model.training
    model.eval()
    args = tuple(torch.from_numpy(a) for a in example_inputs(layout, names).values())
    batch = torch.export.Dim("batch", min=1)
    outputs = [f"logit_{k}" for k in range(model.outputs)] if model.outputs > 1 else ["logit"]
    output_names = [f"__out_{o}" for o in outputs]
    try:
        for attempt in range(1, EXPORT_ATTEMPTS + 1):
            try:
                with torch.no_grad(), _quiet_exporter():
                    program = torch.onnx.export(wrapper, args, dynamo=True, input_names=[f"__in_{k}" for k in names],
                                                output_names=output_names, dynamic_shapes=(tuple({0: batch} for _ in names),),
                                                opset_version=opset, verbose=False)
                break
            except SystemError as exc:
                if AST_RACE not in str(exc) or attempt == EXPORT_ATTEMPTS:
                    raise
                log.warning("ONNX export hit CPython's AST race (%s); retrying (attempt %d of %d)", exc, attempt + 1, EXPORT_ATTEMPTS)
    except Exception as exc:  # the exporter's own error types vary by torch version
        raise StudioError(f"torch could not export this model to ONNX ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                          "please report it with the run's spec.json") from None
    finally:
        model.train(was_training)
    proto = program.model_proto
    opset_found = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset_found < MIN_OPSET:
        raise StudioError(f"the exporter wrote ONNX opset {opset_found}; opset >= {MIN_OPSET} is needed; upgrade torch")
    del proto.metadata_props[:]  # exporter bookkeeping, not model metadata
    for k in names:  # the exporter names values after ops ("cat" for torch.cat): claim the names
        _rename(proto.graph, f"__in_{k}", k)
    for o in outputs:
        _rename(proto.graph, f"__out_{o}", o)
    onnx.checker.check_model(proto)
    return proto


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename value ``old`` to ``new`` in a graph, first moving any other value called ``new``."""
    names = {n for node in graph.node for n in (*node.input, *node.output)}
    names |= {v.name for v in (*graph.input, *graph.output, *graph.value_info)} | {t.name for t in graph.initializer}
    if new in names:
        spare = next(f"{new}_{i}" for i in range(1, len(names) + 2) if f"{new}_{i}" not in names)
        _rename(graph, new, spare)
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for v in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
        if v.name == old:
            v.name = new


def model_bytes(proto: onnx.ModelProto) -> bytes:
    """One self-contained file: every weight inside, no ``.onnx.data`` beside it."""
    if proto.ByteSize() >= 2**31 - 1:
        raise StudioError("the model is over 2 GB, too large for a single ONNX file; use fewer hash buckets or a smaller vocabulary")
    return proto.SerializeToString()


def torch_logits(model: WideDeep, inputs: dict[str, np.ndarray], layout: Layout, batch: int = 65536) -> np.ndarray:
    """The run's own ``WideDeep.forward`` (eval, no grad) on model inputs given by name."""
    n = len(next(iter(inputs.values())))
    full = {k: inputs.get(k, v) for k, v in example_inputs(layout, list(MODEL_INPUTS), n).items()}
    model.eval()
    outs = []
    with torch.no_grad():
        for s in range(0, n, batch):
            outs.append(model(*(torch.from_numpy(np.ascontiguousarray(full[k][s : s + batch])) for k in MODEL_INPUTS)).numpy())
    return np.concatenate(outs) if outs else np.zeros(0, np.float32)


def synthetic_inputs(layout: Layout, n: int = PARITY_ROWS, seed: int = 0) -> dict[str, np.ndarray]:
    """Random valid model inputs, for a parity check when no data rows are at hand."""
    rng = np.random.default_rng(seed)
    wide = rng.integers(0, max(layout.wide_dim, 1), (n, layout.wide_width), dtype=np.int64)
    cards = [*layout.deep_cardinalities, *(c for c, k in zip(layout.text_cardinalities, layout.text_lengths) for _ in range(k))]
    cat = np.stack([rng.integers(0, c, n) for c in cards], 1) if cards else np.zeros((n, 0), np.int64)
    num = rng.normal(size=(n, len(layout.numeric_inputs))).astype(np.float32)
    return {"wide": wide, "cat": cat.astype(np.int64), "num": num}


def encoded_inputs(enc: Encoded, n: int = PARITY_ROWS, seed: int = 0) -> dict[str, np.ndarray]:
    """``n`` rows of ``enc`` (all of them, then a seeded resample with replacement to reach ``n``)."""
    m = len(enc)
    idx = np.arange(m) if m >= n else np.concatenate([np.arange(m), np.random.default_rng(seed).integers(0, m, n - m)])
    idx = idx[:n]
    return {"wide": enc.wide[idx], "cat": enc.cat[idx], "num": enc.num[idx]}


def model_parity(model: WideDeep, layout: Layout, proto_bytes: bytes, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """Max |onnxruntime - torch| of ``logit`` on ``inputs`` and the share of the parity
    tolerance it uses (``onnx_run.tolerance_used``: <= 1 matches)."""
    import onnxruntime as ort

    from studio_core.export.onnx_run import run_model, tolerance_used

    sess = ort.InferenceSession(proto_bytes, providers=["CPUExecutionProvider"])
    got = run_model(sess, inputs)
    want = torch_logits(model, inputs, layout)
    return {"rows": int(len(want)), "max_abs_diff": float(np.max(np.abs(got.astype(np.float64) - want))) if len(want) else 0.0,
            "tolerance_used": tolerance_used(got, want)}
