import json

import pytest

from studio_core.common.errors import SpecError
from studio_core.data.workspace import Workspace
from studio_core.features.validate import validate
from studio_core.spec.schema import CrossFeature, Spec


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
    from studio_core.features.editing import apply_rows, feature_rows
    from studio_core.runs.train import train

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


def test_columns_named_like_the_studios_own_are_refused_with_a_working_rename(tmp_path, capsys):
    """The split adds __wd_row / __wd_hash / __wd_part beside the rows: a user's column of that
    name was silently replaced by the row number (or used as the split flag)."""
    from studio_core.cli.main import main
    from studio_core.spec.schema import CategoricalFeature, DataSpec, FeatureSpec

    p = tmp_path / "w.csv"
    p.write_text("__wd_row,__WD_hash,c,y\n" + "".join(f"{i % 7},{i % 3},{'ab'[i % 2]},{i % 2}\n" for i in range(200)))
    ws = Workspace()
    ws.load(p, name="w")
    spec = Spec(data=DataSpec(table="w", label="y", positive_class="1"),
                features=FeatureSpec(categorical=[CategoricalFeature("__wd_row"), CategoricalFeature("c")]))
    problems = [q for q in validate(spec, ws.table("w")) if q.field == "data"]
    assert len(problems) == 1 and "'__wd_row', '__WD_hash'" in problems[0].message and "__wd_" in problems[0].message
    fix_sql = problems[0].fix.split("data.sql: ", 1)[1].replace("…", "w")
    ws.con.execute(f"CREATE VIEW fixed AS {fix_sql}")
    assert "wd_row" in ws.con.sql("SELECT * FROM fixed LIMIT 0").columns  # the suggested rename runs
    (tmp_path / "spec.json").write_text(spec.to_json(), encoding="utf-8")
    code = main(["train", "--data", str(p), "--table", "w", "--spec", str(tmp_path / "spec.json"), "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 2 and not (tmp_path / "run").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "__wd_row" in err[0]
