"""The leaderboard (issue 17): paired bootstrap differences against a slow per-resample
reference, refusal of runs scored on other test rows, and ``wdstudio train --ablations`` /
``wdstudio compare`` end to end on real runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from studio_core.cli.main import main
from studio_core.common.errors import StudioError
from studio_core.compare.leaderboard import leaderboard
from studio_core.runs import train as pipeline


def _runs(tmp_path, small_spec, seeds=(1, 2), split_seeds=(42, 42)):
    ws, spec = small_spec
    out = []
    for i, (seed, split_seed) in enumerate(zip(seeds, split_seeds)):
        s = type(spec).from_dict(spec.to_dict())
        s.train.seed, s.data.split_seed = seed, split_seed
        if i == 1:
            s.model.deep = False  # the second run: the wide part alone
        out.append(pipeline.train(s, ws, tmp_path / f"run{i}").run_dir)
    return out


def test_paired_differences_match_a_slow_per_resample_reference(tmp_path, small_spec):
    a, b = _runs(tmp_path, small_spec)
    board = leaderboard([a, b], resamples=200, seed=7)
    ref_row, other = board.rows
    assert (ref_row.kind, other.kind, ref_row.p_better) == ("Wide & Deep", "wide-only", None)

    import pyarrow.parquet as pq

    ta, tb = pq.read_table(a / "test_predictions.parquet"), pq.read_table(b / "test_predictions.parquet")
    y, la, lb = (t.column(c).to_numpy() for t, c in ((ta, "label"), (ta, "logit"), (tb, "logit")))
    assert np.array_equal(ta.column("row").to_numpy(), tb.column("row").to_numpy())
    idx = np.random.default_rng(7).integers(0, len(y), size=(200, len(y)))  # the same resamples, drawn row by row
    diffs, wins = [], 0
    for ids in idx:
        if len(set(y[ids])) < 2:
            continue
        d = roc_auc_score(y[ids], lb[ids]) - roc_auc_score(y[ids], la[ids])
        diffs.append(d)
        wins += d > 0
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    assert other.diff_ci["auc"] == pytest.approx([lo, hi], abs=1e-12)
    assert other.p_better == pytest.approx(wins / len(diffs), abs=1e-12)
    assert other.diff["auc"] == pytest.approx(roc_auc_score(y, lb) - roc_auc_score(y, la), abs=1e-12)
    assert other.test_ci["auc"][0] < other.test["auc"] < other.test_ci["auc"][1]


def test_runs_scored_on_other_test_rows_are_refused(tmp_path, small_spec):
    a, b = _runs(tmp_path, small_spec, split_seeds=(42, 43))
    with pytest.raises(StudioError, match=r"run1 cannot be compared with .*run0: its test part holds .* row numbers are in one only"):
        leaderboard([a, b])
    rc = main(["compare", str(a), str(b)])
    assert rc == 2


def test_compare_refuses_what_is_not_a_run_or_a_metric_of_the_task(tmp_path, small_spec, capsys):
    a, _b = _runs(tmp_path, small_spec)
    assert main(["compare", str(a), str(tmp_path)]) == 2
    assert main(["compare", str(a), "--metric", "rmse"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "is not a run directory" in err[0] and "'rmse' is not a binary metric" in err[1] and len(err) == 2


def test_train_with_ablations_prints_the_leaderboard_and_compare_writes_json(tmp_path, synthetic_csv):
    out = tmp_path / "wd"
    cmd = [sys.executable, "-m", "studio_core", "train", "--data", str(synthetic_csv), "--label", "target", "--epochs", "3",
           "--out", str(out), "--ablations", "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    table = [re.split(r"\s{2,}", line.strip()) for line in lines[next(i for i, x in enumerate(lines) if re.match(r"run\s{2,}kind\s", x)) + 1:]]
    assert [cells[:2] for cells in table] == [[str(out), "Wide & Deep"], [f"{out}.wide-only", "wide-only"], [f"{out}.deep-only", "deep-only"]]
    assert table[0][-1] == "(reference)" and all(0.0 <= float(cells[-1]) <= 1.0 for cells in table[1:])
    got = subprocess.run([sys.executable, "-m", "studio_core", "compare", str(out), f"{out}.wide-only", f"{out}.deep-only",
                          "--metric", "logloss", "--json"], capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr
    board = json.loads(got.stdout)
    assert board["metric"] == "logloss" and board["reference"] == str(out) and len(board["rows"]) == 3
    for row in board["rows"][1:]:
        assert set(row) == {"run", "kind", "test", "test_ci", "diff", "diff_ci", "p_better"}
        assert row["diff_ci"]["logloss"][0] <= row["diff"]["logloss"] <= row["diff_ci"]["logloss"][1]
        assert 0.0 <= row["p_better"] <= 1.0
    stored = json.loads((out / "metrics.json").read_text())["test"]
    assert board["rows"][0]["test"]["auc"] == pytest.approx(stored["auc"], abs=1e-9)  # the stored test figure, recomputed from its rows


def test_baselines_share_the_runs_test_rows_and_the_constant_is_the_training_share(tmp_path, synthetic_csv, capsys):
    import pandas as pd

    from studio_core.data.split import split_for
    from studio_core.data.workspace import Workspace
    from studio_core.spec.schema import Spec

    run, const, lin = tmp_path / "wd", tmp_path / "const", tmp_path / "lin"
    assert main(["train", "--data", str(synthetic_csv), "--label", "target", "--epochs", "2", "--out", str(run), "--quiet"]) == 0
    assert main(["baseline", "--run", str(run), "--data", str(synthetic_csv), "--kind", "constant", "--out", str(const)]) == 0
    assert main(["baseline", "--run", str(run), "--data", str(synthetic_csv), "--kind", "linear", "--out", str(lin)]) == 0
    board = leaderboard([run, lin, const])
    assert [r.kind for r in board.rows] == ["Wide & Deep", "wide-only", "constant"]
    assert json.loads((lin / "spec.json").read_text())["model"]["deep"] is False
    ws = Workspace()
    ws.load(synthetic_csv)
    spec, metrics = Spec.from_json((run / "spec.json").read_text()), json.loads((run / "metrics.json").read_text())
    split = split_for(ws, spec, metrics)
    share = ws.con.sql(f"SELECT avg(CASE WHEN CAST(target AS VARCHAR) = '{spec.data.positive_class}' THEN 1.0 ELSE 0.0 END) "
                       f"FROM {split.train.relation}").fetchall()[0][0]
    import pyarrow.parquet as pq

    stored = pq.read_table(const / "test_predictions.parquet").column("prediction").to_numpy()
    assert stored == pytest.approx(np.full(len(stored), share), abs=1e-6)  # every test row gets the training share
    y = pq.read_table(const / "test_predictions.parquet").column("label").to_numpy()
    entropy = -np.mean(y * np.log(share) + (1 - y) * np.log(1 - share))
    assert json.loads((const / "metrics.json").read_text())["test"]["logloss"] == pytest.approx(entropy, abs=1e-6)
    out = tmp_path / "p.csv"
    assert main(["predict", "--run", str(const), "--data", str(synthetic_csv), "--out", str(out)]) == 0  # read like any run
    assert pd.read_csv(out)["prediction"].to_numpy() == pytest.approx(np.full(1200, share), abs=1e-6)
    capsys.readouterr()
    fewer = tmp_path / "fewer.csv"
    fewer.write_text("".join(synthetic_csv.read_text().splitlines(keepends=True)[:900]))
    assert main(["baseline", "--run", str(run), "--data", f"synthetic={fewer}", "--kind", "constant", "--out", str(tmp_path / "c2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no longer gives the rows this run was trained and tested on" in err[0]


def test_train_with_seeds_gives_mean_and_spread_over_seeds_on_the_same_split(tmp_path, synthetic_csv, capsys):
    out = tmp_path / "wd"
    assert main(["train", "--data", str(synthetic_csv), "--label", "target", "--epochs", "2", "--out", str(out), "--seeds", "3", "--quiet"]) == 0
    printed = capsys.readouterr().out
    runs = [out, tmp_path / "wd.seed-2", tmp_path / "wd.seed-3"]
    specs = [json.loads((r / "spec.json").read_text()) for r in runs]
    metrics = [json.loads((r / "metrics.json").read_text()) for r in runs]
    assert [s["train"]["seed"] for s in specs] == [specs[0]["train"]["seed"] + k for k in range(3)]
    assert len({m["split"]["fingerprints"]["test"] for m in metrics}) == 1  # only the training seed changed
    aucs = np.array([m["test"]["auc"] for m in metrics])
    board = leaderboard(runs)
    assert len(board.seed_groups) == 1 and board.seed_groups[0].runs == [str(r) for r in runs]
    assert board.seed_groups[0].mean == pytest.approx(aucs.mean(), abs=1e-9) and board.seed_groups[0].std == pytest.approx(aucs.std(), abs=1e-9)
    assert "Wide & Deep over 3 training seeds" in printed and f"AUC {aucs.mean():.4f} ± {aucs.std():.4f}" in printed
    assert main(["train", "--data", str(synthetic_csv), "--label", "target", "--out", str(tmp_path / "x"), "--seeds", "0"]) == 2


def test_gauc_ndcg_and_recall_at_k_match_hand_computed_values():
    from studio_core.compare.groups import group_samples, per_group

    groups = np.array(["A"] * 3 + ["B"] * 4 + ["C"] * 2 + ["D"] * 3)
    y = np.array([1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0])
    s = np.array([0.9, 0.5, 0.1, 0.8, 0.7, 0.2, 0.1, 0.3, 0.4, 0.5, 0.5, 0.5])
    t = per_group(y, s, groups, k=2)
    # A: the positive on top; B: ranks 2 and 3 of 4 -> AUC 2/4, its top 2 hold one positive at rank 2;
    # C: no positive; D: all tied -> AUC 1/2, the positive (first in row order) ranked first
    assert t["auc"].to_dict() == pytest.approx({"A": 1.0, "B": 0.5, "C": np.nan, "D": 0.5}, nan_ok=True)
    ndcg_b = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    assert t["ndcg"].to_dict() == pytest.approx({"A": 1.0, "B": ndcg_b, "C": np.nan, "D": 1.0}, nan_ok=True)
    assert t["recall"].to_dict() == pytest.approx({"A": 1.0, "B": 0.5, "C": np.nan, "D": 1.0}, nan_ok=True)
    point, samples = group_samples(y, {"m": s}, groups, k=2, resamples=50)
    assert point["m"]["gauc"] == pytest.approx((3 * 1.0 + 4 * 0.5 + 3 * 0.5) / 10)  # weighted by each group's rows (unweighted: 2/3)
    assert point["m"]["ndcg"] == pytest.approx((1 + ndcg_b + 1) / 3) and point["m"]["recall"] == pytest.approx(2.5 / 3)
    assert samples["m"]["gauc"].shape == (50,) and np.all((samples["m"]["gauc"] >= 0.5) & (samples["m"]["gauc"] <= 1.0))


def test_compare_by_group_prints_gauc_with_intervals_and_refuses_without_data(tmp_path, small_spec, synthetic_csv, capsys):
    a, b = _runs(tmp_path, small_spec)
    assert main(["compare", str(a), str(b), "--group", "colour", "--data", str(synthetic_csv), "--k", "5", "--json"]) == 0
    board = json.loads(capsys.readouterr().out)
    assert board["group_column"] == "colour" and board["n_groups"] == 4 and board["k"] == 5
    for row in board["rows"]:
        assert set(row["groups"]) == {"gauc", "ndcg", "recall"} and row["groups_ci"]["gauc"][0] <= row["groups"]["gauc"] <= row["groups_ci"]["gauc"][1]
    assert board["rows"][0]["groups_diff_ci"] == {} and board["rows"][1]["groups_diff_ci"]["gauc"] is not None
    assert main(["compare", str(a), "--group", "colour"]) == 2
    assert "--group needs the runs' data" in capsys.readouterr().err


def test_a_run_whose_difference_is_undefined_is_not_shown_as_the_reference(tmp_path, small_spec):
    """Test rows of one class leave AUC undefined on every resample: P(better) is undefined for
    the second run, and only the first run is labelled the reference."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from studio_core.compare.charts import leaderboard_table
    from studio_core.runs.folder import RUN_MARKER

    _ws, spec = small_spec
    dirs = []
    for i in range(2):
        d = tmp_path / f"r{i}"
        d.mkdir()
        (d / "spec.json").write_text(spec.to_json())
        (d / "metrics.json").write_text(json.dumps({"task": "binary"}))
        pq.write_table(pa.table({"row": pa.array([1, 2, 3], pa.int64()), "label": [1.0, 1.0, 1.0], "prediction": [0.6, 0.7, 0.8],
                                 "logit": [0.4 + i, 0.8, 1.4]}), d / "test_predictions.parquet")
        (d / RUN_MARKER).write_text("")
        dirs.append(d)
    board = leaderboard(dirs, "auc", resamples=20)
    assert board.rows[1].p_better is None
    lines = board.lines()
    assert "(reference)" in lines[2] and "(reference)" not in lines[3] and lines[3].rstrip().endswith("undefined")
    table = leaderboard_table(board)
    assert list(table["difference"])[0] == "reference" and list(table["difference"])[1] != "reference"
    assert list(table["P(better)"]) == ["", "undefined"]


def test_the_lightgbm_baseline_scores_the_runs_own_test_rows_and_joins_the_leaderboard(tmp_path, synthetic_csv, capsys):
    """LightGBM trained on the run's own training rows (early-stopped on its validation rows):
    its stored test scores equal a LightGBM model loaded from the run folder's text file, on
    the same rows, compare reads it like any run, predict and evaluate score with it as it scored
    its test rows (export: tests/test_lightgbm_export.py)."""
    import lightgbm as lgb
    import pandas as pd
    import pyarrow.parquet as pq

    from studio_core.data.split import split_for
    from studio_core.data.workspace import Workspace
    from studio_core.spec.schema import Spec

    run, gbm = tmp_path / "wd", tmp_path / "gbm"
    assert main(["train", "--data", str(synthetic_csv), "--label", "target", "--epochs", "2", "--out", str(run), "--quiet"]) == 0
    assert main(["baseline", "--run", str(run), "--data", str(synthetic_csv), "--kind", "lightgbm", "--out", str(gbm)]) == 0
    board = leaderboard([run, gbm])
    assert [r.kind for r in board.rows] == ["Wide & Deep", "LightGBM"] and board.rows[1].test_ci["auc"] is not None
    assert board.seed_groups == []  # a baseline on the run's spec is not another seed of it
    metrics = json.loads((gbm / "metrics.json").read_text())
    assert metrics["kind"] == "LightGBM" and 0 < metrics["best_epoch"] < 5000
    said = capsys.readouterr().out.strip().splitlines()[-1]  # told in trees, not in epochs and rows/s
    assert f"({metrics['best_epoch']} trees, early-stopped on the validation rows)" in said and "epoch" not in said and "rows/s" not in said
    stored = pq.read_table(gbm / "test_predictions.parquet")
    ws = Workspace()
    ws.load(synthetic_csv)
    spec, wd = Spec.from_json((run / "spec.json").read_text()), json.loads((run / "metrics.json").read_text())
    split = split_for(ws, spec, wd)
    rows = ws.con.sql(f"SELECT * FROM {split.test.relation} ORDER BY __wd_row").df()
    assert stored.column("row").to_numpy().tolist() == rows["__wd_row"].tolist()  # exactly the run's test rows
    booster = lgb.Booster(model_file=str(gbm / "model.lgb.txt"))
    x = rows[[n.name for n in spec.features.numeric] + [c.name for c in spec.features.categorical]].copy()
    train = ws.con.sql(f"SELECT * FROM {split.train.relation}").df()
    for c in spec.features.categorical:
        x[c.name] = pd.Categorical(x[c.name].astype(str), categories=pd.Categorical(train[c.name].astype(str)).categories)
    np.testing.assert_allclose(stored.column("logit").to_numpy(), booster.predict(x, raw_score=True), atol=1e-9)
    # predict scores a file as the baseline scored its test rows; evaluate --part test gives its stored figures
    assert main(["predict", "--run", str(gbm), "--data", str(synthetic_csv), "--out", str(tmp_path / "p.csv")]) == 0
    predicted = pd.read_csv(tmp_path / "p.csv")["prediction"].to_numpy()
    assert len(predicted) == ws.table("synthetic").n_rows()
    at = stored.column("row").to_numpy()
    np.testing.assert_allclose(predicted[at], 1 / (1 + np.exp(-stored.column("logit").to_numpy())), atol=1e-6)
    capsys.readouterr()
    assert main(["evaluate", "--run", str(gbm), "--data", str(synthetic_csv), "--part", "test"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["rows"] == len(at) and evaluated["auc"] == pytest.approx(metrics["test"]["auc"], abs=1e-9)
