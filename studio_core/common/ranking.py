"""Ranking metrics over rows of count weights: AUC and average precision for a whole chunk of
bootstrap resamples at once (one sort of the scores, cumulative sums).  Shared by the bootstrap
intervals of every task and by the multiclass metrics (one class against the rest)."""

from __future__ import annotations

import numpy as np


def weighted_auc(weights: np.ndarray, score: np.ndarray, y: np.ndarray) -> np.ndarray:
    """AUC of ``score`` against binary ``y`` for each row of ``weights`` (NaN where a resample
    holds one class only)."""
    order = np.argsort(score, kind="stable")
    s, pos = score[order], y[order] >= 0.5
    w = weights[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first index of each run of tied scores
    p = np.add.reduceat(w * pos, starts, axis=1)
    q = np.add.reduceat(w * ~pos, starts, axis=1)
    below = np.cumsum(q, axis=1) - q
    total_p, total_q = p.sum(axis=1), q.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (p * (below + 0.5 * q)).sum(axis=1) / (total_p * total_q)
    return np.where((total_p > 0) & (total_q > 0), auc, np.nan)


def weighted_average_precision(weights: np.ndarray, score: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Average precision (scikit-learn's step-wise sum of precision x recall gained at each
    distinct score, highest first) for each row of ``weights``; NaN without both classes."""
    order = np.argsort(-score, kind="stable")
    s, pos = score[order], y[order] >= 0.5
    w = weights[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    p = np.add.reduceat(w * pos, starts, axis=1)
    q = np.add.reduceat(w * ~pos, starts, axis=1)
    tp, fp = np.cumsum(p, axis=1), np.cumsum(q, axis=1)
    total_p, total_q = tp[:, -1], fp[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        ap = (p * precision).sum(axis=1) / total_p
    return np.where((total_p > 0) & (total_q > 0), ap, np.nan)
