"""Value-weighted figures of a click model (issue 17's CTR and GMV): against hand-computed values,
a resample's figures equal the point figures on the rows it draws (written out), and the CLI's
``--value`` prints them with paired intervals and refuses a column that holds no amounts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from studio_core.cli.main import main
from studio_core.compare.value import value_metrics


def test_ctr_and_gmv_share_of_the_top_tenth_match_hand_computed_values():
    # 20 rows: the top 10 % is the 2 highest scores
    score = np.arange(20, 0, -1, dtype=float)  # row 0 scores highest
    y = np.zeros(20)
    y[[0, 5, 6]] = 1
    value = np.ones(20)
    value[[0, 5, 6]] = [10.0, 30.0, 60.0]
    got = {k: float(v[0]) for k, v in value_metrics(np.ones((1, 20)), y, score, value).items()}
    assert got["ctr_top"] == pytest.approx(1 / 2)  # rows 0 and 1: one click
    assert got["value_share_top"] == pytest.approx(10 / 100)  # of 100 clicked value, row 0 holds 10
    assert got["value_auc"] == pytest.approx(roc_auc_score(y, score, sample_weight=value))
    # 25 rows: the top 10 % is 2.5 rows -- the third row counts half
    score, y, value = np.arange(25, 0, -1, dtype=float), np.zeros(25), np.ones(25)
    y[[0, 2]] = 1
    value[[0, 2]] = [4.0, 6.0]
    got = {k: float(v[0]) for k, v in value_metrics(np.ones((1, 25)), y, score, value).items()}
    assert got["ctr_top"] == pytest.approx(1.5 / 2.5) and got["value_share_top"] == pytest.approx((4 + 0.5 * 6) / 10)


def test_a_resample_scores_as_the_rows_it_draws_written_out():
    rng = np.random.default_rng(3)
    n = 200
    y = (rng.random(n) < 0.3).astype(float)
    score = rng.normal(size=n) + y
    value = rng.exponential(20, n)
    counts = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
    drawn = np.repeat(np.arange(n), counts.astype(int))
    fast = value_metrics(counts[None, :], y, score, value)
    # the slow way: the drawn rows written out, ties in score broken by row order as the fast way does
    slow = value_metrics(np.ones((1, len(drawn))), y[drawn], score[drawn], value[drawn])
    for k in fast:
        assert fast[k][0] == pytest.approx(slow[k][0], rel=1e-9), k


def test_compare_with_value_prints_paired_intervals_and_refuses_what_is_not_an_amount(tmp_path, synthetic_csv, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(synthetic_csv), "--label", "target", "--epochs", "2", "--out", str(run), "--quiet", "--ablations"]) == 0
    capsys.readouterr()
    assert main(["compare", str(run), f"{run}.wide-only", "--value", "x2", "--data", str(synthetic_csv), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["value"]
    assert got["column"] == "x2" and [r["run"] for r in got["rows"]] == [str(run), f"{run}.wide-only"]
    other = got["rows"][1]
    for k in ("value_auc", "ctr_top", "value_share_top"):
        lo, hi = other["ci"][k]
        dlo, dhi = other["diff_ci"][k]
        assert lo <= other["figures"][k] <= hi and dlo <= other["figures"][k] - got["rows"][0]["figures"][k] <= dhi
    assert main(["compare", str(run), "--value", "colour", "--data", str(synthetic_csv)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --value 'colour' holds") and "not an amount" in err[0]
    assert main(["compare", str(run), "--value", "x2"]) == 2
    assert capsys.readouterr().err.strip() == "error: --value needs the runs' data to read the column from; add --data FILE"
