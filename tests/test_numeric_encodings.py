"""Numeric encodings of the deep part (issue 14, item 2): piecewise-linear bins, their CDF value
(quantile), periodic embeddings -- each against a NumPy reference written from the paper's
formula; their ONNX parity; the wide buckets of a piecewise column are its bins (the effect
curve on Inspect); weight decay never reaches embeddings, biases or norms; Shapley values stay
additive with periodic columns; the suggestion picks an encoding per column with its reason."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from studio_core.data.source import Source
from studio_core.data.workspace import Workspace
from studio_core.explain.shap_values import explain_codes, feature_columns
from studio_core.explain.shapley import fast_deep
from studio_core.export.bundle import export_bundle
from studio_core.export.onnx_run import PARITY_TOL
from studio_core.features.piecewise import PiecewiseLinear
from studio_core.features.preprocess import Layout
from studio_core.features.suggest import suggest
from studio_core.model.network import PeriodicEmbedding, WideDeep
from studio_core.runs import train as pipeline
from studio_core.runs.inspect import effect_columns, effect_curve
from studio_core.runs.store import load_run
from studio_core.spec.schema import CategoricalFeature, CrossFeature, DataSpec, FeatureSpec, ModelSpec, NumericFeature, TrainSpec

sys.path.insert(0, str(Path(__file__).parent))
from test_export import mixed_spec, score_both, train_run, write_new_rows  # noqa: E402


def _source(values: np.ndarray) -> Source:
    con = duckdb.connect()
    con.register("t_arrow", pa.table({"v": pa.array(values, pa.float64(), mask=np.isnan(values))}))
    con.execute("CREATE TABLE t AS SELECT * FROM t_arrow")
    return Source(con, "t")


def _reference_ple(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Gorishniy et al. (2022), eq. 1, written per bin: 1 above the bin, 0 below it, the
    fraction inside; the first bin is not clipped below and the last not above."""
    t_bins = len(edges) - 1
    out = np.zeros((len(x), t_bins))
    for i, v in enumerate(x):
        if np.isnan(v):
            continue
        for t in range(t_bins):
            frac = (v - edges[t]) / (edges[t + 1] - edges[t])
            if t > 0:
                frac = max(frac, 0.0)
            if t < t_bins - 1:
                frac = min(frac, 1.0)
            out[i, t] = frac
    return out


def test_piecewise_encoding_matches_the_papers_formula_and_quantile_edges():
    rng = np.random.default_rng(0)
    train = rng.gamma(2.0, 3.0, 4000)
    train[::17] = np.nan
    enc = PiecewiseLinear(bins=8).fit(_source(train), "v")
    finite = train[~np.isnan(train)]
    want_edges = sorted(set(np.quantile(finite, [i / 8 for i in range(1, 8)]).tolist()) | {finite.min(), finite.max()})
    np.testing.assert_allclose(enc.edges_, want_edges, rtol=1e-12)
    assert enc.has_missing_ and enc.n_bins == 8 and enc.width() == 9
    x = np.concatenate([rng.gamma(2.0, 3.0, 500), [np.nan, -5.0, 1e4, enc.edges_[3], enc.edges_[0], enc.edges_[-1]]])
    got = enc.transform(pa.array(x, pa.float64(), mask=np.isnan(x)))
    assert got.dtype == np.float32 and got.shape == (len(x), 9)
    np.testing.assert_allclose(got[:, :8], _reference_ple(x, np.asarray(enc.edges_)).astype(np.float32), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(got[:, 8], np.isnan(x).astype(np.float32))
    assert got[-5, 0] < 0 and got[-4, -2] > 1  # outside the training range: linear extrapolation at the open ends


def test_a_spiky_column_gets_bins_across_its_tail():
    """92 % zeros: row quantiles collapse onto 0, so the distinct values' quantiles are added."""
    rng = np.random.default_rng(1)
    x = np.where(rng.random(5000) < 0.92, 0.0, rng.lognormal(8, 1, 5000))
    enc = PiecewiseLinear(bins=16).fit(_source(x), "v")
    assert sum(e > 0 for e in enc.edges_) >= 12
    continuous = PiecewiseLinear(bins=16).fit(_source(rng.normal(size=5000)), "v")
    assert continuous.n_bins == 16  # no extra bins where row quantiles do not collapse


def test_quantile_transform_is_the_training_cdf_and_robust_to_outliers():
    rng = np.random.default_rng(2)
    train = rng.lognormal(0, 2, 6000)  # heavily skewed
    enc = PiecewiseLinear(bins=32, mode="quantile").fit(_source(train), "v")
    x = np.sort(rng.lognormal(0, 2, 400))
    got = enc.transform(pa.array(x))[:, 0].astype(np.float64)
    cdf = np.searchsorted(np.sort(train), x) / len(train)
    assert np.max(np.abs(got - (2 * cdf - 1))) < 2.5 / 32  # the piecewise-linear CDF, within about a bin
    assert np.all(np.diff(got) >= 0)
    far = enc.transform(pa.array([1e12, -1e12]))[:, 0]
    assert far.tolist() == [1.0, -1.0]  # outliers clipped, not stretched


def test_periodic_embedding_matches_a_numpy_reference():
    torch.manual_seed(0)
    emb = PeriodicEmbedding(columns=3, frequencies=4, dim=5, scale=0.3)
    x = torch.randn(7, 3)
    got = emb(x).detach().numpy()
    c, w, b = (t.detach().numpy().astype(np.float64) for t in (emb.frequencies, emb.weight, emb.bias))
    xn = x.numpy().astype(np.float64)
    want = np.zeros((7, 3, 5))
    for i in range(7):
        for j in range(3):
            v = 2 * math.pi * c[j] * xn[i, j]
            want[i, j] = np.maximum(np.concatenate([np.cos(v), np.sin(v)]) @ w[j] + b[j], 0.0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for j in range(3):
        np.testing.assert_allclose(emb.one(j, x[:, j]).detach().numpy(), got[:, j], rtol=1e-6, atol=1e-7)


def _encodings_spec(task: str = "binary"):
    f = FeatureSpec(numeric=[NumericFeature("amount", "piecewise", buckets=8, wide=True), NumericFeature("age", "periodic", buckets=6, embed=True),
                             NumericFeature("score-1", "quantile", buckets=5), NumericFeature("logit", "periodic")],
                    categorical=[CategoricalFeature("city", "vocab", embedding_dim=4), CategoricalFeature("zip", "vocab", embedding_dim=3)],
                    crosses=[CrossFeature(["amount", "city"], "vocab")])
    spec = mixed_spec(task, features=f)
    spec.train = TrainSpec(epochs=2, batch_size=128, deep_optimizer="adamw", weight_decay=0.01)
    return spec


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_onnx_parity_with_piecewise_periodic_and_quantile_columns(tmp_path, task):
    spec = _encodings_spec(task)
    run_dir, ws = train_run(tmp_path, spec, regression=task == "regression")
    layout = load_run(run_dir).preprocessor.layout()
    assert len(layout.periodic_inputs) == 2 and sum(n.startswith("amount [") for n in layout.numeric_inputs) >= 7
    fig = export_bundle(run_dir, tmp_path / "b.zip", ws=ws)
    p = fig["parity"]
    assert p["ok"] and p["raw_id_mismatches"] == 0 and p["raw_num_max_abs_diff"] <= 1e-6
    assert p["model_max_abs_diff"] <= PARITY_TOL and p["raw_logit_max_abs_diff"] <= PARITY_TOL
    got, want, _, _ = score_both(tmp_path / "b.zip", run_dir, write_new_rows(tmp_path / "new.csv"))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=PARITY_TOL)


def test_piecewise_wide_buckets_are_its_bins_and_read_as_an_effect_curve(tmp_path):
    run_dir, _ = train_run(tmp_path, _encodings_spec())
    run = load_run(run_dir)
    prep = run.preprocessor
    assert prep.encoders_["bkt:amount"].boundaries_ == prep.encoders_["std:amount"].edges_[1:-1]
    assert effect_columns(run) == ["amount"]
    curve = effect_curve(run, "amount")
    known = curve[curve.bucket > 0]
    assert len(known) == prep.encoders_["std:amount"].n_bins
    assert known.start.iloc[0] == prep.encoders_["std:amount"].min_ and known.end.iloc[-1] == prep.encoders_["std:amount"].max_
    assert np.all(known.start.to_numpy()[1:] == known.end.to_numpy()[:-1])  # contiguous steps
    start = next(s for k, s, _ in prep.wide_offsets() if k == "bkt:amount")
    np.testing.assert_allclose(curve.sort_values("bucket").weight, run.model.wide.weight.detach().double().numpy()[start:start + len(curve), 0])
    with pytest.raises(Exception, match="does not feed the wide part"):
        effect_curve(run, "age")


def test_weight_decay_never_reaches_embeddings_biases_norms_or_frequencies():
    layout = Layout(("a",), 4, ("a",), (4,), (2,), ("x", "y", "y (missing)"), (1,))
    model = WideDeep(layout, ModelSpec(hidden_units=[8], batch_norm=True, periodic_frequencies=3, periodic_dim=4), seed=0)
    opts, _ = pipeline.build_optimizers(model, TrainSpec(deep_optimizer="adamw", deep_lr=0.1, weight_decay=0.5), 0.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opts[0].step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed == {"mlp.0.weight", "mlp.4.weight", "periodic.weight"}  # only weight matrices shrink


@pytest.mark.parametrize("attention", [False, True])
def test_shapley_values_are_exact_with_periodic_and_piecewise_columns(small_spec, tmp_path, attention):
    """The deep walk's first-layer shares follow the MLP's input order (plain values, then the
    periodic embeddings): checked against the brute-force enumeration of every coalition."""
    from test_shapley import _codes, exact_shapley

    ws, spec = small_spec
    kinds = ["periodic", "piecewise", "quantile", "standardize"]
    for i, f in enumerate(spec.features.numeric):
        f.transform = kinds[i % len(kinds)]
    assert {f.transform for f in spec.features.numeric} >= {"periodic", "piecewise"}
    spec.model.attention = attention
    pipeline.train(spec, ws, tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert fast_deep(run.model) is not attention and run.preprocessor.layout().periodic_inputs
    codes_r, data, codes_b = _codes(ws, run, n_rows=6, n_bg=8)
    m = len(feature_columns(run))
    e = explain_codes(run, codes_r, data, codes_b, max_evals=math.factorial(m) * (2 * m + 1))
    np.testing.assert_allclose(e.base_value + e.values.sum(axis=1), e.outputs, atol=1e-5)
    if not attention:
        np.testing.assert_allclose(e.values, exact_shapley(run, codes_r, codes_b), atol=2e-5)


def test_the_suggestion_picks_an_encoding_per_column_with_its_reason(tmp_path):
    rng = np.random.default_rng(3)
    n = 5000
    ws = Workspace()
    df = pd.DataFrame({"income": rng.lognormal(10, 1, n), "stars": rng.integers(2, 11, n) / 2, "grade": rng.choice(list("abc"), n)})
    df["y"] = (np.log(df.income) + 0.3 * df.stars + rng.normal(size=n) > 11).astype(int)
    df.to_csv(tmp_path / "t.csv", index=False)
    ws.load(tmp_path / "t.csv", name="t")
    sug = suggest(ws, DataSpec(table="t", label="y"))
    by = {f.name: f for f in sug.spec.features.numeric}
    reasons = {r.name: r.reason for r in sug.roles}
    # about 1,700 positives among 3,500 training rows: enough events for target-aware bins
    assert (by["income"].transform, by["income"].binning, by["income"].buckets) == ("piecewise", "tree", 16)
    assert "where the label changes" in reasons["income"]
    assert by["stars"].transform == "standardize" and "standardised" in reasons["stars"]  # 9 values, half-steps
    # rare positives (about 100 in training): too few events for bins, so the smooth periodic curve
    df["y"] = (np.log(df.income) + 0.3 * df.stars + rng.normal(size=n) > 14.2).astype(int)
    assert 40 < df.y.sum() < 250
    df.to_csv(tmp_path / "rare.csv", index=False)
    ws.load(tmp_path / "rare.csv", name="rare")
    sug = suggest(ws, DataSpec(table="rare", label="y"))
    income = {f.name: f for f in sug.spec.features.numeric}["income"]
    assert income.transform == "periodic" and "rows of the rarer outcome" in {r.name: r.reason for r in sug.roles}["income"]


def test_tree_edges_are_the_cuts_of_a_best_first_regression_tree():
    """Against scikit-learn's best-first tree (max_leaf_nodes) on the bucket index: the same
    cut points from the same per-bucket counts and sums."""
    from sklearn.tree import DecisionTreeRegressor

    from studio_core.features.piecewise import tree_edges

    rng = np.random.default_rng(5)
    bucket = rng.integers(0, 40, 6000)
    y = np.sin(bucket / 6.0) + (bucket > 30) + rng.normal(0, 0.3, len(bucket))
    n, s, ss = (np.bincount(bucket, w, minlength=40) for w in (None, y, y * y))
    cuts = [float(c) for c in range(1, 40)]  # bucket j (the index value j) lies below cuts[j] = j + 1
    for leaves, min_leaf in ((8, 64), (5, 900), (16, 1)):
        got = tree_edges(n, s, ss, cuts, leaves, min_leaf=min_leaf, min_gain=0.0, beat_chance=False)
        tree = DecisionTreeRegressor(max_leaf_nodes=leaves, min_samples_leaf=min_leaf).fit(bucket[:, None].astype(float), y)
        thresholds = tree.tree_.threshold[tree.tree_.feature >= 0]
        assert got == sorted(float(np.ceil(t)) for t in thresholds)  # sklearn cuts between k-1 and k at k - 0.5


def test_tree_bins_sit_where_the_label_changes_and_a_noise_column_gets_few():
    rng = np.random.default_rng(6)
    x, noise = rng.uniform(0, 10, 8000), rng.normal(size=8000)
    y = ((x > 3) ^ (x > 7)).astype(float)  # the label flips at 3 and at 7
    y = np.where(rng.random(8000) < 0.1, 1 - y, y)
    con = duckdb.connect()
    con.register("t_arrow", pa.table({"x": x, "noise": noise, "y": y}))
    con.execute("CREATE TABLE t AS SELECT * FROM t_arrow")
    src = Source(con, "t")
    enc = PiecewiseLinear(bins=8, binning="tree").fit(src, "x", "y")
    inner = np.asarray(enc.edges_[1:-1])
    assert 2 <= len(inner) <= 7 and enc.edges_[0] == x.min() and enc.edges_[-1] == x.max()
    assert np.abs(inner - 3).min() < 0.1 and np.abs(inner - 7).min() < 0.1
    assert len(PiecewiseLinear(bins=8, binning="tree").fit(src, "noise", "y").edges_) <= 3  # chance splits are not bins
    quantile = PiecewiseLinear(bins=8).fit(src, "x")
    assert quantile.n_bins == 8 and np.abs(np.asarray(quantile.edges_) - 3).min() > 0.1  # quantile edges miss the step


def test_onnx_parity_and_training_only_bins_with_tree_binning(tmp_path):
    spec = _encodings_spec()
    spec.features.numeric[0].binning = "tree"
    spec.features.numeric[3] = NumericFeature("logit", "piecewise", buckets=12, binning="tree")
    run_dir, ws = train_run(tmp_path, spec)
    prep = load_run(run_dir).preprocessor
    edges = prep.encoders_["std:logit"].edges_
    assert 2 <= len(edges) <= 13 and prep.encoders_["bkt:amount"].boundaries_ == prep.encoders_["std:amount"].edges_[1:-1]
    fig = export_bundle(run_dir, tmp_path / "b.zip", ws=ws)
    assert fig["parity"]["ok"] and fig["parity"]["raw_num_max_abs_diff"] <= 1e-6
    got, want, _, _ = score_both(tmp_path / "b.zip", run_dir, write_new_rows(tmp_path / "new.csv"))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=PARITY_TOL)
