"""Hypothesis throws generated CSV bytes at the loader and generated JSON at the spec parser and
validator: the answer is always a result or a clean StudioError -- never a crash."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio_core.common.errors import StudioError
from studio_core.data.profile import profile
from studio_core.data.workspace import Workspace
from studio_core.features.validate import validate
from studio_core.spec.schema import Spec

CELL = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "NA", "N/A", "null", "nan", "inf", "-inf", "1e309", "1,5", '"', '""', "'", "\\", "0x1F", "  7 ", "TRUE"]),
    st.integers(-10**20, 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
ROWS = st.lists(st.lists(CELL, min_size=0, max_size=6), min_size=0, max_size=12)
SETTINGS = settings(max_examples=int(os.environ.get("WDSTUDIO_FUZZ_EXAMPLES", "300")), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _csv_bytes(rows: list[list[str]], delimiter: str, encoding: str, bom: bool) -> bytes:
    text = "\n".join(delimiter.join(r) for r in rows)
    data = text.encode(encoding, errors="replace")
    return (b"\xef\xbb\xbf" if bom else b"") + data


def _load(data: bytes, suffix: str = ".csv") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzz{suffix}"
        path.write_bytes(data)
        ws = Workspace(threads=1)
        try:
            res = ws.load(path)
        except StudioError as exc:
            assert str(exc) and "\n" not in str(exc).strip()
            return
        assert res.rows == ws.con.execute(f'SELECT count(*) FROM "{res.table}"').fetchall()[0][0] and res.columns == len(ws.table(res.table).columns) >= 1
        profile(ws, res.table)  # a loaded table can always be profiled


@SETTINGS
@given(rows=ROWS, delimiter=st.sampled_from([",", ";", "\t", "|", " "]), encoding=st.sampled_from(["utf-8", "latin-1", "utf-16"]), bom=st.booleans())
def test_generated_csv_text_loads_or_fails_cleanly(rows, delimiter, encoding, bom):
    _load(_csv_bytes(rows, delimiter, encoding, bom))


@SETTINGS
@given(data=st.binary(max_size=2000), suffix=st.sampled_from([".csv", ".parquet", ".txt"]))
def test_generated_bytes_load_or_fail_cleanly(data, suffix):
    _load(data, suffix)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


def _mutations() -> st.SearchStrategy:
    """A valid spec with one field replaced by generated JSON."""
    base = Spec().to_dict()
    base["data"].update(table="t", label="y")
    base["features"] = {"numeric": [{"name": "x"}], "categorical": [{"name": "c"}], "crosses": [{"columns": ["c", "x"]}]}
    paths = [("data", k) for k in base["data"]] + [("model", k) for k in base["model"]] + [("train", k) for k in base["train"]]
    paths += [("features", "numeric"), ("features", "categorical"), ("features", "crosses"), ("version",)]

    def mutate(path: tuple, value: object) -> dict:
        d = json.loads(json.dumps(base))
        target = d
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return d

    return st.builds(mutate, st.sampled_from(paths), JSON | st.sampled_from([0, -1, 10**9, 1e308, float("nan"), "", "x" * 500, [], {}]))


@SETTINGS
@given(doc=st.one_of(JSON, _mutations()))
def test_generated_json_specs_parse_and_validate_or_fail_cleanly(doc, tmp_path_factory):
    ws = _table_workspace()
    try:
        text = json.dumps(doc, allow_nan=True)
    except (ValueError, TypeError):
        return
    try:
        spec = Spec.from_json(text)
    except StudioError as exc:
        assert str(exc)
        return
    problems = validate(spec, ws.table("t"))
    assert all(p.field and p.message for p in problems)
    if not problems:  # a valid spec survives the JSON round trip unchanged
        assert Spec.from_json(spec.to_json()) == spec


_WS: list[Workspace] = []


def _table_workspace() -> Workspace:
    if not _WS:
        ws = Workspace(threads=1)
        ws.con.execute("CREATE TABLE t AS SELECT range AS x, CASE WHEN range % 3 = 0 THEN 'a' ELSE 'b' END AS c, (range % 2) AS y FROM range(50)")
        _WS.append(ws)
    return _WS[0]
