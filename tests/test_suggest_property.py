"""A suggested spec always validates against its own table (issue 14): a Hypothesis property
over generated tables -- all numeric, all categorical, one feature column, NULL-heavy,
constant columns, integer codes, mixed -- each either suggests a spec with no problems or says
clearly why no column can be a feature."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio_core.common.errors import StudioError
from studio_core.data.workspace import Workspace
from studio_core.features.suggest import suggest
from studio_core.features.validate import validate
from studio_core.spec.schema import DataSpec

EXAMPLES = int(os.environ.get("WDSTUDIO_SUGGEST_EXAMPLES", "25"))
KINDS = ("float", "int_code", "small_int", "text", "bool", "constant", "mostly_null", "all_null", "skewed", "unique_id")


def _column(kind: str, n: int, rng: np.random.Generator) -> pd.Series:
    if kind == "float":
        return pd.Series(rng.normal(100, 30, n))
    if kind == "int_code":
        return pd.Series(rng.integers(0, max(3, n // 8), n), dtype="int64")
    if kind == "small_int":
        return pd.Series(rng.integers(0, 5, n), dtype="int64")
    if kind == "text":
        return pd.Series(rng.choice(["a", "b", "c", "d", "é", "東"], n))
    if kind == "bool":
        return pd.Series(rng.random(n) < 0.3)
    if kind == "constant":
        return pd.Series(["same"] * n)
    if kind == "mostly_null":
        return pd.Series(np.where(rng.random(n) < 0.9, np.nan, rng.normal(size=n)))
    if kind == "all_null":
        return pd.Series([None] * n, dtype="object")
    if kind == "skewed":
        return pd.Series(np.where(rng.random(n) < 0.9, 0.0, rng.lognormal(5, 2, n)))
    return pd.Series(np.arange(n) * 7 + 3, dtype="int64")  # unique_id


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=6), n=st.integers(60, 400),
       task=st.sampled_from(["binary", "regression"]), seed=st.integers(0, 2**16))
def test_a_suggested_spec_validates_against_its_own_table(kinds, n, task, seed, tmp_path_factory):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({f"c{i}_{k}": _column(k, n, rng) for i, k in enumerate(kinds)})
    df["label"] = (rng.random(n) < 0.4).astype(int) if task == "binary" else rng.normal(50, 10, n)
    path = tmp_path_factory.mktemp("prop") / "t.csv"
    df.to_csv(path, index=False)
    ws = Workspace()
    ws.load(path, name="t")
    try:
        sug = suggest(ws, DataSpec(table="t", label="label"))
    except StudioError as exc:  # a table with nothing usable: said plainly, naming the columns
        assert "no column can be a feature" in str(exc) and all(c in str(exc) for c in df.columns if c != "label")
        return
    problems = validate(sug.spec, ws.source("t", ""))
    assert problems == [], [str(p) for p in problems]
    assert sug.spec.data.task == task
    used = set(sug.spec.feature_names())
    assert used and used <= set(df.columns) - {"label"}
    for role in sug.roles:
        assert role.reason  # every choice says why
