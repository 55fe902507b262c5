import json

import pytest

from studio_core.errors import SpecError
from studio_core.spec import CrossFeature, Spec
from studio_core.validate import validate
from studio_core.workspace import Workspace


def test_json_round_trip_is_exact(small_spec):
    _, spec = small_spec
    spec.features.crosses.append(CrossFeature(["colour", "size"], "vocab", 64, 2))
    again = Spec.from_json(spec.to_json())
    assert again == spec
    assert json.loads(again.to_json()) == json.loads(spec.to_json())


def test_from_dict_reports_every_unknown_key_and_wrong_type():
    data = {"data": {"label": 3, "colour": "x"}, "train": {"epochs": "ten", "batch_size": True}, "bogus": 1}
    with pytest.raises(SpecError) as err:
        Spec.from_dict(data)
    fields = {p.field for p in err.value.problems}
    assert fields == {"spec.data.label", "spec.data.colour", "spec.train.epochs", "spec.train.batch_size", "spec.bogus"}
    assert all(p.fix for p in err.value.problems)


def test_from_json_rejects_non_json():
    with pytest.raises(SpecError, match="not valid JSON"):
        Spec.from_json("{not json")


def test_validate_returns_all_problems_with_fields_and_fixes(small_spec):
    ws, spec = small_spec
    spec.data.label = "nope"
    spec.train.epochs = 0
    spec.train.deep_lr = float("nan")
    spec.model.dropout = 2.0
    spec.features.crosses = [CrossFeature(["colour"], "hash", 0)]
    spec.features.categorical[0].encoding = "onehot"
    problems = validate(spec, ws.table("synthetic"))
    by_field = {p.field: p for p in problems}
    for field in ("data.label", "train.epochs", "train.deep_lr", "model.dropout", "features.crosses[0].columns",
                  "features.crosses[0].hash_buckets", "features.categorical[0].encoding"):
        assert field in by_field, field
        assert by_field[field].fix
    assert "does not exist" in by_field["data.label"].message


def test_validate_checks_label_values(tmp_path):
    p = tmp_path / "one.csv"
    p.write_text("a,y\n1,yes\n2,yes\n3,yes\n")
    ws = Workspace()
    ws.load(p)
    spec = Spec()
    spec.data.table, spec.data.label, spec.data.positive_class = "one", "y", "yes"
    spec.features.numeric = []
    problems = validate(spec, ws.table("one"))
    assert any(p.field == "data.label" and "1 distinct" in p.message for p in problems)
    assert any(p.field == "features" for p in problems)


def test_valid_suggested_spec_has_no_problems(small_spec):
    ws, spec = small_spec
    assert validate(spec, ws.table("synthetic")) == []


def test_column_rows_round_trip_and_numeric_embedding_edits_take_effect(small_spec):
    from studio_core.editing import apply_rows, feature_rows
    from studio_core.pipeline import train

    ws, spec = small_spec
    rows = feature_rows(spec, ws.table("synthetic").columns, {})
    assert apply_rows(spec, rows) == spec  # unchanged rows, unchanged spec
    x1 = next(r for r in rows if r["column"] == "x1")
    x1["embedding_dim"] = 7
    colour = next(r for r in rows if r["column"] == "colour")
    colour["role"] = "ignored"
    edited = apply_rows(spec, rows)
    assert next(f for f in edited.features.numeric if f.name == "x1").embedding_dim == 7
    assert "colour" not in edited.feature_names() and all("colour" not in x.columns for x in edited.features.crosses)
    layout = train(edited, ws).preprocessor.layout()
    assert layout.deep_embedding_dims[layout.deep_fields.index("x1 (bucket)")] == 7
