"""Multiclass figures from per-class logits: accuracy, macro-F1, log-loss and one-vs-rest macro AUC.

The point values follow scikit-learn's definitions (tests compare them); the weighted forms
score a whole chunk of bootstrap resamples at once (rows of count weights, as ``bootstrap.py``
does for the other tasks).  Macro averages run over the classes present in the rows scored: a
class with no rows there has no recall and no AUC, and is left out rather than counted as 0.
"""

from __future__ import annotations

import warnings

import numpy as np

from studio_core.common.ranking import weighted_auc

EPS = 1e-7
KEYS = ("accuracy", "macro_f1", "logloss", "macro_auc")


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def weighted_multiclass(weights: np.ndarray, y: np.ndarray, logits: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric for every row of ``weights`` (resamples x rows); ``y`` holds class indices."""
    y = np.asarray(y).astype(np.int64)
    p = softmax(logits)
    k = p.shape[1]
    n = weights.sum(axis=1)
    pred = p.argmax(axis=1)
    loss = -np.log(np.clip(p[np.arange(len(y)), y], EPS, 1.0))
    out = {"accuracy": weights @ (pred == y).astype(np.float64) / n, "logloss": weights @ loss / n}
    f1s, aucs = [], []
    for c in range(k):
        is_c, said_c = (y == c).astype(np.float64), (pred == c).astype(np.float64)
        support = weights @ is_c
        tp, said = weights @ (is_c * said_c), weights @ said_c
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(support > 0, 2 * tp / (support + said), np.nan)
        f1s.append(f1)
        aucs.append(weighted_auc(weights, p[:, c], is_c))  # one class against the rest, on its probability (as scikit-learn)
    with warnings.catch_warnings():  # a resample without a class: its F1 / AUC is NaN and left out of the mean
        warnings.simplefilter("ignore", RuntimeWarning)
        out["macro_f1"] = np.nanmean(np.stack(f1s, axis=1), axis=1)
        out["macro_auc"] = np.nanmean(np.stack(aucs, axis=1), axis=1)
    return out


def multiclass_metrics(logits: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1, log-loss and one-vs-rest macro AUC of per-class ``logits`` (n, K)."""
    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y)
    if len(y) == 0:
        return dict.fromkeys(KEYS, float("nan"))
    got = weighted_multiclass(np.ones((1, len(y))), y, logits)
    return {key: float(got[key][0]) for key in KEYS}


def confusion(y: np.ndarray, logits: np.ndarray, classes: list[str]) -> tuple[np.ndarray, list[dict[str, float | str]]]:
    """The confusion matrix (rows: true class, columns: predicted) and each class's precision,
    recall and support."""
    y = np.asarray(y).astype(np.int64)
    k = len(classes)
    pred = np.asarray(logits).argmax(axis=1) if len(y) else np.zeros(0, np.int64)
    matrix = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    per_class = []
    for c, name in enumerate(classes):
        said, support = int(matrix[:, c].sum()), int(matrix[c].sum())
        per_class.append({"class": name, "precision": matrix[c, c] / said if said else float("nan"),
                          "recall": matrix[c, c] / support if support else float("nan"), "support": support})
    return matrix, per_class
