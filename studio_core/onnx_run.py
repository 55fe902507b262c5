"""Running exported graphs with onnxruntime (CPU) and comparing them with the engine.

No torch here: serving (``scoring``) and export (``bundle``) share these helpers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .onnx_preprocess import iter_raw_feeds
from .preprocess import Preprocessor

PARITY_TOL = 1e-5  # float32 absolute: what "the ONNX graph matches" means


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if len(a) else 0.0


def session(model: bytes, threads: int | None = None) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])


def run_model(sess: Any, inputs: dict[str, np.ndarray], batch: int = 65_536) -> np.ndarray:
    """``logit`` of a model graph on named inputs (only the ones the graph declares)."""
    names = [i.name for i in sess.get_inputs()]
    n = len(next(iter(inputs.values())))
    outs = [sess.run(["logit"], {k: inputs[k][s : s + batch] for k in names})[0] for s in range(0, n, batch)]
    return np.concatenate(outs) if outs else np.zeros(0, np.float32)


def run_raw(sess: Any, con: Any, prep: Preprocessor, relation: str, available: set[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """(logit, prediction) of a raw graph on every row of ``relation``, in order."""
    logits, preds = [], []
    for feeds in iter_raw_feeds(con, prep, relation, available):
        lg, pr = sess.run(["logit", "prediction"], feeds)
        logits.append(lg)
        preds.append(pr)
    if not logits:
        return np.zeros(0, np.float32), np.zeros(0, np.float64)
    return np.concatenate(logits), np.concatenate(preds)
