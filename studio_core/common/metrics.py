"""Metrics, computed exactly with scikit-learn (AUC on logits: no sigmoid ties), and which
metric heads a task -- the one answer every page, command and report uses."""

from __future__ import annotations

import math

import numpy as np

METRIC_KEYS = {"binary": ("auc", "average_precision", "logloss", "accuracy"), "regression": ("rmse", "mae", "r2"),
               "multiclass": ("accuracy", "macro_f1", "logloss", "macro_auc")}
MAXIMISE = {"auc", "average_precision", "accuracy", "r2", "macro_f1", "macro_auc"}
LABELS = {"auc": "AUC", "average_precision": "average precision", "logloss": "log loss", "accuracy": "accuracy",
          "rmse": "RMSE", "mae": "MAE", "r2": "R²", "macro_f1": "macro-F1", "macro_auc": "macro AUC (one vs rest)"}


def metric_label(key: str) -> str:
    """A metric's name for people ("average precision", not "average_precision")."""
    return LABELS.get(key, key.replace("_", " "))
UNDEFINED = {"auc": "not defined (one class)", "average_precision": "not defined (one class)", "r2": "not defined (one value)"}


def binary_metrics(logits: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from sklearn import metrics as skm  # on first use: ~2 s that reading data, suggesting and drawing pages need not pay

    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    p = 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))
    out = {
        "logloss": float(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0.0, 1.0])) if len(y) else float("nan"),
        "accuracy": float(np.mean((p >= 0.5) == (y >= 0.5))) if len(y) else float("nan"),
        "auc": float(skm.roc_auc_score(y, logits)) if len(np.unique(y)) == 2 else float("nan"),
        # the area under the precision-recall curve, step-wise: with rare positives it shows what AUC hides
        "average_precision": float(skm.average_precision_score(y, logits)) if len(np.unique(y)) == 2 else float("nan"),
    }
    return out


def regression_metrics(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² on the label's own scale (callers unscale first)."""
    from sklearn import metrics as skm  # on first use: ~2 s that reading data, suggesting and drawing pages need not pay

    pred = np.asarray(pred, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if not len(y):
        return dict.fromkeys(METRIC_KEYS["regression"], float("nan"))
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
        "mae": float(skm.mean_absolute_error(y, pred)),
        "r2": float(skm.r2_score(y, pred)) if len(y) > 1 and np.ptp(y) > 0 else float("nan"),
    }


def task_metrics(task: str, y: np.ndarray, output: np.ndarray) -> dict[str, float]:
    """The task's metrics of ``output`` -- logits (binary), per-class logits (multiclass) or
    predictions on the label's scale."""
    if task == "multiclass":
        from studio_core.common.multiclass import multiclass_metrics

        return multiclass_metrics(output, y)
    return binary_metrics(output, y) if task == "binary" else regression_metrics(output, y)


def headline(task: str) -> str:
    """The metric a task is judged by first -- AUC for binary, RMSE for regression, accuracy for
    multiclass: the headline of every figure (early stopping's "auto" is ``auto_monitor``)."""
    return METRIC_KEYS[task][0]


def auto_monitor(task: str) -> str:
    """What early stopping watches when ``train.monitor`` is "auto": the headline, except log
    loss for multiclass (accuracy moves in steps and ties between epochs)."""
    return "logloss" if task == "multiclass" else headline(task)


def format_metric(name: str, value: float | None, digits: int = 4) -> str:
    """A metric for people: its value, or why it has none (AUC of one class)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return UNDEFINED.get(name, "not defined")
    return f"{value:.{digits}f}"
