"""Text and multiclass tables: the default spec (no edits) beside the usual baselines on the same rows.

**Text.** For each seed the generated reviews table (``bench/reviews.py``) is split by the
engine; the default W&D spec is trained and scored once on the test rows, and scikit-learn's
TF-IDF (words and word pairs) + logistic regression is fitted on exactly the same training rows
-- with the other columns one-hot (categories, tag sets) and scaled (numbers), and its C chosen
on the validation rows -- then scored on the same test rows.  Target: test AUC within 0.01.

**Multiclass.** Adult's ``relationship`` (6 classes) and diamonds' ``cut`` (5 classes): the
default spec beside HistGradientBoosting (categorical columns as categories, its own early
stopping off: the defaults) and LightGBM (early-stopped on the same validation rows), trained
on the run's own training rows and scored on its test rows.  Target: accuracy within 0.01 of
the better of the two.

``python bench/text_multiclass.py [--rows 40000] [--seeds 3] [--only text,multiclass]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import log_loss, roc_auc_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

from studio_core.data.split import split_for  # noqa: E402
from studio_core.data.workspace import Workspace  # noqa: E402
from studio_core.features.suggest import suggest  # noqa: E402
from studio_core.runs import train as pipeline  # noqa: E402
from studio_core.spec.schema import DataSpec  # noqa: E402


def parts(ws: Workspace, spec, metrics: dict, columns: list[str]) -> dict[str, pd.DataFrame]:
    """The run's own train / validation / test rows (re-created from its recorded split)."""
    sp = split_for(ws.fork(), spec, metrics)
    cols = ", ".join(f'"{c}"' for c in ["__wd_row", *columns])
    return {k: sp.con.sql(f"SELECT {cols} FROM {getattr(sp, k).relation} ORDER BY __wd_row").df() for k in ("train", "val", "test")}


def tfidf_lr(frames: dict[str, pd.DataFrame], text: list[str], multi: dict[str, str], categorical: list[str], numeric: list[str],
             y: dict[str, np.ndarray]) -> tuple[dict[str, float], float]:
    """TF-IDF (1-2 grams, min_df 2) + one-hot + scaled numbers -> logistic regression, C picked
    on the validation rows; test AUC and log-loss of the picked C, and the C."""
    def prepared(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        for c in text + list(multi):
            df[c] = df[c].fillna("").astype(str)
        for c in categorical:
            df[c] = df[c].astype(str)
        for c in numeric:
            df[c] = pd.to_numeric(df[c], errors="coerce").fillna(0.0)
        return df

    x = {k: prepared(v) for k, v in frames.items()}
    transformers = [(f"tfidf_{c}", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True), c) for c in text]
    transformers += [(f"set_{c}", CountVectorizer(tokenizer=lambda s, d=d: [t.strip() for t in s.split(d) if t.strip()], token_pattern=None,
                                                  lowercase=False, binary=True), c) for c, d in multi.items()]
    transformers += [("onehot", OneHotEncoder(handle_unknown="ignore"), categorical)] if categorical else []
    transformers += [("scaled", StandardScaler(), numeric)] if numeric else []
    best = None
    for c in (0.25, 1.0, 4.0, 16.0):
        model = make_pipeline(ColumnTransformer(transformers), LogisticRegression(C=c, max_iter=2000)).fit(x["train"], y["train"])
        val = roc_auc_score(y["val"], model.predict_proba(x["val"])[:, 1])
        if best is None or val > best[0]:
            best = (val, c, model)
    _, c, model = best
    p = model.predict_proba(x["test"])[:, 1]
    return {"auc": roc_auc_score(y["test"], p), "logloss": log_loss(y["test"], np.clip(p, 1e-7, 1 - 1e-7))}, c


def gbdt_multiclass(frames: dict[str, pd.DataFrame], features: list[str], label: str, classes: list[str]) -> dict[str, dict[str, float]]:
    """HistGradientBoosting and LightGBM on the run's rows: test accuracy and log-loss."""
    import lightgbm as lgb
    from sklearn.ensemble import HistGradientBoostingClassifier

    index = {c: i for i, c in enumerate(classes)}
    y = {k: v[label].astype(str).map(index) for k, v in frames.items()}
    keep = {k: y[k].notna().to_numpy() for k in frames}  # rows of a class the training rows lack: left out, as the run does
    x = {k: v.loc[keep[k], features].copy() for k, v in frames.items()}
    y = {k: y[k][keep[k]].astype(int).to_numpy() for k in frames}
    for c in features:
        if not pd.api.types.is_numeric_dtype(x["train"][c]):
            cats = pd.Categorical(x["train"][c].astype(str)).categories
            for k in x:
                text = x[k][c].astype(str)
                x[k][c] = pd.Categorical(text.where(text.isin(cats)), categories=cats)
    out = {}
    h = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0).fit(x["train"], y["train"])
    models = {"HistGB": h, "LightGBM": lgb.LGBMClassifier(n_estimators=5000, verbose=-1).fit(
        x["train"], y["train"], eval_set=[(x["val"], y["val"])], callbacks=[lgb.early_stopping(50, verbose=False)])}
    for name, model in models.items():
        p = np.zeros((len(y["test"]), len(classes)))
        p[:, model.classes_] = model.predict_proba(x["test"])
        out[name] = {"accuracy": float((p.argmax(1) == y["test"]).mean()), "logloss": float(log_loss(y["test"], np.clip(p, 1e-7, 1), labels=range(len(classes))))}
    return out


def multiclass_tables(tmp: Path) -> dict[str, tuple[Workspace, DataSpec]]:
    """Adult and diamonds as the quality bench loads them, with a multiclass label each."""
    from quality import datasets

    labels = {"adult": "relationship", "diamonds": "cut"}
    return {f"{name} {labels[name]}": (ws, DataSpec(table=data.table, label=labels[name]))
            for name, (ws, data, _) in datasets(tmp, set(labels)).items()}


def multiclass_bench(seeds: int) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (ws, data) in multiclass_tables(Path(tmp)).items():
            got: dict[str, list[dict[str, float]]] = {"W&D default": [], "HistGB": [], "LightGBM": []}
            took = []
            for s in range(seeds):
                spec = suggest(ws, DataSpec(**{**data.__dict__, "split_seed": 42 + s})).spec
                spec.train.seed = 42 + s
                t0 = time.perf_counter()
                out = pipeline.train(spec, ws)
                took.append(time.perf_counter() - t0)
                m = out.metrics
                got["W&D default"].append({k: m["test"][k] for k in ("accuracy", "logloss")})
                frames = parts(ws, spec, m, [*spec.feature_names(), data.label])
                for model, figures in gbdt_multiclass(frames, spec.feature_names(), data.label, out.preprocessor.classes_).items():
                    got[model].append(figures)
                print(f"  {name} seed {s}: " + "; ".join(f"{k} acc {v[-1]['accuracy']:.4f} ll {v[-1]['logloss']:.4f}" for k, v in got.items())
                      + f" ({len(out.preprocessor.classes_)} classes, W&D {took[-1]:.1f} s)", flush=True)
            rows.append((name, got, float(np.mean(took))))
    print(f"\n{'table':20} {'metric':9} {'W&D default':>18} {'HistGB':>18} {'LightGBM':>18}   gap to the better GBDT (target >= -0.01)")
    for name, got, took in rows:
        for k in ("accuracy", "logloss"):
            cells = {mdl: np.array([v[k] for v in vals]) for mdl, vals in got.items()}
            gap = cells["W&D default"].mean() - max(cells["HistGB"].mean(), cells["LightGBM"].mean())
            verdict = f"{gap:+.4f} {'ok' if gap >= -0.01 else 'BELOW'}" if k == "accuracy" else ""
            print(f"{name:20} {k:9} " + " ".join(f"{c.mean():.4f} ± {c.std():.4f}".rjust(18) for c in cells.values()) + f"   {verdict}")
        print(f"{name:20} W&D training + scoring {took:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=40_000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--only", default="text,multiclass")
    a = ap.parse_args()
    torch.set_num_threads(2)
    only = {x.strip() for x in a.only.split(",")}
    if "text" in only:
        text_bench(a.rows, a.seeds)
    if "multiclass" in only:
        multiclass_bench(a.seeds)


def text_bench(n_rows: int, seeds: int) -> None:
    from reviews import frame

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reviews.csv"
        frame(n_rows).drop(columns=["rating_band"]).to_csv(path, index=False)
        ws = Workspace()
        ws.load(str(path))
        for s in range(seeds):
            spec = suggest(ws, DataSpec(table="reviews", label="recommended", split_seed=42 + s)).spec
            spec.train.seed = 42 + s
            f = spec.features
            t0 = time.perf_counter()
            m = pipeline.train(spec, ws).metrics
            took = time.perf_counter() - t0
            text = [t.name for t in f.text if t.kind == "text"]
            multi = {t.name: t.delimiter for t in f.text if t.kind == "multi"}
            cats, nums = [c.name for c in f.categorical], [n.name for n in f.numeric]
            frames = parts(ws, spec, m, [*spec.feature_names(), "recommended"])
            y = {k: (v["recommended"].astype(str).str.lower() == spec.data.positive_class.lower()).to_numpy(int) for k, v in frames.items()}
            lr, c = tfidf_lr(frames, text, multi, cats, nums, y)
            rows.append((m["test"]["auc"], m["test"]["logloss"], lr["auc"], lr["logloss"], took))
            print(f"seed {s}: W&D default test AUC {m['test']['auc']:.4f} (log-loss {m['test']['logloss']:.4f}, {took:.1f} s, "
                  f"best epoch {m['best_epoch']}); TF-IDF + LR (C={c}) {lr['auc']:.4f} (log-loss {lr['logloss']:.4f}); "
                  f"text features: {[(t.name, t.kind, t.max_length) for t in f.text]}", flush=True)
    r = np.array(rows)
    gap = r[:, 0].mean() - r[:, 2].mean()
    print(f"\nreviews ({n_rows:,} rows, {seeds} seeds)   W&D default          TF-IDF + LR        gap (target >= -0.01)")
    print(f"test AUC                     {r[:, 0].mean():.4f} ± {r[:, 0].std():.4f}   {r[:, 2].mean():.4f} ± {r[:, 2].std():.4f}   {gap:+.4f} "
          f"{'ok' if gap >= -0.01 else 'BELOW'}")
    print(f"test log-loss                {r[:, 1].mean():.4f} ± {r[:, 1].std():.4f}   {r[:, 3].mean():.4f} ± {r[:, 3].std():.4f}")
    print(f"W&D training + scoring       {r[:, 4].mean():.1f} s")


if __name__ == "__main__":
    main()
