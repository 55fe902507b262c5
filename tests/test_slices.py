"""The leaderboard per slice (issue 17): per-slice figures equal scikit-learn's on the slice's
rows, a slice where the other run wins every row is flagged as a significant flip, numeric
columns become ordered quantile bands, long category lists pool their tail, and the CLI's
``--slice`` refuses what it cannot do in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from studio_core.cli.main import main
from studio_core.compare.leaderboard import read_scores
from studio_core.compare.slices import MAX_SLICES, OTHER, slice_board, slice_labels
from studio_core.runs import train as pipeline


@pytest.fixture
def two_runs(tmp_path, small_spec):
    ws, spec = small_spec
    wd = pipeline.train(spec, ws, tmp_path / "wd").run_dir
    lin = type(spec).from_dict(spec.to_dict())
    lin.model.deep = False
    return wd, pipeline.train(lin, ws, tmp_path / "lin").run_dir


def test_a_slice_where_the_other_run_wins_every_row_flips_the_ranking_significantly(two_runs):
    wd, lin = two_runs
    a, b = read_scores(wd), read_scores(lin)
    y = a.y >= 0.5
    a_closer = np.where(y, a.output > b.output, a.output < b.output)  # per row: whose probability is nearer the truth
    values = np.where(a_closer, "a wins", "b wins").astype(object)
    board = slice_board([wd, lin], "who", a.rows, values, metric="logloss", names=["wd", "lin"])
    by_value = {s.value: s for s in board.slices}
    assert set(by_value) == {"a wins", "b wins"}
    assert by_value["a wins"].order == ["wd", "lin"] and by_value["b wins"].order == ["lin", "wd"]
    flipped = [s for s in board.slices if s.flips]
    assert len(flipped) == 1 and flipped[0].significant and flipped[0].order != board.overall_order
    for s in board.slices:  # each slice's figures are the metric on exactly its rows
        mask = values == s.value
        assert s.rows == int(mask.sum())
        for name, scores in (("wd", a), ("lin", b)):
            p = 1 / (1 + np.exp(-scores.output[mask].astype(np.float64)))
            assert s.metric[name] == pytest.approx(log_loss(y[mask], p, labels=[0, 1]), rel=1e-4)
            lo, hi = s.ci[name]
            assert lo <= s.metric[name] <= hi
        diff = s.diff_ci["lin"]
        assert (diff[0] > 0) if s.value == "a wins" else (diff[1] < 0)  # lin worse on a's rows, better on b's


def test_slices_by_a_real_column_match_sklearn_and_the_cli_prints_and_refuses(two_runs, synthetic_csv, capsys):
    wd, lin = two_runs
    assert main(["compare", str(wd), str(lin), "--slice", "colour", "--data", str(synthetic_csv), "--json"]) == 0
    sliced = json.loads(capsys.readouterr().out)["slices"]
    assert sliced["column"] == "colour" and {s["value"] for s in sliced["slices"]} == {"red", "green", "blue", "grey"}
    a = read_scores(wd)
    import pandas as pd

    colour = pd.read_csv(synthetic_csv)["colour"].to_numpy()
    for s in sliced["slices"]:  # the table's row numbers are its file order
        mask = colour[a.rows] == s["value"]
        assert s["rows"] == int(mask.sum())
        assert s["metric"][str(wd)] == pytest.approx(roc_auc_score(a.y[mask] >= 0.5, a.output[mask]), abs=1e-9)
    assert main(["compare", str(wd), str(lin), "--slice", "x1", "--data", str(synthetic_csv)]) == 0
    printed = capsys.readouterr().out
    bands = [line.split(" (")[0].strip() for line in printed.splitlines() if line.startswith("  [")]
    assert len(bands) == 5 and bands == sorted(bands, key=lambda b: float(b[1:].split(",")[0]))
    assert main(["compare", str(wd), "--slice", "colour"]) == 2
    assert capsys.readouterr().err.strip() == "error: --slice needs the runs' data to read the column from; add --data FILE"
    assert main(["compare", str(wd), "--slice", "flavour", "--data", str(synthetic_csv)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --slice 'flavour' is not a column of the run's data")


def test_slice_labels_band_numbers_and_pool_the_tail_of_categories():
    rng = np.random.default_rng(0)
    numbers = rng.normal(size=1000).round(3).astype(str).astype(object)
    bands = slice_labels(numbers)
    counts = {b: int(np.sum(bands == b)) for b in set(bands.tolist())}
    assert len(counts) == 5 and all(180 <= c <= 220 for c in counts.values())
    cats = np.array([f"c{int(i)}" for i in rng.zipf(1.5, 2000) % 40], dtype=object)
    pooled = slice_labels(cats)
    kept = set(pooled.tolist()) - {OTHER}
    assert len(kept) == MAX_SLICES and OTHER in set(pooled.tolist())
    sizes = {c: int(np.sum(cats == c)) for c in set(cats.tolist())}
    assert min(sizes[c] for c in kept) >= max(sizes[c] for c in sizes if c not in kept)
    few = np.array(["x", "y", "x"], dtype=object)
    assert slice_labels(few).tolist() == ["x", "y", "x"]
