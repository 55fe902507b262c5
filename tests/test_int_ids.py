"""Integer-coded ids are labels, not quantities: suggested as categorical, exact above 2^53;
counts, ages and years stay numeric."""

from __future__ import annotations

import numpy as np
import pandas as pd

from studio_core.data.workspace import Workspace
from studio_core.features.suggest import suggest
from studio_core.features.validate import validate
from studio_core.runs import train as pipeline
from studio_core.runs.store import load_run
from studio_core.spec.schema import DataSpec


def test_integer_ids_are_categorical_and_quantities_stay_numeric(tmp_path):
    rng = np.random.default_rng(3)
    n = 3000
    big = 2**60 + rng.integers(0, 400, n)  # ids past float64's exact integers
    df = pd.DataFrame({
        "user_id": rng.integers(10_000, 11_000, n), "zip": rng.integers(1000, 1400, n), "productCode": rng.integers(0, 900, n),
        "big_id": big, "visits_count": rng.integers(0, 60, n), "age": rng.integers(18, 80, n), "year": rng.integers(1990, 2021, n),
        "amount": rng.normal(100, 20, n).round(2)})
    df["y"] = (rng.random(n) < 1 / (1 + np.exp(-(df.age - 50) / 10))).astype(int)
    df.to_csv(tmp_path / "t.csv", index=False)
    ws = Workspace()
    ws.load(str(tmp_path / "t.csv"))
    s = suggest(ws, DataSpec(table="t", label="y"))
    roles = {r.name: r for r in s.roles}
    for col in ("user_id", "zip", "productCode", "big_id"):
        assert roles[col].role == "categorical" and roles[col].reason.startswith(("integer codes of an id", "looks like a group id")), (col, roles[col])
    for col in ("visits_count", "age", "year", "amount"):
        assert roles[col].role == "numeric", (col, roles[col])
    assert not validate(s.spec, ws.table("t"))
    s.spec.train.epochs = 1
    pipeline.train(s.spec, ws, tmp_path / "run")
    vocab = load_run(tmp_path / "run").preprocessor.encoders_["cat:big_id"].vocabulary_
    assert {str(v) for v in big[:50]} <= set(vocab)  # each id its own entry, not rounded to its float64 neighbour
