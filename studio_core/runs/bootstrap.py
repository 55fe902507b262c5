"""Bootstrap intervals for test metrics, paired across models (NumPy only, no torch).

A resample draws the test rows with replacement; it is held as a row of *counts* (how often each
row was drawn), so every metric becomes a weighted sum over the rows and one matrix product
scores a chunk of resamples at once.  The same count matrices score every model passed in: the
resamples are *paired*, so the difference between two models on a resample is read off the same
rows (what ``compare`` needs).  AUC is the weighted Mann-Whitney statistic with ties counted
half, computed from one sort of the scores and cumulative sums -- the same value scikit-learn's
``roc_auc_score`` gives on the resampled rows.

Intervals are percentile intervals (2.5 % / 97.5 % for 95 %); a resample on which a metric is
undefined (AUC with one class drawn) is left out of that metric's interval.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from studio_core.common.ranking import weighted_auc, weighted_average_precision

RESAMPLES = 1000
CHUNK_CELLS = 4_000_000  # resamples x rows held at once (about 32 MB of float64)
EPS = 1e-7


def resample_counts(n: int, resamples: int = RESAMPLES, seed: int = 0) -> Iterator[np.ndarray]:
    """Chunks of a (resamples, n) count matrix: row b counts how often each of the ``n`` rows is
    drawn in resample b (each row sums to n).  Seeded: the same seed gives the same resamples."""
    rng = np.random.default_rng(seed)
    chunk = max(1, min(resamples, CHUNK_CELLS // max(n, 1)))
    for start in range(0, resamples, chunk):
        c = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(c, n))
        flat = (idx + (np.arange(c) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=c * n).reshape(c, n).astype(np.float64)


def _binary(weights: np.ndarray, y: np.ndarray, logit: np.ndarray) -> dict[str, np.ndarray]:
    p = 1.0 / (1.0 + np.exp(-np.clip(logit, -50, 50)))
    pc = np.clip(p, EPS, 1 - EPS)
    loss = -(y * np.log(pc) + (1 - y) * np.log(1 - pc))
    correct = ((p >= 0.5) == (y >= 0.5)).astype(np.float64)
    n = weights.sum(axis=1)
    return {"auc": weighted_auc(weights, logit, y), "average_precision": weighted_average_precision(weights, logit, y),
            "logloss": weights @ loss / n, "accuracy": weights @ correct / n}


def _regression(weights: np.ndarray, y: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    err = pred - y
    n = weights.sum(axis=1)
    sse = weights @ (err * err)
    centre = y - y.mean()  # shift for a stable variance (the metrics are shift-free)
    sst = weights @ (centre * centre) - (weights @ centre) ** 2 / n
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(sst > 0, 1.0 - sse / sst, np.nan)
    return {"rmse": np.sqrt(sse / n), "mae": weights @ np.abs(err) / n, "r2": r2}


def metric_samples(task: str, y: np.ndarray, outputs: Mapping[str, np.ndarray], resamples: int = RESAMPLES,
                   seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Per model name, per metric: its value on each of ``resamples`` paired resamples.

    ``outputs`` holds each model's logits (binary) or predictions on the label's scale
    (regression), aligned with ``y``."""
    y = np.asarray(y, dtype=np.float64)
    if task == "multiclass":
        from studio_core.common.multiclass import weighted_multiclass as score
    else:
        score = _binary if task == "binary" else _regression
    parts: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in outputs}
    if len(y) == 0:
        return {name: {} for name in outputs}
    arrays = {name: np.asarray(out, dtype=np.float64) for name, out in outputs.items()}
    for weights in resample_counts(len(y), resamples, seed):
        for name, out in arrays.items():
            parts[name].append(score(weights, y, out))
    return {name: {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]} for name, chunks in parts.items()}


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """The central ``level`` percentile interval of the finite samples, or None if there are none."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return None
    lo, hi = np.percentile(finite, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def metric_intervals(task: str, y: np.ndarray, output: np.ndarray, resamples: int = RESAMPLES, seed: int = 0,
                   level: float = 0.95) -> dict[str, list[float] | None]:
    """95 % bootstrap intervals of each test metric of one model: ``{metric: [low, high]}``."""
    samples = metric_samples(task, y, {"model": output}, resamples, seed)["model"]
    return {k: (list(iv) if (iv := percentile_interval(v, level)) is not None else None) for k, v in samples.items()}
