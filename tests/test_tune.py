"""Tuning within a budget (issue 14, item 7): Optuna TPE over the knobs, on the validation rows
only; trial 0 is the spec as given, so the best is never worse on the validation rows; budgets
of trials or minutes; cancelling; ``wdstudio tune`` writes the best spec and the trials table."""

from __future__ import annotations

import json
import threading

import pandas as pd
import pytest

from studio_core.cli.main import main
from studio_core.common.errors import Cancelled
from studio_core.features.validate import validate
from studio_core.runs import train as pipeline
from studio_core.runs.tune import apply_params, tune
from studio_core.spec.schema import Spec


def test_tuning_keeps_the_best_validation_trial_and_never_worse_than_the_spec_as_given(small_spec):
    ws, spec = small_spec
    spec.train.epochs = 2
    seen = []
    result = tune(spec, ws, trials=4, seed=1, on_trial=lambda t, planned: seen.append((t.number, planned)))
    assert seen == [(0, 4), (1, 4), (2, 4), (3, 4)] and len(result.trials) == 4
    assert result.monitor == "auc" and result.default_value == result.trials[0].value
    values = [t.value for t in result.trials]
    assert result.best_value == max(values) >= result.default_value
    assert len({json.dumps(t.params, sort_keys=True) for t in result.trials}) == 4  # four different points tried
    assert result.trials[0].params["numeric"] == "as given" and result.trials[0].params["embedding_scale"] == 1.0
    best = result.trials[values.index(max(values))]
    assert result.best_spec.to_dict() == (spec if best.number == 0 else apply_params(spec, best.params)).to_dict()
    assert validate(result.best_spec, ws.source(spec.data.table, spec.data.sql)) == []
    assert Spec.from_json(result.best_spec.to_json()).to_dict() == result.best_spec.to_dict()
    table = result.table()
    assert list(table["trial"]) == [0, 1, 2, 3] and "validation auc" in table and "deep_lr" in table


def test_a_trial_leaves_the_test_rows_unscored(small_spec):
    ws, spec = small_spec
    spec.train.epochs = 1
    out = pipeline.train(spec, ws, score_test=False)
    assert out.test is None and "test" not in out.metrics and out.metrics["auc"] > 0


def test_apply_params_sets_each_knob():
    spec = Spec.from_dict({"features": {"numeric": [{"name": "x", "transform": "standardize"}, {"name": "b", "transform": "bucketize"}],
                                        "categorical": [{"name": "c", "embedding_dim": 8}]}})
    got = apply_params(spec, {"deep_lr": 0.004, "wide_lr": 0.02, "width": 128, "layers": 3, "dropout": 0.3, "embedding_scale": 0.5,
                              "numeric": "piecewise", "periodic_scale": 0.05, "weight_decay": 1e-4, "batch_size": 1024})
    assert got.model.hidden_units == [128, 64, 32] and got.model.dropout == 0.3 and got.model.periodic_scale == 0.05
    assert got.features.categorical[0].embedding_dim == 4 and [n.transform for n in got.features.numeric] == ["piecewise", "bucketize"]
    assert (got.train.deep_optimizer, got.train.weight_decay, got.train.batch_size, got.train.deep_lr, got.train.wide_lr) == ("adamw", 1e-4, 1024, 0.004, 0.02)
    assert spec.model.hidden_units == [256, 128]  # the base is left as it was


def test_a_minutes_budget_ends_the_search_and_a_stop_cancels_it(small_spec):
    ws, spec = small_spec
    spec.train.epochs = 1
    result = tune(spec, ws, trials=None, minutes=0.001)
    # the budget is checked between trials: the first always finishes (a failed first trial would let a second start: say why)
    assert len(result.trials) == 1, [(t.number, round(t.seconds, 3), t.message) for t in result.trials]
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        tune(spec, ws, trials=3, stop_event=stop)


def test_tune_cli_writes_the_best_spec_and_the_trials_table(capsys, synthetic_csv, tmp_path):
    out = tmp_path / "best.json"
    code = main(["tune", "--data", str(synthetic_csv), "--label", "target", "--trials", "2", "--epochs", "1", "--out", str(out), "--seed", "3"])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    best = Spec.from_json(out.read_text())
    assert best.data.label == "target" and best.train.epochs == 1
    trials = pd.read_csv(tmp_path / "best.trials.csv")
    assert list(trials.trial) == [0, 1] and trials["validation auc"].notna().all()
    assert f"best validation auc {trials['validation auc'].max():.4f}" in stdout
    assert "trial 1/2: validation" in stderr and "trial 2/2: validation" in stderr


@pytest.mark.parametrize("extra, message", [([], "no tuning budget given"), (["--trials", "0"], "at least 1 trial")])
def test_tune_cli_refuses_a_missing_or_empty_budget(capsys, synthetic_csv, tmp_path, extra, message):
    code = main(["tune", "--data", str(synthetic_csv), "--label", "target", "--out", str(tmp_path / "b.json"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "b.json").exists()
