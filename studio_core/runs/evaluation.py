"""One path from labelled rows to figures: score rows with a trained model, one record batch at
a time, and compute the task's metrics -- the test rows at the end of training, Inspect's
holdout, ``evaluate`` (``wdstudio evaluate``) and the bundle's checks all go through
``score_rows``; ``run_split`` re-creates a run's own parts from reloaded data for them.

Only labels, outputs and row numbers are kept (a few floats a row), so a part of millions of
rows streams in bounded memory.  Test figures add 95 % bootstrap intervals (``bootstrap.py``)
and a table of the test predictions that a run stores for paired comparisons.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from studio_core.common.errors import Cancelled, StudioError
from studio_core.common.metrics import task_metrics
from studio_core.data.source import Source
from studio_core.features.preprocess import BATCH_ROWS, Preprocessor
from studio_core.runs.bootstrap import metric_intervals

TEST_PREDICTIONS = "test_predictions.parquet"  # a run's test rows, scored once after training


@dataclass(frozen=True)
class Scored:
    """Labelled rows and a model's outputs on them, aligned."""

    task: str
    y: np.ndarray  # float64 labels: 0/1 (binary), the class index (multiclass) or on the label's scale
    output: np.ndarray  # float64 logits (binary), per-class logits (multiclass, (n, K)) or predictions on the label's scale
    key: np.ndarray | None = None  # int64 ``__wd_row`` of each row, when scored from a split part

    def __len__(self) -> int:
        return len(self.y)

    @property
    def prediction(self) -> np.ndarray:
        """Probability of the positive class, per-class probabilities (multiclass), or the predicted value."""
        if self.task == "multiclass":
            from studio_core.common.multiclass import softmax

            return softmax(self.output)
        return 1.0 / (1.0 + np.exp(-self.output)) if self.task == "binary" else self.output

    def metrics(self) -> dict[str, float]:
        return task_metrics(self.task, self.y, self.output)

    def intervals(self, resamples: int = 1000, seed: int = 0) -> dict[str, list[float] | None]:
        return metric_intervals(self.task, self.y, self.output, resamples, seed)

    def table(self) -> pa.Table:
        """The rows as ``test_predictions.parquet`` stores them: row number, label, prediction
        (and the logit for binary tasks), ordered by row number."""
        order = np.argsort(self.key, kind="stable") if self.key is not None else np.arange(len(self))
        cols: dict[str, Any] = {"row": pa.array(self.key[order] if self.key is not None else order, pa.int64()), "label": pa.array(self.y[order], pa.float64())}
        if self.task == "multiclass":  # the class index predicted, then each class's logit
            cols["prediction"] = pa.array(self.output[order].argmax(axis=1).astype(np.float64), pa.float64())
            cols.update({f"logit_{k}": pa.array(self.output[order, k], pa.float64()) for k in range(self.output.shape[1])})
            return pa.table(cols)
        cols["prediction"] = pa.array(self.prediction[order], pa.float64())
        if self.task == "binary":
            cols["logit"] = pa.array(self.output[order], pa.float64())
        return pa.table(cols)

    @staticmethod
    def from_table(task: str, table: pa.Table) -> Scored:
        """Read back ``table()``'s layout."""
        if task == "multiclass":
            k = sum(1 for name in table.column_names if name.startswith("logit_"))
            out = np.stack([table.column(f"logit_{i}").to_numpy() for i in range(k)], axis=1) if k else np.zeros((table.num_rows, 0))
        else:
            out = table.column("logit" if task == "binary" else "prediction").to_numpy()
        return Scored(task, table.column("label").to_numpy().astype(np.float64), out.astype(np.float64),
                      table.column("row").to_numpy().astype(np.int64))


def predict_raw(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], batch: int = 65536) -> np.ndarray:
    """The network's raw outputs (logits, or standardised values) for encoded inputs, in eval mode."""
    model.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(inputs[0]), batch):
            outs.append(model(*(t[start : start + batch] for t in inputs)).float().numpy())
    return np.concatenate(outs) if outs else np.zeros(0, np.float32)


def score_rows(model: torch.nn.Module, prep: Preprocessor, source: Source, key: bool = False, available: set[str] | None = None,
               batch_rows: int = BATCH_ROWS, stop_event: threading.Event | None = None) -> Scored:
    """Labelled rows of ``source`` scored by ``model``; ``key`` keeps each row's ``__wd_row``."""
    from studio_core.training.batches import to_tensors

    ys, outs, keys = [np.zeros(0)], [np.zeros((0, prep.n_outputs)) if prep.task == "multiclass" else np.zeros(0)], [np.zeros(0, np.int64)]
    for enc in prep.transform_batches(source, with_label=True, available=available, batch_rows=batch_rows, key=key):
        if stop_event is not None and stop_event.is_set():
            raise Cancelled()
        if len(enc):
            raw = predict_raw(model, tuple(to_tensors((enc.wide, enc.cat, enc.num)))).astype(np.float64)
            ys.append(enc.label)
            outs.append(raw if prep.task != "regression" else prep.decode_label(raw))
            if key:
                keys.append(enc.key)
    return Scored(prep.task, np.concatenate(ys), np.concatenate(outs), np.concatenate(keys) if key else None)


def read_test_scores(path: Path, task: str, again: str = "train the run again") -> Scored | None:
    """A run directory's stored test rows (``test_predictions.parquet``), or None without them."""
    import pyarrow.parquet as pq

    file = Path(path) / TEST_PREDICTIONS
    if not file.is_file():
        return None
    try:
        return Scored.from_table(task, pq.read_table(file))
    except Exception as exc:  # noqa: BLE001 - a damaged file: say so, keep the rest of the run usable
        raise StudioError(f"{file}: the test predictions are damaged ({str(exc).splitlines()[0][:160]}); {again}") from None


def run_split(run: Any, ws: Any, table: str | None = None, split_table: str | None = None) -> Any:
    """The run's split re-created from the data loaded in ``ws`` (refused when the rows differ);
    ``table`` stands in for the spec's source when the data was loaded under another name."""
    import copy

    from studio_core.data.split import SPLIT_TABLE, split_for

    data = copy.deepcopy(run.spec.data)
    if table:
        data.table, data.sql = table, ""
    return split_for(ws, run.spec, run.metrics, split_table or SPLIT_TABLE, data)


def training_rows_warning(run: Any, source: Source, columns: set[str]) -> list[str]:
    """A warning when the rows to evaluate hold the run's training rows (its split's sketch)."""
    from studio_core.data.split import training_overlap

    got = training_overlap(source.con, source.relation, columns, run.metrics.get("split") or {})
    if not got or got[0] == 0:
        return []
    found, size = got
    n_train = (run.metrics.get("split") or {}).get("counts", {}).get("train", 0)
    return [f"these rows include the run's training rows ({found} of a {size}-row sample of them found: about {found / size:.0%} of its "
            f"{n_train:,} training rows); figures on rows the model was fitted on are optimistic; for the honest figure evaluate "
            "new rows, or the run's own test rows with --part test"]


def evaluate(run: Any, source: Source, columns: set[str], allow_missing: bool = False, own_part: bool = False) -> tuple[Scored, list[str]]:
    """A run's figures on labelled rows, and the warnings to show with them: input columns the
    rows lack (refused unless ``allow_missing``), and -- unless the rows are one of the run's
    own parts (``own_part``) -- rows the model was trained on."""
    from studio_core.features.input_columns import check_input_columns

    prep = run.preprocessor
    if prep.label not in columns:
        raise StudioError(f"the data has no label column {prep.label!r}; evaluate needs labelled rows (use predict otherwise)")
    warnings = list(check_input_columns(prep, columns, allow_missing))
    if not own_part:
        warnings += training_rows_warning(run, source, columns)
    scorer = getattr(run, "score_source", None)  # a LightGBM baseline scores its own way
    scored = scorer(source, columns) if scorer is not None else score_rows(run.model, prep, source, available=columns)
    if len(scored) == 0:
        raise StudioError("no rows with a label to evaluate; load labelled rows")
    return scored, warnings
