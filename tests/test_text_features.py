"""Text and multi-valued columns: tokens in SQL, token ids in bulk, suggestion, training,
explanation, inspection and the bundle -- all on real DuckDB, torch and onnxruntime."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from studio_core.data.sqlutil import tokens_expr
from studio_core.data.workspace import Workspace
from studio_core.explain.contributions import score_parts
from studio_core.explain.shap_values import encode_rows, explain, frame_source
from studio_core.export.bundle import export_bundle
from studio_core.export.scoring import load_bundle
from studio_core.features.suggest import suggest
from studio_core.features.text import TokenEncoder
from studio_core.features.validate import validate
from studio_core.runs import train as pipeline
from studio_core.runs.inspect import wide_weights
from studio_core.runs.store import load_run
from studio_core.spec.schema import CrossFeature, DataSpec, TextFeature

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from reviews import frame as reviews_frame  # noqa: E402


def tokens(ws: Workspace, values: list, kind: str = "text", delimiter: str = "|", ngrams: int = 1, duck_type: str = "VARCHAR") -> list:
    ws.register_frame("cells", pd.DataFrame({"c": pd.Series(values, dtype=object)}))
    cast = f"CAST(c AS {duck_type})"
    return [r[0] for r in ws.con.sql(f"SELECT {tokens_expr('c', duck_type, kind, delimiter, ngrams).replace(chr(34) + 'c' + chr(34), cast)} "
                                     "FROM cells").fetchall()]


def test_words_are_lower_cased_letters_and_digits_of_any_script():
    ws = Workspace()
    got = tokens(ws, ["Great!! Not   BAD, 10/10", "Été à Zürich — très bien", "東京 テスト", None, "", "...", "x" * 50_000 + " end"])
    assert got[0] == ["great", "not", "bad", "10", "10"]
    assert got[1] == ["été", "à", "zürich", "très", "bien"]
    assert got[2] == ["東京", "テスト"]
    assert got[3] is None and got[4] == [] and got[5] == []
    assert got[6] == ["x" * 50_000, "end"]  # a very long text: one long word, not a crash


def test_word_pairs_follow_the_words():
    ws = Workspace()
    got = tokens(ws, ["not good at all", "one", None], ngrams=2)
    assert got[0] == ["not", "good", "at", "all", "not good", "good at", "at all"]
    assert got[1] == ["one"] and got[2] == []


def test_multi_values_are_split_trimmed_and_empty_parts_dropped():
    ws = Workspace()
    got = tokens(ws, ["Action| Comedy||", "Drama", "", None, " | "], kind="multi")
    assert got == [["Action", "Comedy"], ["Drama"], [], None, []]
    assert tokens(ws, ["a;b"], kind="multi", delimiter=";") == [["a", "b"]]
    ws.con.execute("CREATE TABLE lists AS SELECT * FROM (VALUES ([1, 2, 2]), (NULL), ([])) t(l)")
    expr = tokens_expr("l", "INTEGER[]", "multi")
    assert [r[0] for r in ws.con.sql(f"SELECT {expr} FROM lists").fetchall()] == [["1", "2", "2"], None, []]


def test_token_ids_keep_first_appearance_dedupe_truncate_and_pad():
    enc = TokenEncoder(max_length=3)
    enc.vocabulary_, enc.counts_, enc.n_ids_, enc.deep_n_ids_ = ["a", "b", "c", "d"], [9, 5, 3, 1], 5, 3
    lists = pa.array([["c", "a", "c", "zzz", "b", "d"], [], None, ["zzz"], ["d", "d"]], pa.list_(pa.string()))
    ids = enc.transform(lists)
    assert ids.tolist() == [[3, 1, 2], [0, 0, 0], [0, 0, 0], [0, 0, 0], [4, 0, 0]]
    assert enc.deep_ids(ids).tolist() == [[0, 1, 2], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]  # d, c: too rare for an embedding
    assert enc.transform(pa.chunked_array([lists[:2], lists[2:]])).tolist() == ids.tolist()
    hashed = TokenEncoder("hash", buckets=7, max_length=4)
    hashed.n_ids_ = hashed.deep_n_ids_ = 8
    h = hashed.transform(pa.array([["x", "y", "x"]], pa.list_(pa.string())))
    assert ((h[0, :2] >= 1) & (h[0, :2] <= 7)).all() and h[0, 2:].tolist() == [0, 0]


@pytest.fixture(scope="module")
def reviews_ws(tmp_path_factory):
    path = tmp_path_factory.mktemp("rev") / "reviews.csv"
    reviews_frame(2500, seed=3).drop(columns=["rating_band"]).to_csv(path, index=False)
    ws = Workspace()
    ws.load(str(path))
    return ws


def test_suggest_finds_free_text_and_a_set_and_says_why(reviews_ws):
    s = suggest(reviews_ws, DataSpec(table="reviews", label="recommended"))
    roles = {r.name: r for r in s.roles}
    assert roles["review"].role == "text" and "free text" in roles["review"].reason
    assert roles["tags"].role == "text" and "separated by '|'" in roles["tags"].reason
    kinds = {t.name: (t.kind, t.delimiter) for t in s.spec.features.text}
    assert kinds == {"review": ("text", "|"), "tags": ("multi", "|")}
    assert s.spec.model.wide_l2 > 0
    assert validate(s.spec, reviews_ws.table("reviews")) == []


def test_codes_and_short_labels_are_not_text(tmp_path):
    rng = np.random.default_rng(0)
    n = 600
    df = pd.DataFrame({"code": [f"AB-{i:05d}" for i in range(n)], "city": rng.choice(["New York", "San José", "Oslo"], n),
                       "y": rng.integers(0, 2, n)})
    ws = Workspace()
    ws.register_frame("t", df)
    roles = {r.name: r.role for r in suggest(ws, DataSpec(table="t", label="y")).roles}
    assert roles["code"] == "ignored" and roles["city"] == "categorical"


def test_validate_names_text_problems(reviews_ws):
    spec = suggest(reviews_ws, DataSpec(table="reviews", label="recommended")).spec
    spec.features.text.append(TextFeature(name="price"))
    spec.features.text[0].ngrams = 3
    spec.features.crosses = [CrossFeature(columns=["review", "category"])]
    problems = {p.field: p.message for p in validate(spec, reviews_ws.table("reviews"))}
    assert "features.text[0].ngrams" in problems
    assert "text column" in problems["features.crosses[0].columns"]
    assert "not text" in problems["features.text[2].name"]


@pytest.fixture(scope="module")
def text_run(reviews_ws, tmp_path_factory):
    spec = suggest(reviews_ws, DataSpec(table="reviews", label="recommended")).spec
    spec.features.text[0].deep_min_count = 20  # a small table: let some tokens reach the deep part
    spec.train.epochs = 6
    out = tmp_path_factory.mktemp("run") / "run"
    pipeline.train(spec, reviews_ws, out)
    return load_run(out)


def test_a_text_run_trains_learns_words_and_keeps_padding_at_zero(text_run):
    run = text_run
    assert run.metrics["test"]["auc"] > 0.75
    w = run.model.wide.weight.detach().numpy()[:, 0]
    assert w[run.model.wide_pad] == 0.0 and run.model.bags is not None
    weights = wide_weights(run)
    review = weights[weights.feature == "review"].set_index("value").weight
    assert review.get("great", 0) > 0 > review.get("terrible", 0)  # the words that carry the label, by name


def test_shap_credits_text_as_one_column_and_stays_additive(text_run, reviews_ws):
    run = text_run
    rows = frame_source(reviews_ws.con.sql("SELECT * EXCLUDE (recommended) FROM reviews LIMIT 12").df())
    background = frame_source(reviews_ws.con.sql("SELECT * EXCLUDE (recommended) FROM reviews LIMIT 40 OFFSET 100").df())
    e = explain(run, rows, background)
    assert set(e.columns) == {"review", "tags", "category", "price"}
    np.testing.assert_allclose(e.base_value + e.values.sum(axis=1), e.outputs, atol=1e-4)
    assert np.abs(e.values[:, list(e.columns).index("review")]).mean() > np.abs(e.values[:, list(e.columns).index("price")]).mean()


def test_a_rows_tokens_are_listed_with_their_weights(text_run, reviews_ws):
    df = pd.DataFrame({"review": ["Great value, not terrible at all", None], "category": ["toys", "toys"], "price": [10.0, 10.0],
                       "tags": ["gift|durable", None]})
    codes, raw = encode_rows(text_run, frame_source(df))
    parts = score_parts(text_run, codes, raw, 0)
    assert {"great", "terrible"} <= set(parts.tokens.token)
    assert parts.wide_terms.set_index("field").loc["review", "weight"] == pytest.approx(
        parts.tokens[parts.tokens.column == "review"].weight.sum(), abs=1e-5)
    empty = score_parts(text_run, codes, raw, 1)
    assert empty.wide_terms.set_index("field").loc["review", "weight"] == 0.0


def test_bundle_scores_text_without_torch_and_says_why_there_is_no_raw_graph(text_run, reviews_ws, tmp_path):
    fig = export_bundle(text_run, tmp_path / "b.zip")
    assert fig["score_with"] == "model.onnx" and "regular expression" in fig["parity"]["raw_unavailable"]
    b = load_bundle(tmp_path / "b.zip")
    ws = Workspace()
    ws.register_frame("input", reviews_ws.con.sql("SELECT * EXCLUDE (recommended) FROM reviews LIMIT 300").df())
    got, _ = b.predict(ws.table("input"))
    want, _ = text_run.predict(ws.table("input"))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_text_streams_out_of_core_like_in_memory(reviews_ws):
    """Token ids are ordinary model-input columns: block files carry them as they carry ids."""
    spec = suggest(reviews_ws, DataSpec(table="reviews", label="recommended")).spec
    spec.train.epochs = 4
    got = {}
    for mode in ("never", "always"):
        spec.train.out_of_core = mode
        m = pipeline.train(spec, reviews_ws).metrics
        got[mode] = m
    assert got["always"]["out_of_core"] and not got["never"]["out_of_core"]
    assert got["always"]["test"]["auc"] > 0.7 and abs(got["always"]["test"]["auc"] - got["never"]["test"]["auc"]) < 0.05
