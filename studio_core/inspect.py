"""What a trained run learned: holdout predictions, curves, and the wide part's weights.

Everything here works from a run directory plus the workspace that holds its data, so the
studio's Inspect page and a notebook get the same numbers.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from .errors import StudioError
from .pipeline import tensors
from .preprocess import BATCH_ROWS
from .runs import RUN_FILES, Run, predict_raw
from .split import split_for
from .workspace import Workspace


@dataclass
class Holdout:
    """Predictions on the run's own validation split: ``pred`` on the label's scale."""

    y: np.ndarray
    pred: np.ndarray
    task: str


def holdout(run: Run, ws: Workspace, batch_rows: int = BATCH_ROWS) -> Holdout:
    """Re-create the run's validation split (same seed) and predict it, one record batch at a
    time: only labels and predictions are kept, so the holdout of a run trained out of core
    (millions of validation rows) costs two floats a row, not its encoded rows."""
    try:
        split = split_for(ws.fork(), run.spec, run.metrics)
    except StudioError as exc:
        raise StudioError(f"the run's data is not loaded in this session ({exc}); load table {run.spec.data.table!r} first") from None
    prep = run.preprocessor
    ys, raws = [np.zeros(0, np.float32)], [np.zeros(0, np.float32)]
    for enc in prep.transform_batches(split.val, batch_rows=batch_rows):
        if len(enc):
            ys.append(enc.y)
            raws.append(predict_raw(run.model, tensors(enc)[:3]))
    y, raw = np.concatenate(ys), np.concatenate(raws)
    y = y if prep.task == "binary" else prep.decode_label(y)
    return Holdout(np.asarray(y, dtype=np.float64), prep.decode_label(raw), prep.task)


def roc_frame(h: Holdout) -> pd.DataFrame:
    fpr, tpr, thr = skm.roc_curve(h.y, h.pred)
    return pd.DataFrame({"false_positive_rate": fpr, "true_positive_rate": tpr, "threshold": np.clip(thr, 0, 1)})


def pr_frame(h: Holdout) -> pd.DataFrame:
    precision, recall, _ = skm.precision_recall_curve(h.y, h.pred)
    return pd.DataFrame({"recall": recall, "precision": precision})


def calibration_frame(h: Holdout, bins: int = 10) -> pd.DataFrame:
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(h.pred, edges) - 1, 0, bins - 1)
    df = pd.DataFrame({"bin": idx, "pred": h.pred, "y": h.y}).groupby("bin").agg(predicted=("pred", "mean"), observed=("y", "mean"), rows=("y", "size"))
    return df.reset_index(drop=True)


def confusion(h: Holdout, threshold: float) -> dict[str, int]:
    p = h.pred >= threshold
    t = h.y >= 0.5
    return {"tp": int((p & t).sum()), "fp": int((p & ~t).sum()), "fn": int((~p & t).sum()), "tn": int((~p & ~t).sum())}


def wide_weights(run: Run) -> pd.DataFrame:
    """Every wide id with a name ("column = value", "a x b = #bucket"), its weight and its
    training count where the encoder keeps one; sorted by weight."""
    if not run.model.use_wide:
        return pd.DataFrame(columns=["feature", "value", "weight", "count"])
    weights = run.model.wide.weight.detach().numpy()[:, 0]
    prep = run.preprocessor
    rows = []
    f = prep.features
    names = {f"cat:{c.name}": c.name for c in f.categorical} | {f"bkt:{n.name}": f"{n.name} (bucket)" for n in f.numeric}
    names |= {f"cross:{i}": " x ".join(x.columns) for i, x in enumerate(f.crosses)}
    for key, start, n in prep.wide_offsets():
        enc = prep.encoders_[key]
        vocab = getattr(enc, "vocabulary_", None)
        counts = getattr(enc, "counts_", None)
        bounds = getattr(enc, "boundaries_", None)
        for i in range(n):
            if i == 0:
                label = "(unseen or missing)"
            elif vocab is not None:
                label = str(vocab[i - 1])
            elif bounds is not None:
                label = enc.label(i)
            else:
                label = f"#{i}"
            rows.append((names[key], label, float(weights[start + i]), int(counts[i - 1]) if counts is not None and i > 0 else None))
    df = pd.DataFrame(rows, columns=["feature", "value", "weight", "count"])
    return df[df.weight != 0].sort_values("weight", ascending=False, kind="stable").reset_index(drop=True)


def run_zip(run_dir: str | Path) -> bytes:
    """The run directory as a zip (spec, preprocessing state, weights, metrics, history)."""
    run_dir = Path(run_dir)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in RUN_FILES:
            zf.write(run_dir / name, f"{run_dir.name}/{name}")
    return buf.getvalue()
