"""A LightGBM baseline on exactly a run's split: the gradient-boosting yardstick of a leaderboard.

The run's split is re-created (refused when the data no longer gives the same rows) and its
preprocessing fitted again on the same training rows, for the label exactly as the run reads it
(the positive class, the classes and their order).  LightGBM sees the feature columns as they
are -- numbers as numbers, text columns as pandas categories of the training values (an unseen
value is missing) -- and stops early on the run's validation rows; free-text and multi-valued
columns are left out (said in the notes).  The test rows are scored once; the result is a run
directory (spec, metrics with test intervals, test predictions, the model in LightGBM's text
format, the label mapping as preprocess.json) that ``compare``, ``predict``, ``evaluate`` and the
Compare page read like any other run (``lightgbm_run``).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from studio_core.common.errors import StudioError
from studio_core.common.metrics import auto_monitor, task_metrics
from studio_core.data.sqlutil import number_expr, qi
from studio_core.features.prepare import fit_preprocessor
from studio_core.runs.evaluation import Scored
from studio_core.runs.lightgbm_run import LIGHTGBM_MODEL
from studio_core.runs.store import write_run_files
from studio_core.spec.schema import Spec

ROUNDS, PATIENCE = 5000, 50


def _frame(split: Any, part: Any, prep: Any, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    cols = [f"{number_expr(c)} AS {qi(c)}" for c in numeric] + [f"{prep._text(c)} AS {qi(c)}" for c in categorical]
    return split.con.sql(f"SELECT {', '.join([*cols, f'({prep.label_expr()}) AS __y', '__wd_row'])} FROM {part.relation} "
                         f"WHERE {prep.label_filter()} ORDER BY __wd_row").df()


def _threads(rows: int) -> int:
    """LightGBM's OpenMP threads spin at every barrier: with one more thread than the free cores
    (a training beside it on a server, another process) each tree takes hundreds of times longer
    (measured on 2 cores with one busy: 34k rows, 150 trees, 0.4 s with 1 thread, 97 s with 2).
    One thread below a million training rows; beyond, half the cores."""
    import os

    return 1 if rows < 1_000_000 else max(1, (os.cpu_count() or 2) // 2)


def train_lightgbm(spec: Spec, split: Any, out_dir: str | Path, seed: int = 0) -> dict[str, Any]:
    """Fit, score and write the baseline; returns its metrics."""
    try:
        import lightgbm as lgb
    except ImportError:
        raise StudioError("the LightGBM baseline needs the lightgbm package: pip install lightgbm") from None
    started = time.perf_counter()
    prep = fit_preprocessor(spec, split)
    f = spec.features
    numeric, categorical = [n.name for n in f.numeric], [c.name for c in f.categorical]
    if not numeric and not categorical:
        raise StudioError("the run has no numeric or categorical column for LightGBM (free text is not used by it); compare with the linear baseline")
    parts = {name: _frame(split, getattr(split, name), prep, numeric, categorical) for name in ("train", "val", "test")}
    for c in categorical:  # the training values as categories; anything else is missing, as W&D's id 0
        cats = pd.Categorical(parts["train"][c].dropna()).categories
        for df in parts.values():
            df[c] = pd.Categorical(df[c].where(df[c].isin(cats)), categories=cats)
    x = {k: v[numeric + categorical] for k, v in parts.items()}
    y = {k: v["__y"].to_numpy(np.float64) for k, v in parts.items()}
    if not len(y["train"]) or not len(y["val"]):
        raise StudioError("the run's training or validation part has no labelled rows; LightGBM needs both")
    params = {"n_estimators": ROUNDS, "verbose": -1, "random_state": seed, "n_jobs": _threads(len(y["train"]))}
    task = prep.task
    target = {k: v if task == "regression" else v.astype(np.int64) for k, v in y.items()}
    with warnings.catch_warnings():  # lightgbm's own deprecation notes about its sklearn arguments
        warnings.simplefilter("ignore")
        model = (lgb.LGBMRegressor(**params) if task == "regression" else lgb.LGBMClassifier(**params)).fit(
            x["train"], target["train"], eval_set=[(x["val"], target["val"])], callbacks=[lgb.early_stopping(PATIENCE, verbose=False)])

    def output(df: pd.DataFrame) -> np.ndarray:  # logits (binary, per class) or values: what W&D runs store
        if not len(df):
            return np.zeros((0, prep.n_outputs)) if task == "multiclass" else np.zeros(0)
        return np.asarray(model.predict(df, raw_score=task != "regression"), np.float64)

    val = task_metrics(task, y["val"], output(x["val"]))
    test = Scored(task, y["test"], output(x["test"]), parts["test"]["__wd_row"].to_numpy(np.int64))
    best = int(model.best_iteration_ or ROUNDS)
    notes = [f"LightGBM with its defaults, {best} trees (early stopping on the validation rows, patience {PATIENCE})"]
    if f.text:
        notes.append(f"text column(s) {', '.join(t.name for t in f.text)} left out: LightGBM reads numbers and categories")
    metrics = {"task": task, "kind": "LightGBM", "monitor": auto_monitor(task), "best_epoch": best, "epochs_run": best, "epochs_planned": ROUNDS,
               "stopped_early": best < ROUNDS, "stopped_by_budget": False, "train_rows_per_s": 0.0, "n_train": len(y["train"]),
               "n_val": len(y["val"]), "device": "cpu", "processes": 1, "out_of_core": False, "split": split.record, **val,
               "n_test": len(test), "test": test.metrics() if len(test) else {}, "test_ci": test.intervals(seed=spec.train.seed) if len(test) else {},
               "notes": notes}
    metrics["train_seconds"] = metrics["total_seconds"] = round(time.perf_counter() - started, 3)
    booster = model.booster_

    def save(path: Path) -> None:
        booster.save_model(str(path))

    write_run_files(out_dir, {"spec.json": spec.to_json(), "preprocess.json": prep.to_json(), LIGHTGBM_MODEL: save}, [], metrics, test.table())
    return metrics
