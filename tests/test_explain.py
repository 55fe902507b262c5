"""SHAP per original column, and the wide/deep split of a score, on real trained runs."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from studio_core.common.errors import Cancelled
from studio_core.data.source import Source
from studio_core.data.split import make_split
from studio_core.data.workspace import Workspace
from studio_core.explain.contributions import row_parts
from studio_core.explain.shap_values import explain, sample_relation
from studio_core.features.suggest import suggest
from studio_core.runs import train as pipeline
from studio_core.runs.store import load_run
from studio_core.spec.schema import CrossFeature, DataSpec


@pytest.fixture
def trained(small_spec, tmp_path):
    ws, spec = small_spec
    pipeline.train(spec, ws, tmp_path / "run")
    run = load_run(tmp_path / "run")
    return ws, run, make_split(ws.fork(), run.spec.data)


def test_shap_is_per_original_column_and_additive(trained):
    ws, run, split = trained
    e = explain(run, sample_relation(split.val, 25, 0), sample_relation(split.train, 30, 1))
    assert e.values.shape == (25, 4) and set(e.columns) == {"colour", "size", "x1", "x2"}
    np.testing.assert_allclose(e.base_value + e.values.sum(axis=1), e.outputs, atol=1e-4)
    # the outputs are the run's own log-odds for those rows
    raw = split.con.sql(f"SELECT * FROM {sample_relation(split.val, 25, 0).relation}").df()
    ws2 = Workspace()
    ws2.register_frame("rows", raw.drop(columns=["__wd_row"]))
    probs, _ = run.predict(ws2.table("rows"))
    np.testing.assert_allclose(1 / (1 + np.exp(-e.outputs)), probs, atol=1e-5)
    imp = e.importance()
    assert list(imp.columns) == ["feature", "mean_abs_shap"] and imp.mean_abs_shap.is_monotonic_decreasing
    beeswarm = e.long_frame()
    assert len(beeswarm) == 25 * 4 and beeswarm.loc[beeswarm.feature == "colour", "percentile"].isna().all()
    assert beeswarm.loc[beeswarm.feature == "x1", "percentile"].between(0, 1).all()
    fall = e.waterfall_frame(3)
    assert fall.end.iloc[-1] == pytest.approx(e.outputs[3], abs=1e-6) and fall.start.iloc[0] == pytest.approx(e.base_value)


def test_a_cross_is_credited_to_the_columns_it_is_built_from(synthetic_csv, tmp_path):
    """A wide-only model whose only input is the colour x size cross: all credit goes to those
    two columns, none to x1 / x2 (which the model never reads)."""
    ws = Workspace()
    ws.load(synthetic_csv)
    spec = suggest(ws, DataSpec(table="synthetic", label="target")).spec
    for c in spec.features.categorical:
        c.wide, c.deep = False, False
    for n in spec.features.numeric:
        n.wide, n.embed, n.transform = False, False, "standardize"
    spec.features.crosses = [CrossFeature(columns=["colour", "size"], encoding="vocab")]
    spec.model.deep = False
    spec.train.epochs = 3
    out = pipeline.train(spec, ws, tmp_path / "run")
    run = load_run(out.run_dir)
    split = make_split(ws.fork(), run.spec.data)
    e = explain(run, sample_relation(split.val, 20, 0), sample_relation(split.train, 20, 1))
    cols = list(e.columns)
    assert np.abs(e.values[:, [cols.index("x1"), cols.index("x2")]]).max() == 0.0
    assert np.abs(e.values[:, [cols.index("colour"), cols.index("size")]]).sum() > 0.1
    np.testing.assert_allclose(e.base_value + e.values.sum(axis=1), e.outputs, atol=1e-4)


def test_regression_explains_the_prediction_on_the_labels_scale(tmp_path):
    from conftest import write_synthetic

    ws = Workspace()
    ws.load(write_synthetic(tmp_path / "reg.csv", label="regression"), name="reg")
    spec = suggest(ws, DataSpec(table="reg", label="target")).spec
    spec.train.epochs = 2
    pipeline.train(spec, ws, tmp_path / "run")
    run = load_run(tmp_path / "run")
    split = make_split(ws.fork(), run.spec.data)
    e = explain(run, sample_relation(split.val, 10, 0), sample_relation(split.train, 15, 1))
    assert e.output_name == "target"
    np.testing.assert_allclose(e.base_value + e.values.sum(axis=1), e.outputs, atol=1e-4)
    rows = sample_relation(split.val, 10, 0)
    split.con.execute(f"CREATE TABLE explained AS SELECT * FROM {rows.relation}")
    preds, _ = run.predict(ws.table("explained"))
    np.testing.assert_allclose(e.outputs, preds, atol=1e-5)  # the prediction on the label's scale, not the standardised output


def test_explanation_can_be_cancelled_and_reports_progress(trained):
    _, run, split = trained
    stop, seen = threading.Event(), []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        stop.set()

    with pytest.raises(Cancelled):
        explain(run, sample_relation(split.val, 30, 0), sample_relation(split.train, 10, 1), progress=progress, stop_event=stop, chunk=5)
    assert seen == [(5, 30)]


def test_wide_deep_split_adds_up_and_names_the_wide_terms(trained):
    ws, run, split = trained
    rows = pd.DataFrame({"colour": ["red", "purple"], "size": ["L", None], "x1": [0.5, 1.0], "x2": [None, 2.0]})
    ws.register_frame("whatif", rows)
    src = Source(ws.con, '"whatif"')
    probs, _ = run.predict(ws.table("whatif"))
    for i in range(2):
        parts = row_parts(run, src, i)
        assert parts.prediction == pytest.approx(probs[i], abs=1e-6)
        assert parts.wide + parts.deep + parts.bias == pytest.approx(parts.output, abs=1e-6)
        assert parts.wide_terms.weight.sum() == pytest.approx(parts.wide, abs=1e-5)
    terms = row_parts(run, src, 1).wide_terms
    values = dict(zip(terms.field, terms.value))
    assert values.get("colour") == "purple (unseen)"
    assert values["colour x size"].startswith("purple x (missing)")  # the suggested spec crosses them


def test_two_explanations_on_two_threads_give_each_ones_own_values(trained):
    """shap draws its permutations from NumPy's process-wide generator and re-seeds it: two
    explanations at once must still give exactly what each gives alone."""
    ws, run, split = trained
    from studio_core.explain.shap_values import encode_background, encode_rows, explain_codes

    codes_r, data = encode_rows(run, sample_relation(split.val, 20, 0))
    codes_b = encode_background(run, sample_relation(split.train, 20, 1))
    alone = {seed: explain_codes(run, codes_r, data, codes_b, seed=seed, chunk=2).values for seed in (0, 1)}
    together: dict[int, np.ndarray] = {}

    def work(seed: int) -> None:
        together[seed] = explain_codes(run, codes_r, data, codes_b, seed=seed, chunk=2).values

    threads = [threading.Thread(target=work, args=(seed,)) for seed in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for seed in (0, 1):
        np.testing.assert_array_equal(together[seed], alone[seed])
