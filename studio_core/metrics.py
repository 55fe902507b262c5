"""Validation metrics, computed exactly with scikit-learn (AUC on logits: no sigmoid ties)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def binary_metrics(logits: np.ndarray, y: np.ndarray) -> dict[str, float]:
    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    p = 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))
    out = {
        "logloss": float(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0.0, 1.0])),
        "accuracy": float(np.mean((p >= 0.5) == (y >= 0.5))),
        "auc": float(skm.roc_auc_score(y, logits)) if len(np.unique(y)) == 2 else float("nan"),
    }
    return out


def regression_metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² on the label's own scale (callers unscale first)."""
    pred = np.asarray(pred, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
        "mae": float(skm.mean_absolute_error(y, pred)),
        "r2": float(skm.r2_score(y, pred)) if len(y) > 1 else float("nan"),
    }


def default_monitor(task: str) -> str:
    return "auc" if task == "binary" else "rmse"
