"""Adult: the engine's CLI end to end versus a gradient-boosted-trees baseline, same split.

Measures
  * the wall time of the whole command ``wdstudio train --data sample_data/adult.csv --label income
    --out <tmpdir> --quiet`` run as a subprocess (interpreter start-up and imports included), and
    the test and validation metrics it writes to ``<tmpdir>/metrics.json``;
  * scikit-learn ``HistGradientBoostingClassifier(categorical_features="from_dtype")`` trained on
    exactly the same training rows and scored on the same test rows: the split is re-created with
    ``split_for`` from the run's spec and recorded split (fingerprints checked), on the same
    feature columns; text columns become pandas ``category`` with the other parts' categories
    aligned to the training ones.  Both test figures get 95 % bootstrap intervals, and the
    difference a paired interval (the same resamples score both models).

Acceptance target for the engine: wall time < 30 s and test AUC >= 0.925.

Run: ``.venv/bin/python bench/adult_vs_gbm.py``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _contention import Contention
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from studio_core.data.split import split_for
from studio_core.data.workspace import Workspace
from studio_core.runs.bootstrap import metric_samples, percentile_interval
from studio_core.spec.schema import Spec

ROOT = Path(__file__).resolve().parents[1]
DATA = "sample_data/adult.csv"
TARGET_WALL_S, TARGET_AUC = 30.0, 0.925


def run_cli(out: Path) -> tuple[float, dict, Spec]:
    cmd = [str(Path(sys.executable).parent / "wdstudio"), "train", "--data", DATA, "--label", "income", "--out", str(out), "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"wdstudio train failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    metrics = json.loads((out / "metrics.json").read_text())
    spec = Spec.from_json((out / "spec.json").read_text())
    return wall, metrics, spec


def split_frames(spec: Spec, metrics: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The run's training and test rows (with ``__wd_row``), re-created and checked."""
    ws = Workspace()
    ws.load(str(ROOT / DATA))
    sp = split_for(ws, spec, metrics)
    cols = ", ".join(f'"{c}"' for c in ["__wd_row", *spec.feature_names(), spec.data.label])
    train = sp.con.sql(f"SELECT {cols} FROM {sp.train.relation}").df()
    test = sp.con.sql(f"SELECT {cols} FROM {sp.test.relation} ORDER BY __wd_row").df()
    assert (len(train), len(test)) == (sp.n_train, sp.n_test)
    return train, test


def gbm(spec: Spec, train: pd.DataFrame, test: pd.DataFrame) -> tuple[dict, np.ndarray, float]:
    label, pos = spec.data.label, spec.data.positive_class
    feats = spec.feature_names()
    xtr, xte = train[feats].copy(), test[feats].copy()
    for c in feats:
        if not pd.api.types.is_numeric_dtype(xtr[c]):
            xtr[c] = xtr[c].astype("category")
            xte[c] = pd.Categorical(xte[c], categories=xtr[c].cat.categories)
    ytr = (train[label].astype(str) == pos).to_numpy(np.int64)
    yte = (test[label].astype(str) == pos).to_numpy(np.int64)
    t0 = time.perf_counter()
    clf = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0).fit(xtr, ytr)
    fit_s = time.perf_counter() - t0
    p = clf.predict_proba(xte)[:, 1]
    return {"auc": roc_auc_score(yte, p), "logloss": log_loss(yte, p), "accuracy": accuracy_score(yte, p >= 0.5),
            "n_train": len(xtr), "n_test": len(xte), "iters": clf.n_iter_}, p, fit_s


def main() -> None:
    contention = Contention()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        wall, m, spec = run_cli(Path(tmp) / "run")
        stored = pd.read_parquet(Path(tmp) / "run" / "test_predictions.parquet")
    train, test = split_frames(spec, m)
    g, p_gbm, gbm_s = gbm(spec, train, test)
    assert stored.row.tolist() == test.__wd_row.tolist()  # the same test rows, in the same order
    logit_gbm = np.log(np.clip(p_gbm, 1e-12, 1)) - np.log(np.clip(1 - p_gbm, 1e-12, 1))
    samples = metric_samples("binary", stored.label.to_numpy(), {"wd": stored.logit.to_numpy(), "gbm": logit_gbm}, seed=0)
    ci = {name: {k: percentile_interval(v) for k, v in s.items()} for name, s in samples.items()}
    diff = {k: percentile_interval(samples["wd"][k] - samples["gbm"][k]) for k in ("auc", "logloss", "accuracy")}
    crosses = "; ".join(" x ".join(c.columns) for c in spec.features.crosses) or "none"
    print(f"Adult ({DATA}), label income, positive class {spec.data.positive_class!r}, "
          f"split {m['split']['kind']} seed {spec.data.split_seed}, rows {m['split']['counts']}")
    print(f"features ({len(spec.feature_names())}): {', '.join(spec.feature_names())}")
    print(f"engine crosses: {crosses}; load average at start {load:.2f} ({os.cpu_count()} CPUs)")
    print()
    def iv(x: tuple[float, float] | None) -> str:
        return f"[{x[0]:.4f}, {x[1]:.4f}]" if x else "n/a"

    print(f"{'':28}{'wdstudio train (CLI)':>30}{'HistGradientBoosting':>30}{'W&D - HGB (paired 95%)':>34}")
    rows = [(f"test {k} (95% interval)", f"{m['test'][k]:.4f} {iv(ci['wd'][k])}", f"{g[k]:.4f} {iv(ci['gbm'][k])}",
             f"{m['test'][k] - g[k]:+.4f} {iv(diff[k])}") for k in ("auc", "logloss", "accuracy")]
    rows += [
        ("validation AUC (chose epoch)", f"{m['auc']:.4f}", "-", ""),
        ("train / test rows", f"{m['n_train']} / {m['n_test']}", f"{g['n_train']} / {g['n_test']}", ""),
        ("wall seconds", f"{wall:.2f} (whole command)", f"{gbm_s:.2f} (fit only)", ""),
        ("engine total_seconds", f"{m['total_seconds']:.2f}", "-", ""),
        ("engine train_seconds", f"{m['train_seconds']:.2f}", "-", ""),
        ("epochs run / best epoch", f"{m['epochs_run']} / {m['best_epoch']}", f"{g['iters']} boosting iters", ""),
    ]
    for name, a, b, c in rows:
        print(f"{name:28}{a:>30}{b:>30}{c:>34}")
    print()
    ok_wall, ok_auc = wall < TARGET_WALL_S, m["test"]["auc"] >= TARGET_AUC
    print(f"target wall < {TARGET_WALL_S:.0f} s: {'PASS' if ok_wall else 'FAIL'} ({wall:.2f} s)")
    print(f"target test AUC >= {TARGET_AUC}: {'PASS' if ok_auc else 'FAIL'} ({m['test']['auc']:.4f})")
    print(contention.report())


if __name__ == "__main__":
    main()
