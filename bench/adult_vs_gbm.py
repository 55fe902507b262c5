"""Adult: the engine's CLI end to end versus a gradient-boosted-trees baseline, same split.

Measures
  * the wall time of the whole command ``wdstudio train --data sample_data/adult.csv --label income
    --out <tmpdir> --quiet`` run as a subprocess (interpreter start-up and imports included), and
    the validation metrics it writes to ``<tmpdir>/metrics.json``;
  * scikit-learn ``HistGradientBoostingClassifier(categorical_features="from_dtype")`` trained on
    exactly the same train/validation rows: the split is rebuilt with ``make_split`` from the
    DataSpec the CLI run saved in ``spec.json`` (table adult, label income, default seed and
    fraction), on the same feature columns; text columns become pandas ``category`` with the
    validation categories aligned to the training ones.

Acceptance target for the engine: wall time < 30 s and validation AUC >= 0.925.

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

from studio_core.spec import Spec
from studio_core.split import make_split
from studio_core.workspace import Workspace

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


def split_frames(spec: Spec) -> tuple[pd.DataFrame, pd.DataFrame]:
    ws = Workspace()
    ws.load(str(ROOT / DATA))
    sp = make_split(ws, spec.data)
    cols = ", ".join(f'"{c}"' for c in spec.feature_names() + [spec.data.label])
    train = sp.con.sql(f"SELECT {cols} FROM {sp.train.relation}").df()
    val = sp.con.sql(f"SELECT {cols} FROM {sp.val.relation}").df()
    assert (len(train), len(val)) == (sp.n_train, sp.n_val)
    return train, val


def gbm(spec: Spec, train: pd.DataFrame, val: pd.DataFrame) -> tuple[dict, float]:
    label, pos = spec.data.label, spec.data.positive_class
    feats = spec.feature_names()
    xtr, xva = train[feats].copy(), val[feats].copy()
    for c in feats:
        if not pd.api.types.is_numeric_dtype(xtr[c]):
            xtr[c] = xtr[c].astype("category")
            xva[c] = pd.Categorical(xva[c], categories=xtr[c].cat.categories)
    ytr = (train[label].astype(str) == pos).to_numpy(np.int64)
    yva = (val[label].astype(str) == pos).to_numpy(np.int64)
    t0 = time.perf_counter()
    clf = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0).fit(xtr, ytr)
    fit_s = time.perf_counter() - t0
    p = clf.predict_proba(xva)[:, 1]
    return {"auc": roc_auc_score(yva, p), "logloss": log_loss(yva, p), "accuracy": accuracy_score(yva, p >= 0.5),
            "n_train": len(xtr), "n_val": len(xva), "iters": clf.n_iter_}, fit_s


def main() -> None:
    contention = Contention()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        wall, m, spec = run_cli(Path(tmp) / "run")
    train, val = split_frames(spec)
    g, gbm_s = gbm(spec, train, val)
    crosses = "; ".join(" x ".join(c.columns) for c in spec.features.crosses) or "none"
    print(f"Adult ({DATA}), label income, positive class {spec.data.positive_class!r}, "
          f"split seed {spec.data.split_seed}, validation fraction {spec.data.validation_fraction}")
    print(f"features ({len(spec.feature_names())}): {', '.join(spec.feature_names())}")
    print(f"engine crosses: {crosses}; load average at start {load:.2f} ({os.cpu_count()} CPUs)")
    print()
    print(f"{'':28}{'wdstudio train (CLI)':>22}{'HistGradientBoosting':>22}")
    rows = [
        ("validation AUC", f"{m['auc']:.4f}", f"{g['auc']:.4f}"),
        ("validation logloss", f"{m['logloss']:.4f}", f"{g['logloss']:.4f}"),
        ("validation accuracy", f"{m['accuracy']:.4f}", f"{g['accuracy']:.4f}"),
        ("train / val rows", f"{m['n_train']} / {m['n_val']}", f"{g['n_train']} / {g['n_val']}"),
        ("wall seconds", f"{wall:.2f} (whole command)", f"{gbm_s:.2f} (fit only)"),
        ("engine total_seconds", f"{m['total_seconds']:.2f}", "-"),
        ("engine train_seconds", f"{m['train_seconds']:.2f}", "-"),
        ("epochs run / best epoch", f"{m['epochs_run']} / {m['best_epoch']}", f"{g['iters']} boosting iters"),
    ]
    for name, a, b in rows:
        print(f"{name:28}{a:>22}{b:>22}")
    print()
    ok_wall, ok_auc = wall < TARGET_WALL_S, m["auc"] >= TARGET_AUC
    print(f"target wall < {TARGET_WALL_S:.0f} s: {'PASS' if ok_wall else 'FAIL'} ({wall:.2f} s)")
    print(f"target AUC >= {TARGET_AUC}: {'PASS' if ok_auc else 'FAIL'} ({m['auc']:.4f}); "
          f"engine - GBM AUC = {m['auc'] - g['auc']:+.4f}")
    print(contention.report())


if __name__ == "__main__":
    main()
