"""The SHAP values are the model's Shapley values: checked against a brute-force enumeration of
every coalition of a trained model's columns, for the exact wide part, the deep part's fast
walk, and the attention model's sampled path."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest

from studio_core.data.split import make_split
from studio_core.explain.shap_values import RowFunction, encode_background, encode_rows, explain_codes, feature_columns, sample_relation
from studio_core.explain.shapley import default_permutations, fast_deep
from studio_core.features.preprocess import ColumnCodes
from studio_core.runs import train as pipeline
from studio_core.runs.store import load_run
from studio_core.spec.schema import CrossFeature


def exact_shapley(run, codes_r: ColumnCodes, codes_b: ColumnCodes) -> np.ndarray:
    """v(S) = mean over background rows of the model with S's columns from the row, the rest
    from the background row; Shapley values by the subset formula."""
    columns = feature_columns(run)
    m, n, nb = len(columns), codes_r.n, codes_b.n
    f = RowFunction(run, ColumnCodes.concat([codes_r, codes_b]), columns)
    value = {}
    for size in range(m + 1):
        for subset in combinations(range(m), size):
            index = np.empty((n, nb, m), dtype=np.int64)
            index[:] = n + np.arange(nb)[None, :, None]
            for j in subset:
                index[:, :, j] = np.arange(n)[:, None]
            value[subset] = f(index.reshape(-1, m)).reshape(n, nb).mean(axis=1)
    phi = np.zeros((n, m))
    for j in range(m):
        others = [k for k in range(m) if k != j]
        for size in range(m):
            w = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
            for subset in combinations(others, size):
                phi[:, j] += w * (value[tuple(sorted(subset + (j,)))] - value[subset])
    return phi


def _codes(ws, run, n_rows=12, n_bg=15):
    split = make_split(ws.fork(), run.spec.data)
    codes_r, data = encode_rows(run, sample_relation(split.val, n_rows, 0))
    return codes_r, data, encode_background(run, sample_relation(split.train, n_bg, 1))


@pytest.mark.parametrize("attention", [False, True])
def test_values_are_the_models_shapley_values(small_spec, tmp_path, attention):
    ws, spec = small_spec
    spec.features.crosses = [CrossFeature(columns=["colour", "size", "x1"], encoding="vocab")]  # a 3-column wide term
    spec.model.attention = attention
    pipeline.train(spec, ws, tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert fast_deep(run.model) is not attention
    codes_r, data, codes_b = _codes(ws, run)
    want = exact_shapley(run, codes_r, codes_b)
    m = len(feature_columns(run))
    e = explain_codes(run, codes_r, data, codes_b, max_evals=math.factorial(m) * (2 * m + 1))
    np.testing.assert_allclose(e.base_value + e.values.sum(axis=1), e.outputs, atol=1e-5)
    if attention:  # shap's sampled permutations: close, not exact
        assert np.abs(e.values - want).max() < 0.05 * np.abs(want).max()
    else:  # every order walked: the exact values
        np.testing.assert_allclose(e.values, want, atol=2e-5)


def test_sampled_values_are_close_and_the_same_whatever_the_chunking(small_spec, tmp_path):
    ws, spec = small_spec
    pipeline.train(spec, ws, tmp_path / "run")
    run = load_run(tmp_path / "run")
    codes_r, data, codes_b = _codes(ws, run)
    want = exact_shapley(run, codes_r, codes_b)
    a = explain_codes(run, codes_r, data, codes_b, max_evals=3 * 9, chunk=5)  # 3 walks of 4 columns: sampled
    b = explain_codes(run, codes_r, data, codes_b, max_evals=3 * 9, chunk=12)
    np.testing.assert_allclose(a.values, b.values, atol=1e-7)  # the same walks; only float rounding of batched products differs
    assert np.abs(a.values - want).max() < 0.25 * np.abs(want).max()
    assert np.corrcoef(a.values.ravel(), want.ravel())[0, 1] > 0.97


def test_permutations_scale_down_with_columns():
    assert default_permutations(14) == 10 and default_permutations(79) == 7 and default_permutations(2000) == 3
