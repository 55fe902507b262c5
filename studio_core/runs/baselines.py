"""Baselines on exactly a run's split: the yardsticks a leaderboard needs beside a model.

* ``constant``: predicts the training rows' mean label for every row -- the positive share as
  a probability (binary), the mean (regression).  It is a network with neither part, only its
  bias, set to that mean (log-odds, or the standardised label's mean), so it is written, read,
  scored and compared like any other run.
* ``linear``: the run's spec with the deep part switched off -- a logistic (or linear) model on
  the same wide ids, crosses included -- trained as any run.
* ``lightgbm``: gradient-boosted trees on the same rows (``lightgbm_baseline.py``).

The run's split is re-created first and refused when the data no longer gives the same rows,
so a baseline always shares the run's test rows.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from studio_core.common.errors import StudioError
from studio_core.data.split import split_for
from studio_core.data.workspace import Workspace
from studio_core.features.prepare import fit_preprocessor
from studio_core.model.network import WideDeep
from studio_core.runs.evaluation import score_rows
from studio_core.runs.store import write_run
from studio_core.runs.train import Outcome, train
from studio_core.spec.schema import Spec

KINDS = ("constant", "linear", "lightgbm")


@dataclass(frozen=True)
class Baseline:
    """A baseline written as a run directory, and its metrics."""

    run_dir: Path
    metrics: dict[str, Any]


def train_baseline(kind: str, spec: Spec, run_metrics: dict[str, Any], ws: Workspace, out_dir: str | Path) -> Baseline:
    """The ``kind`` baseline of the run trained with ``spec`` (its ``metrics.json`` given), on
    that run's split, written to ``out_dir``."""
    if kind not in KINDS:
        raise StudioError(f"--kind {kind!r} is not a baseline here; use one of {', '.join(KINDS)}")
    split = split_for(ws.fork(), spec, run_metrics)  # refused, saying what changed, when the rows differ
    if kind == "lightgbm":
        from studio_core.runs.lightgbm_baseline import train_lightgbm

        try:
            metrics = train_lightgbm(spec, split, out_dir, seed=spec.train.seed)
        finally:
            split.drop()
        return Baseline(Path(out_dir).resolve(), metrics)
    if kind == "linear":
        split.drop()
        if not spec.model.wide:
            raise StudioError("the run has no wide part, so it has no linear model on its wide ids; train a run with model.wide on")
        variant = Spec.from_dict(spec.to_dict())
        variant.model.deep = False
        done = train(variant, ws, out_dir)
        return Baseline(done.run_dir, done.metrics)
    try:
        done = _constant(spec, split, out_dir)
        return Baseline(done.run_dir, done.metrics)
    finally:
        split.drop()


def _constant(spec: Spec, split: Any, out_dir: str | Path) -> Outcome:
    started = time.perf_counter()
    prep = fit_preprocessor(spec, split)
    total, rows = 0.0, 0
    counts = np.zeros(prep.n_outputs)
    for enc in prep.transform_batches(split.train, with_label=True):
        total, rows = total + float(np.sum(enc.y, dtype=np.float64)), rows + len(enc)
        if prep.task == "multiclass":
            counts += np.bincount(enc.y.astype(np.int64), minlength=prep.n_outputs)
    if rows == 0:
        raise StudioError("the run's training part has no labelled rows; nothing to take the mean of")
    mean = total / rows
    variant = Spec.from_dict(spec.to_dict())
    variant.model.wide, variant.model.deep = False, False
    model = WideDeep(prep.layout(), variant.model, seed=spec.train.seed)
    with torch.no_grad():
        p = min(max(mean, 1e-7), 1 - 1e-7)
        if prep.task == "multiclass":  # each class's training share: the log priors
            model.bias.copy_(torch.from_numpy(np.log(np.maximum(counts / rows, 1e-7))).float())
        else:
            model.bias.fill_(math.log(p / (1 - p)) if prep.task == "binary" else mean)
    model.eval()
    val, test = score_rows(model, prep, split.val), score_rows(model, prep, split.test, key=True)
    metrics = {"task": prep.task, "kind": "constant", "monitor": "", "best_epoch": 0, "epochs_run": 0, "epochs_planned": 0,
               "stopped_early": False, "stopped_by_budget": False, "train_seconds": 0.0, "train_rows_per_s": 0.0,
               "n_train": rows, "n_val": len(val), "device": "cpu", "processes": 1, "out_of_core": False, "split": split.record,
               "constant": float(prep.decode_label(np.array([mean]))[0]) if prep.task == "regression" else
                           dict(zip(prep.classes_, (counts / rows).tolist())) if prep.task == "multiclass" else mean,
               **val.metrics(), "n_test": len(test), "test": test.metrics() if len(test) else {},
               "test_ci": test.intervals(seed=spec.train.seed) if len(test) else {}}
    run_dir = write_run(out_dir, variant, prep, model, [], metrics, test.table())
    metrics["total_seconds"] = round(time.perf_counter() - started, 3)
    return Outcome(run_dir, metrics, [], model, prep, test)
