import threading
import time

import numpy as np
import pytest
import torch

from studio_core.common.errors import Cancelled, TrainingDiverged
from studio_core.data.workspace import Workspace
from studio_core.features.preprocess import Layout
from studio_core.features.suggest import suggest
from studio_core.model.network import WideDeep
from studio_core.runs import train as pipeline
from studio_core.runs.store import load_run
from studio_core.spec.schema import DataSpec, ModelSpec
from studio_core.training.progress import Progress
from studio_core.training.trainer import Trainer, TrainerConfig


def test_training_learns_and_publishes_immutable_records(small_spec, tmp_path):
    ws, spec = small_spec
    records: list[Progress] = []
    out = pipeline.train(spec, ws, tmp_path / "run", listeners=[records.append])
    assert out.metrics["auc"] > 0.8  # the synthetic label is learnable
    kinds = [r.kind for r in records]
    assert kinds.count("epoch") == len(out.history) and kinds[-1] == "end" and "step" in kinds
    with pytest.raises(AttributeError):
        records[0].epoch = 99  # frozen
    epoch = next(r for r in records if r.kind == "epoch")
    assert {"auc", "logloss", "accuracy"} <= set(epoch.val) and epoch.rows_per_s > 0 and epoch.lrs
    for key in ("task", "best_epoch", "train_seconds", "train_rows_per_s", "auc", "logloss", "accuracy"):
        assert key in out.metrics


def test_same_seed_same_metrics(small_spec):
    ws, spec = small_spec
    a = pipeline.train(spec, ws).metrics
    b = pipeline.train(spec, ws).metrics
    assert a["auc"] == b["auc"] and a["logloss"] == b["logloss"]


def test_regression_task(tmp_path):
    from conftest import write_synthetic

    from studio_core.data.workspace import Workspace
    from studio_core.features.suggest import suggest
    from studio_core.spec.schema import DataSpec

    ws = Workspace()
    ws.load(write_synthetic(tmp_path / "reg.csv", label="regression"))
    spec = suggest(ws, DataSpec(table="reg", label="target")).spec
    assert spec.data.task == "regression"
    spec.train.epochs, spec.train.batch_size = 8, 64
    m = pipeline.train(spec, ws).metrics
    assert {"rmse", "mae", "r2"} <= set(m) and m["r2"] > 0.5


def test_save_load_gives_identical_predictions(small_spec, tmp_path):
    ws, spec = small_spec
    out = pipeline.train(spec, ws, tmp_path / "run")
    run = load_run(out.run_dir)
    table = ws.table("synthetic")
    p1, _ = run.predict(table)
    p2, _ = load_run(out.run_dir).predict(table)
    np.testing.assert_array_equal(p1, p2)
    assert len(p1) == table.n_rows() and ((p1 > 0) & (p1 < 1)).all()
    assert sorted(f.name for f in out.run_dir.iterdir()) == sorted([".wdstudio-run", "spec.json", "preprocess.json", "model.pt", "history.jsonl", "metrics.json",
                                                                    "test_predictions.parquet"])
    assert not list(tmp_path.glob(".run.tmp-*"))


def test_cancel_stops_within_one_second(small_spec):
    ws, spec = small_spec
    spec.train.epochs = 1000
    spec.train.early_stopping_patience = 0
    stop = threading.Event()
    started = threading.Event()
    errors = []

    def listener(p: Progress) -> None:
        started.set()

    def work():
        try:
            pipeline.train(spec, ws, listeners=[listener], stop_event=stop)
        except Cancelled:
            errors.append("cancelled")

    t = threading.Thread(target=work)
    t.start()
    assert started.wait(30)
    t0 = time.perf_counter()
    stop.set()
    t.join(5)
    assert not t.is_alive() and errors == ["cancelled"]
    assert time.perf_counter() - t0 < 1.0


def test_nan_loss_stops_cleanly_with_advice():
    layout = Layout(("a",), 4, ("a",), (4,), (2,), ("x",))
    model = WideDeep(layout, ModelSpec(hidden_units=[4]))
    n = 64
    data = (torch.randint(0, 4, (n, 1)), torch.randint(0, 4, (n, 1)), torch.full((n, 1), float("nan")), torch.ones(n))
    trainer = Trainer(model, torch.nn.functional.binary_cross_entropy_with_logits, [torch.optim.SGD(model.parameters(), lr=0.1)],
                      TrainerConfig(epochs=2, batch_size=16), lambda out, y: {"loss": 0.0})
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        trainer.fit(data, data)


def test_early_stopping_stops_after_its_patience(small_spec):
    """Stopping is bookkeeping here; that the weights saved are the best epoch's is
    test_honest_numbers.py::test_the_saved_model_is_the_best_epochs (it re-scores the model)."""
    ws, spec = small_spec
    spec.train.epochs = 30
    spec.train.early_stopping_patience = 1
    spec.train.deep_lr = 0.05
    out = pipeline.train(spec, ws)
    aucs = [h["val_auc"] for h in out.history]
    assert out.metrics["stopped_early"] and len(aucs) < 30
    assert out.metrics["best_epoch"] == aucs.index(max(aucs)) + 1 == len(aucs) - 1  # one epoch without improvement, then stop


def test_wide_l1_makes_wide_weights_sparse(small_spec):
    ws, spec = small_spec
    spec.model.deep = False
    dense = pipeline.train(spec, ws).model.wide.weight
    spec.model.wide_l1 = 0.5
    sparse = pipeline.train(spec, ws).model.wide.weight
    used = dense != 0  # ids that occur in training (unused hash buckets stay 0 either way)
    assert ((sparse == 0) & used).sum() > 0.3 * used.sum()


def test_damaged_weights_file_gives_a_clear_error(small_spec, tmp_path):
    from studio_core.common.errors import StudioError

    ws, spec = small_spec
    out = pipeline.train(spec, ws, tmp_path / "run")
    (out.run_dir / "model.pt").write_bytes(b"\x80\x04not a state dict")
    with pytest.raises(StudioError, match="damaged"):
        load_run(out.run_dir)


def test_a_diverging_run_names_the_column_with_extreme_values(tmp_path):
    """Squared error with a learning rate of 10 grows without bound (a binary run's log-loss can
    calm down when ReLUs die); the message names the column far from its mean."""
    import pandas as pd
    from conftest import write_synthetic

    frame = pd.read_csv(write_synthetic(tmp_path / "r.csv", label="regression"))
    frame.loc[7, "x2"] = 1e15  # one absurd value: ~30 standard deviations out after scaling
    frame["part"] = ["validation" if i % 10 == 0 else "test" if i % 10 == 1 else "train" for i in range(len(frame))]  # row 7 trains
    ws = Workspace()
    ws.register_frame("spiky", frame)
    spec = suggest(ws, DataSpec(table="spiky", label="target", split="column", split_column="part")).spec
    for n in spec.features.numeric:
        n.transform, n.embed, n.wide = "standardize", False, False
    spec.train.deep_optimizer, spec.train.deep_lr, spec.train.grad_clip, spec.train.warmup_steps = "sgd", 10.0, 0.0, 0
    with pytest.raises(TrainingDiverged) as info:
        pipeline.train(spec, ws)
    message = str(info.value)
    assert "lower the learning rate" in message and "suspect column(s): x2" in message


@pytest.mark.parametrize("label", ["binary", "regression"])
def test_inspect_holdout_scores_the_runs_own_validation_rows_batch_by_batch(tmp_path, label):
    """Inspect re-creates the validation split and streams it: its metric equals the run's,
    and record batches of 97 rows give the same predictions as one batch."""
    from conftest import write_synthetic
    from sklearn.metrics import mean_squared_error, roc_auc_score

    from studio_core.runs.inspect import holdout

    ws = Workspace()
    ws.load(write_synthetic(tmp_path / "d.csv", label=label), name="d")
    spec = suggest(ws, DataSpec(table="d", label="target")).spec
    spec.train.epochs, spec.train.batch_size = 2, 64
    out = pipeline.train(spec, ws, tmp_path / "run")
    run = load_run(out.run_dir)
    whole, pieces = holdout(run, ws), holdout(run, ws, batch_rows=97)
    assert len(whole.y) == out.metrics["n_val"] > 97
    assert np.array_equal(whole.y, pieces.y) and np.allclose(whole.prediction, pieces.prediction, atol=1e-6)
    if label == "binary":
        assert abs(roc_auc_score(whole.y, whole.prediction) - out.metrics["auc"]) < 1e-6
    else:
        assert abs(mean_squared_error(whole.y, whole.prediction) ** 0.5 - out.metrics["rmse"]) < 1e-4 * max(1.0, out.metrics["rmse"])


def test_a_wall_clock_budget_ends_training_inside_an_epoch_and_validates_it():
    """A 20-epoch plan of 100 slow steps each, with a 0.3 s budget: training ends inside the first
    epoch, that partial epoch is validated and kept, and the result says why it ended."""
    layout = Layout(("a",), 4, ("a",), (4,), (2,), ("x",))
    model = WideDeep(layout, ModelSpec(hidden_units=[4]), seed=0)
    n = 1600
    data = (torch.randint(0, 4, (n, 1)), torch.randint(0, 4, (n, 1)), torch.randn(n, 1), torch.randint(0, 2, (n,)).float())

    def slow_loss(out, y):
        time.sleep(0.01)
        return torch.nn.functional.binary_cross_entropy_with_logits(out, y)

    records: list[Progress] = []
    trainer = Trainer(model, slow_loss, [torch.optim.SGD(model.parameters(), lr=0.1)],
                      TrainerConfig(epochs=20, batch_size=16, max_seconds=0.3), lambda out, y: {"loss": float(out.abs().mean())})
    trainer.listeners.append(records.append)
    result = trainer.fit(data, data)
    assert result.stopped_by_budget and not result.stopped_early
    assert len(result.history) == 1 and result.best_epoch == 1
    assert 0 < result.history[0]["step"] < 100  # cut inside the epoch, after at least one step
    assert records[-1].kind == "end" and records[-1].message == "out of time"
    assert all(r.eta_s <= 0.3 for r in records if r.kind == "step")  # the time left is never past the budget


def test_the_budget_is_recorded_in_the_run_and_its_result_line(small_spec, tmp_path):
    from studio_core.runs.results import early_stop_text

    ws, spec = small_spec
    spec.train.epochs = 30
    spec.train.max_minutes = 1e-6  # spent after the first step
    out = pipeline.train(spec, ws, out_dir=tmp_path / "run")
    assert out.metrics["stopped_by_budget"] and out.metrics["epochs_run"] == 1
    assert early_stop_text(out.metrics) == ", time budget ran out in epoch 1 of 30"
    run = load_run(tmp_path / "run")
    assert run.metrics["stopped_by_budget"]
