"""Partial dependence and ICE: every point is the run's own score of the row with one column set."""

from __future__ import annotations

import numpy as np
import pytest

from studio_core.data.split import make_split
from studio_core.data.workspace import Workspace
from studio_core.explain.dependence import dependence, grid_for, partial_dependence
from studio_core.explain.shap_values import encode_rows, sample_relation
from studio_core.runs import train as pipeline
from studio_core.runs.store import load_run


@pytest.fixture
def rows(small_spec, tmp_path):
    ws, spec = small_spec
    pipeline.train(spec, ws, tmp_path / "run")
    run = load_run(tmp_path / "run")
    split = make_split(ws.fork(), run.spec.data)
    _, data = encode_rows(run, sample_relation(split.val, 12, 0))
    return run, data


@pytest.mark.parametrize("column", ["x1", "colour"])
def test_every_point_is_the_runs_score_of_the_edited_row(rows, column):
    run, data = rows
    curves = dependence(run, data, column)
    grid = grid_for(run, data, column)
    assert len(curves) == 12 * len(grid) and list(curves.value[: len(grid)]) == grid
    if column == "colour":
        assert set(grid) == {"red", "green", "blue", "grey"}  # the training categories
    else:
        assert len(grid) > 5 and grid == sorted(grid)
    frame = data.drop(columns=["__wd_row"], errors="ignore").loc[data.index.repeat(len(grid))].reset_index(drop=True)
    frame[column] = list(curves.value)
    ws = Workspace()
    ws.register_frame("edited", frame)
    want, _ = run.predict(ws.table("edited"))
    np.testing.assert_allclose(curves.prediction, want, atol=1e-6)
    mean = partial_dependence(curves)
    assert list(mean.value) == grid
    np.testing.assert_allclose(mean.prediction, np.asarray(want).reshape(12, len(grid)).mean(axis=0), atol=1e-9)
