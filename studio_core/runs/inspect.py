"""What a trained run learned: held-out predictions, curves, and the wide part's weights.

The test rows' predictions are read from the run directory (scored once, at training); the
validation rows are re-scored from the workspace that holds the run's data (its split re-created
and checked).  The studio's Inspect page and a notebook get the same numbers.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from studio_core.common.errors import SplitMismatch, StudioError, data_not_loaded
from studio_core.data.split import split_for
from studio_core.data.workspace import Workspace
from studio_core.features.preprocess import BATCH_ROWS
from studio_core.runs.evaluation import Scored, score_rows
from studio_core.runs.store import RUN_FILES, TEST_PREDICTIONS, Run


def holdout(run: Run, ws: Workspace, part: str = "validation", batch_rows: int = BATCH_ROWS) -> Scored:
    """The run's held-out rows scored: ``test`` as stored at training (no data needed), or
    ``validation`` re-created from ``ws`` (same split, fingerprint checked) and predicted one
    record batch at a time, so millions of rows cost two floats each, not their encoded rows."""
    if part == "test":
        stored = run.test_scores()
        if stored is None:
            raise StudioError("this run has no stored test predictions (trained without a test part); look at the validation rows")
        return stored
    fork = ws.fork()
    try:
        split = split_for(fork, run.spec, run.metrics)
    except SplitMismatch:
        raise
    except StudioError as exc:
        plain = data_not_loaded(run.spec.data.table, run.spec.data.sql, ws.tables(),
                                "to re-score its validation rows; the test figures need no data")
        if plain is None:
            raise
        raise plain from exc
    try:
        return score_rows(run.model, run.preprocessor, split.val, key=True, batch_rows=batch_rows)
    finally:
        split.drop()


def class_confusion(run: Run, h: Scored) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A multiclass holdout's confusion matrix in long form (true, predicted, rows, share of
    the true class) and each class's precision, recall and rows."""
    from studio_core.common.multiclass import confusion as class_matrix

    classes = run.preprocessor.classes_
    matrix, per_class = class_matrix(h.y, h.output, classes)
    support = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, support, out=np.zeros(matrix.shape), where=support > 0)
    long = pd.DataFrame([{"true": classes[i], "predicted": classes[j], "rows": int(matrix[i, j]), "share": float(share[i, j])}
                         for i in range(len(classes)) for j in range(len(classes))])
    return long, pd.DataFrame(per_class)


def two_classes(h: Scored) -> bool:
    """Whether a binary holdout holds both classes (ROC, PR and AUC need them)."""
    return h.task == "binary" and 0 < float(np.sum(h.y >= 0.5)) < len(h.y)


def roc_frame(h: Scored) -> pd.DataFrame:
    fpr, tpr, thr = skm.roc_curve(h.y, h.prediction)
    return pd.DataFrame({"false_positive_rate": fpr, "true_positive_rate": tpr, "threshold": np.clip(thr, 0, 1)})


def pr_frame(h: Scored) -> pd.DataFrame:
    precision, recall, _ = skm.precision_recall_curve(h.y, h.prediction)
    return pd.DataFrame({"recall": recall, "precision": precision})


def calibration_frame(h: Scored, bins: int = 10) -> pd.DataFrame:
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(h.prediction, edges) - 1, 0, bins - 1)
    df = pd.DataFrame({"bin": idx, "pred": h.prediction, "y": h.y}).groupby("bin").agg(predicted=("pred", "mean"), observed=("y", "mean"), rows=("y", "size"))
    return df.reset_index(drop=True)


def base_rate(h: Scored) -> float:
    """The share of positive rows."""
    return float(np.mean(h.y >= 0.5)) if len(h.y) else float("nan")


def threshold_for_share(h: Scored, share: float) -> float:
    """The score threshold that flags (about) the top ``share`` of the rows: with rare
    positives the useful thresholds sit far below 0.5, where a probability slider is crowded."""
    if not len(h.prediction):
        return 0.5
    return float(np.quantile(h.prediction, 1.0 - min(max(share, 0.0), 1.0), method="higher"))


def at_threshold(h: Scored, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of flagging the rows scored at or above ``threshold`` (NaN
    where undefined: precision when nothing is flagged, recall without positives)."""
    cm = confusion(h, threshold)
    tp, fp, fn = cm["tp"], cm["fp"], cm["fn"]
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1, "flagged": tp + fp, "flagged_share": (tp + fp) / max(len(h.y), 1)}


def confusion(h: Scored, threshold: float) -> dict[str, int]:
    p = h.prediction >= threshold
    t = h.y >= 0.5
    return {"tp": int((p & t).sum()), "fp": int((p & ~t).sum()), "fn": int((~p & t).sum()), "tn": int((~p & ~t).sum())}


def wide_weights(run: Run, k: int = 0) -> pd.DataFrame:
    """Every wide id with a name ("column = value", "a x b = #bucket"), its weight (multiclass:
    towards class ``k``) and its training count where the encoder keeps one; sorted by weight."""
    if not run.model.use_wide:
        return pd.DataFrame(columns=["feature", "value", "weight", "count"])
    weights = run.model.wide.weight.detach().numpy()[:, k]
    prep = run.preprocessor
    rows = []
    f = prep.features
    names = {f"cat:{c.name}": c.name for c in f.categorical} | {f"bkt:{n.name}": f"{n.name} (bucket)" for n in f.numeric}
    names |= {f"cross:{i}": " x ".join(x.columns) for i, x in enumerate(f.crosses)} | {f"txt:{t.name}": t.name for t in f.text}
    for key, start, n in prep.wide_offsets():
        enc = prep.encoders_[key]
        vocab = getattr(enc, "vocabulary_", None)
        counts = getattr(enc, "counts_", None)
        bounds = getattr(enc, "boundaries_", None)
        combos = getattr(enc, "labels_", None) or {}  # a cross's combinations (runs before they were kept: none)
        shared = getattr(enc, "encoding", "") == "hash"
        for i in range(n):
            if i == 0:
                label = "(unseen or missing)"
            elif vocab is not None:
                label = str(vocab[i - 1])
            elif bounds is not None:
                label = enc.label(i)
            elif str(i) in combos:
                label = combos[str(i)] + (" (+ others in its hash bucket)" if shared else "")
            else:
                label = f"#{i}"
            rows.append((names[key], label, float(weights[start + i]), int(counts[i - 1]) if counts is not None and i > 0 else None))
    df = pd.DataFrame(rows, columns=["feature", "value", "weight", "count"])
    return df[df.weight != 0].sort_values("weight", ascending=False, kind="stable").reset_index(drop=True)


def effect_columns(run: Run) -> list[str]:
    """Numeric columns whose quantile buckets feed the wide part (each has an effect curve)."""
    return [n.name for n in run.preprocessor.features.numeric if n.wide] if run.model.use_wide else []


def effect_curve(run: Run, column: str, k: int = 0) -> pd.DataFrame:
    """A numeric column's wide effect: one row per bucket with its interval (``start``,
    ``end``; the open ends at the training minimum and maximum) and the wide weight its values
    add to the logit -- a step-shaped curve.  A piecewise column's buckets are its bins.  The
    missing-value weight is the row with ``bucket`` 0 (no interval)."""
    prep = run.preprocessor
    if column not in effect_columns(run):
        raise StudioError(f"{column!r} does not feed the wide part of this run; effect curves exist for {', '.join(effect_columns(run)) or 'no column'}")
    key = f"bkt:{column}"
    start = next(s for k, s, _ in prep.wide_offsets() if k == key)
    enc = prep.encoders_[key]
    weights = run.model.wide.weight.detach().double().numpy()[start:start + enc.n_ids_, k]  # multiclass: towards class k
    b = [float(x) for x in enc.boundaries_]
    scaled = prep.encoders_.get(f"std:{column}")
    lo = getattr(scaled, "min_", None)
    hi = getattr(scaled, "max_", None)
    lo = float(lo) if lo is not None else (b[0] if b else 0.0)
    hi = float(hi) if hi is not None else (b[-1] if b else 1.0)
    edges = [min(lo, b[0]) if b else lo] + b + [max(hi, b[-1]) if b else hi]
    rows = [{"bucket": i, "interval": enc.label(i), "start": edges[i - 1], "end": edges[i], "weight": float(weights[i])}
            for i in range(1, enc.n_ids_)]
    rows.append({"bucket": 0, "interval": "(missing)", "start": float("nan"), "end": float("nan"), "weight": float(weights[0])})
    return pd.DataFrame(rows)


def run_zip(run_dir: str | Path) -> bytes:
    """The run directory as a zip (spec, preprocessing state, weights, metrics, history)."""
    run_dir = Path(run_dir)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in (*RUN_FILES, TEST_PREDICTIONS):
            if (run_dir / name).is_file():
                zf.write(run_dir / name, f"{run_dir.name}/{name}")
    return buf.getvalue()
