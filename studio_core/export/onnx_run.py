"""Running exported graphs with onnxruntime (CPU) and comparing them with the engine.

No torch here: serving (``scoring``) and export (``bundle``) share these helpers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from studio_core.export.onnx_raw_inputs import iter_raw_feeds
from studio_core.features.preprocess import Preprocessor

# What "the ONNX graph matches" means: |onnx - torch| <= ATOL + RTOL * |torch| for every row
# (numpy.isclose's rule).  float32 rounding grows with the value: a logit near -13 differs by
# ~1e-5 between two correct summation orders (probability difference 1e-7), so an absolute bound
# alone calls correct graphs wrong on rare-positive tables.
PARITY_ATOL = 1e-5
PARITY_RTOL = 1e-4  # ~800 float32 ulps: rounding passes, a wrong weight or op (>= 1e-3 relative) does not
PARITY_TOL = PARITY_ATOL  # the absolute part, for callers that compare probabilities near 0..1
TOLERANCE_TEXT = f"|difference| <= {PARITY_ATOL:g} + {PARITY_RTOL:g} x |value| (float32 rounding grows with the value)"


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if len(a) else 0.0


def tolerance_used(got: np.ndarray, want: np.ndarray, scale: float = 1.0) -> float:
    """The largest share of the tolerance any row uses: <= 1 matches.  ``scale`` stretches the
    absolute part for values on a label's scale (a regression prediction is logit x label std)."""
    if not len(want):
        return 0.0
    want = np.asarray(want, np.float64)
    diff = np.abs(np.asarray(got, np.float64) - want)
    return float(np.max(diff / (PARITY_ATOL * scale + PARITY_RTOL * np.abs(want))))


def session(model: bytes, threads: int | None = None) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def run_model(sess: Any, inputs: dict[str, np.ndarray], batch: int = 65_536) -> np.ndarray:
    """``logit`` of a model graph on named inputs (only the ones the graph declares); a
    multiclass graph's ``logit_0 .. logit_{K-1}`` side by side, (n, K)."""
    names = [i.name for i in sess.get_inputs()]
    outputs = [o.name for o in sess.get_outputs()]
    wanted = ["logit"] if "logit" in outputs else sorted((o for o in outputs if o.startswith("logit_")), key=lambda o: int(o.split("_")[1]))
    n = len(next(iter(inputs.values())))
    outs = []
    for s in range(0, n, batch):
        got = sess.run(wanted, {k: inputs[k][s : s + batch] for k in names})
        outs.append(got[0] if len(wanted) == 1 and wanted == ["logit"] else np.stack(got, axis=1))
    if not outs:
        return np.zeros(0 if wanted == ["logit"] else (0, len(wanted)), np.float32)
    return np.concatenate(outs)


def run_raw(sess: Any, con: Any, prep: Preprocessor, relation: str, available: set[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """(logit, prediction) of a raw graph on every row of ``relation``, in order; multiclass:
    (n, K) logits and (n, K) probabilities."""
    k = prep.n_outputs if prep.task == "multiclass" else 0
    names = [f"logit_{i}" for i in range(k)] + [f"prob_{i}" for i in range(k)] if k else ["logit", "prediction"]
    logits, preds = [], []
    for feeds in iter_raw_feeds(con, prep, relation, available):
        got = sess.run(names, feeds)
        logits.append(np.stack(got[:k], axis=1) if k else got[0])
        preds.append(np.stack(got[k:], axis=1) if k else got[1])
    if not logits:
        return (np.zeros((0, k), np.float32), np.zeros((0, k), np.float64)) if k else (np.zeros(0, np.float32), np.zeros(0, np.float64))
    return np.concatenate(logits), np.concatenate(preds)
