import json

import numpy as np
import pyarrow as pa

from studio_core.data.split import make_split
from studio_core.data.workspace import Workspace
from studio_core.features.encoders import (
    CrossEncoder,
    HashEncoder,
    QuantileBucketizer,
    Source,
    Standardizer,
    VocabEncoder,
    fold_codes,
    text_codes,
)
from studio_core.features.preprocess import Preprocessor
from studio_core.spec.schema import CategoricalFeature, CrossFeature, FeatureSpec, NumericFeature


def source(rows: str) -> tuple[Workspace, Source]:
    ws = Workspace()
    ws.con.execute(f"CREATE TABLE t AS SELECT * FROM (VALUES {rows}) v(c, x)")
    return ws, Source(ws.con, "t")


def test_vocab_orders_by_count_and_maps_unseen_rare_and_null_to_zero():
    _, src = source("('a', 1.0), ('a', 2.0), ('b', 3.0), ('c', NULL), (NULL, 4.0), ('a', 5.0), ('b', 6.0)")
    enc = VocabEncoder(min_count=2).fit(src, "c")
    assert enc.vocabulary_ == ["a", "b"] and enc.n_ids_ == 3
    ids = enc.transform(pa.array(["b", "a", "c", None, "zzz"]))
    assert ids.tolist() == [2, 1, 0, 0, 0]


def test_hash_encoder_is_stable_in_range_and_null_is_zero():
    enc = HashEncoder(buckets=8).fit()
    values = pa.array(["x", "y", None, "x", "émigré"])
    ids = enc.transform(values)
    assert ids[0] == ids[3] and ids[2] == 0
    assert ((ids[[0, 1, 3, 4]] >= 1) & (ids[[0, 1, 3, 4]] <= 8)).all()
    assert enc.transform(pa.array(["x"]))[0] == ids[0]  # same value, same bucket, any batch


def test_standardizer_imputes_missing_and_adds_indicator():
    _, src = source("('a', 1.0), ('a', 3.0), ('b', NULL)")
    enc = Standardizer().fit(src, "x")
    assert enc.mean_ == 2.0 and enc.has_missing_
    out = enc.transform(pa.array([1.0, None, 3.0]))
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out[:, 0], [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(out[:, 1], [0.0, 1.0, 0.0])


def test_bucketizer_separates_zero_from_tail_of_skewed_column():
    rows = ", ".join(["('a', 0.0)"] * 90 + [f"('a', {v}.0)" for v in range(1, 11)])
    _, src = source(rows)
    enc = QuantileBucketizer(4).fit(src, "x")
    ids = enc.transform(pa.array([0.0, 1.0, 10.0, None]))
    assert ids[3] == 0 and ids[0] != ids[2]
    tail = enc.transform(pa.array([float(v) for v in range(11)]))
    assert len(set(tail.tolist())) == 4  # all four buckets used across the tail, not all-zero boundaries


def test_cross_hash_and_vocab_encodings():
    a, b = pa.array(["red", "red", "blue", None]), pa.array(["L", "S", "L", "L"])
    codes = [text_codes(a), text_codes(b)]
    hashed = CrossEncoder("hash", 16).fit().transform(codes)
    assert hashed[0] != 0 and ((hashed >= 1) & (hashed <= 16)).all()
    folded = fold_codes(codes)
    vocab = CrossEncoder("vocab", min_count=2).fit([codes[0][:3], codes[1][:3]], np.array([5, 1, 3]))
    ids = vocab.transform(codes)
    assert vocab.n_ids_ == 3  # (red, S) was too rare
    assert ids[0] == 1 and ids[1] == 0 and ids[2] == 2 and ids[3] == 0
    assert len(set(folded[:3].tolist())) == 3


def test_preprocessor_state_round_trips_through_json_with_identical_outputs(synthetic_csv):
    ws = Workspace()
    ws.load(synthetic_csv)
    features = FeatureSpec(
        [NumericFeature("x1", "standardize", 8, True, True), NumericFeature("x2", "bucketize", 5)],
        [CategoricalFeature("colour", "vocab", 1, 10, 4), CategoricalFeature("size", "hash", 1, 32, 3)],
        [CrossFeature(["colour", "size"], "hash", 64), CrossFeature(["colour", "x1"], "vocab", 1, 2)],
    )
    from studio_core.spec.schema import DataSpec

    split = make_split(ws, DataSpec(table="synthetic", label="target", positive_class="1"))
    prep = Preprocessor(features, "target", "binary", "1", split.column_types).fit(split.train)
    enc = prep.transform(split.val)
    again = Preprocessor.from_state(json.loads(json.dumps(prep.state())))
    enc2 = again.transform(split.val)
    for a, b in ((enc.wide, enc2.wide), (enc.cat, enc2.cat), (enc.num, enc2.num), (enc.y, enc2.y)):
        np.testing.assert_array_equal(a, b)
    layout = prep.layout()
    assert enc.wide.shape[1] == len(layout.wide_fields) == 5  # colour, size, x1 bucket, 2 crosses
    assert enc.wide.max() < layout.wide_dim
    assert enc.cat.shape[1] == len(layout.deep_fields) == 4  # colour, size, x1 bucket, x2 bucket
    assert enc.num.shape[1] == len(layout.numeric_inputs) == 1
    assert set(np.unique(enc.y)) <= {0.0, 1.0}
    train_wide = prep.transform(split.train).wide
    start = prep.wide_offsets()[-1][1]  # the vocab cross colour x x1: fitted combos are found again
    assert (train_wide[:, -1] == start).mean() < 0.05


def test_unseen_categories_and_missing_columns_at_serving_time(synthetic_csv):
    ws = Workspace()
    ws.load(synthetic_csv)
    features = FeatureSpec([NumericFeature("x1")], [CategoricalFeature("colour")], [])
    from studio_core.spec.schema import DataSpec

    split = make_split(ws, DataSpec(table="synthetic", label="target", positive_class="1"))
    prep = Preprocessor(features, "target", "binary", "1", split.column_types).fit(split.train)
    ws.con.execute("CREATE TABLE new AS SELECT * FROM (VALUES ('purple'), ('red'), (NULL)) v(colour)")
    enc = prep.transform(Source(ws.con, "new"), with_label=False, available={"colour"})
    assert enc.cat[:, 0].tolist()[0] == 0 and enc.cat[1, 0] > 0 and enc.cat[2, 0] == 0
    assert np.all(enc.num == 0.0)  # the missing numeric column is imputed to the mean
    assert enc.y is None
