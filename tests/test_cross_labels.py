"""Crosses an analyst can read (issue 14, item 5): Inspect names a cross's weights by their
combinations -- ``city=Oslo × zip=8001``, a numeric component by its bucket -- for vocabulary
crosses exactly and for hashed ones by each bucket's most frequent training combination."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest
from test_export import mixed_spec, train_run

from studio_core.features.encoders import text_codes
from studio_core.features.suggest import suggest
from studio_core.runs.inspect import wide_weights
from studio_core.runs.store import load_run
from studio_core.spec.schema import DataSpec


def _id_of(prep, i: int, values: dict) -> int:
    """The cross id ``transform`` gives one row with these component values."""
    x = prep.features.crosses[i]
    codes = [prep.encoders_[f"bkt:{c}"].transform(pa.array([values[c]], pa.float64())) if c in prep._numeric_cols()
             else text_codes(pa.array([values[c]], pa.string())) for c in x.columns]
    return int(prep.encoders_[f"cross:{i}"].transform(codes)[0])


def test_inspect_names_cross_weights_by_their_combinations(tmp_path):
    run_dir, ws = train_run(tmp_path, mixed_spec())
    run = load_run(run_dir)
    prep = run.preprocessor
    w = wide_weights(run)
    # vocabulary cross city x zip: every id named, and the name is the combination that id encodes
    city_zip = w[w.feature == "city x zip"]
    named = city_zip[city_zip.value != "(unseen or missing)"]
    assert len(named) > 5 and not named.value.str.startswith("#").any()
    for label in named.value.head(8):
        m = re.fullmatch(r"city=(.*) × zip=(.*)", label)
        assert m, label
        enc = prep.encoders_["cross:1"]
        key = next(k for k, v in enc.labels_.items() if v == label)
        assert _id_of(prep, 1, {"city": None if m[1] == "(missing)" else m[1], "zip": m[2]}) == int(key)
    # numeric x categorical: the numeric part is its bucket's interval
    age_city = w[w.feature == "age x city"]
    assert age_city.value.str.fullmatch(r"age=(\(.*, .*\]|\(missing\)) × city=.*|\(unseen or missing\)").all()
    # a hashed cross: each bucket named by its most frequent combination, saying the bucket is shared
    hashed = w[(w.feature == "city x user agent") & (w.value != "(unseen or missing)")]
    assert len(hashed) > 10 and hashed.value.str.endswith("(+ others in its hash bucket)").all()
    label = hashed.value.iloc[0].removesuffix(" (+ others in its hash bucket)")
    m = re.fullmatch(r"city=(.*) × user agent=(.*)", label)
    key = next(k for k, v in prep.encoders_["cross:0"].labels_.items() if v == label)
    assert _id_of(prep, 0, {"city": m[1], "user agent": m[2]}) == int(key)


def test_a_cross_whose_combinations_fit_a_vocabulary_is_suggested_as_one(tmp_path):
    from studio_core.data.workspace import Workspace

    ws = Workspace()
    ws.load("sample_data/adult.csv", name="adult")
    sug = suggest(ws, DataSpec(table="adult", label="income"))
    assert sug.spec.features.crosses
    for x, cand in ((x, next(c for c in sug.crosses if list(c.columns) == x.columns)) for x in sug.spec.features.crosses):
        assert x.encoding == ("vocab" if cand.cardinality <= 10_000 else "hash")
    assert any(x.encoding == "vocab" for x in sug.spec.features.crosses)


def test_cross_score_counts_training_combinations_and_unseen_validation_rows():
    """The cardinality and unseen share a candidate shows come from the same cells as its
    gain; they must equal the direct DISTINCT count and anti-join on the rows (NULLs are a value)."""
    import duckdb
    import numpy as np

    from studio_core.features.suggest_scores import cross_score

    rng = np.random.default_rng(3)
    con = duckdb.connect()
    for name, n in (("tr", 3000), ("va", 800)):
        a = rng.integers(0, 12 if name == "tr" else 15, n)  # validation has values training never saw
        b = rng.choice(["x", "y", "z", None], n)
        y = (rng.random(n) < 0.2 + 0.05 * (a % 4) + 0.2 * (b == "x")).astype(float)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM (SELECT unnest(?) AS a, unnest(?) AS b, unnest(?) AS __y)", [a.tolist(), b.tolist(), y.tolist()])
    gain, card, unseen = cross_score(con, "tr", "va", ["a", "b"], "binary")
    assert card == con.execute("SELECT count(*) FROM (SELECT DISTINCT a, b FROM tr)").fetchone()[0]
    want = con.execute("SELECT avg(CASE WHEN t.a IS NULL THEN 1.0 ELSE 0.0 END) FROM va v LEFT JOIN (SELECT DISTINCT a, b FROM tr) t "
                       "ON v.a = t.a AND v.b IS NOT DISTINCT FROM t.b").fetchone()[0]
    assert 0.05 < unseen == pytest.approx(want, abs=1e-12)
    assert np.isfinite(gain)
