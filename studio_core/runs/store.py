"""A run is a directory: spec.json, preprocess.json, model.pt, history.jsonl, metrics.json and
test_predictions.parquet (row number, label and prediction of every test row, for paired
comparisons of runs on the same rows).

It is written into a temporary sibling directory and renamed into place, so a reader never sees
half a run and a crash never leaves one.  Weights are a ``state_dict`` read back with
``weights_only=True``; everything else is JSON -- nothing is unpickled.  ``Run.predict`` scores
new raw rows, treating missing feature columns as missing values and saying so.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from studio_core.common.errors import StudioError
from studio_core.common.files import read_text
from studio_core.common.jsonsafe import json_safe
from studio_core.common.metrics import METRIC_KEYS
from studio_core.data.source import Source
from studio_core.data.workspace import Table, Workspace
from studio_core.features.input_columns import check_input_columns
from studio_core.features.preprocess import Preprocessor
from studio_core.features.sizing import check_layout
from studio_core.model.network import WideDeep
from studio_core.runs.evaluation import TEST_PREDICTIONS, Scored, predict_raw, read_test_scores
from studio_core.runs.folder import RUN_MARKER, check_out_dir
from studio_core.runs.lightgbm_run import LIGHTGBM_MODEL, LightGBMRun, load_lightgbm
from studio_core.spec.schema import Spec
from studio_core.training.batches import to_tensors

RUN_FILES = ("spec.json", "preprocess.json", "model.pt", "history.jsonl", "metrics.json")  # what every run has

NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # disk full, quota reached, file size limit


def write_run(out_dir: str | Path, spec: Spec, prep: Preprocessor, model: WideDeep, history: list[dict], metrics: dict,
              test: pa.Table | None = None) -> Path:
    """Write the run atomically; an existing run at ``out_dir`` is replaced only once complete.
    ``test``: the test predictions (``Scored.table()``)."""

    def weights(path: Path) -> None:
        with open(path, "wb") as f:  # through a Python file: a full disk is an OSError, not torch's C++ error
            torch.save(model.state_dict(), f)

    return write_run_files(out_dir, {"spec.json": spec.to_json(), "preprocess.json": prep.to_json(), "model.pt": weights}, history, metrics, test)


def write_run_files(out_dir: str | Path, files: dict[str, str | Callable[[Path], None]], history: list[dict], metrics: dict,
                    test: pa.Table | None = None) -> Path:
    """A run directory written atomically: ``files`` (text, or a function writing the file at a
    path), then history, metrics, test predictions and the run marker -- what every kind of run
    (Wide & Deep, a LightGBM baseline) shares."""
    out = Path(out_dir).resolve()
    check_out_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(mode=0o700)
    try:
        for name, content in files.items():
            if isinstance(content, str):
                (tmp / name).write_text(content, encoding="utf-8")
            else:
                content(tmp / name)
        (tmp / "history.jsonl").write_text("".join(json.dumps(json_safe(h)) + "\n" for h in history), encoding="utf-8")
        (tmp / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2), encoding="utf-8")
        if test is not None:
            pq.write_table(test, tmp / TEST_PREDICTIONS)
        listed = [*files, "history.jsonl", "metrics.json", *([TEST_PREDICTIONS] if test is not None else [])]
        (tmp / RUN_MARKER).write_text(json.dumps({"written_by": "wdstudio", "files": listed}), encoding="utf-8")
        for f in tmp.iterdir():
            f.chmod(0o600)  # a run holds the user's data (test predictions) and model: owner only
        tmp.chmod(0o700)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = _no_room(exc)
        if reason:
            raise StudioError(f"no room to write the run in {out.parent} ({reason}); free some disk space there "
                              "or choose another folder (--out, or WDSTUDIO_RUNS for the studio), then train again") from None
        raise
    return out


def _no_room(exc: BaseException | None) -> str:
    """Whether a full disk (or quota, or file-size limit) is behind ``exc``: torch's writer turns
    the OSError into a RuntimeError of its own while closing the archive, with the OSError as context.  The OS's reason, or ""."""
    for _ in range(5):
        if exc is None:
            break
        if isinstance(exc, OSError) and exc.errno in NO_ROOM:
            return exc.strerror or "no space"
        exc = exc.__cause__ or exc.__context__
    return ""


@dataclass
class Run:
    path: Path
    spec: Spec
    preprocessor: Preprocessor
    model: WideDeep
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)

    def predict(self, table: Table, allow_missing: bool = False) -> tuple[np.ndarray, list[str]]:
        """Predictions for every row of ``table`` in order, and warnings about its columns
        (renamed or too many missing feature columns are refused unless ``allow_missing``)."""
        warnings = check_input_columns(self.preprocessor, table.columns, allow_missing)
        enc = self.preprocessor.transform(Source(table.con, table.ref), with_label=False, available=set(table.columns))
        raw = predict_raw(self.model, tuple(to_tensors((enc.wide, enc.cat, enc.num))))
        return self.preprocessor.decode_label(raw), warnings

    def test_scores(self) -> Scored | None:
        """The test rows' labels and predictions stored at training (None for a run without them)."""
        return read_test_scores(self.path, self.preprocessor.task)


def read_record(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A run's metrics and history, checked for shape (torch-free: the job list reads them)."""
    path = Path(path)
    metrics = json.loads(read_text(path / "metrics.json", "metrics.json"))
    history = [json.loads(line) for line in read_text(path / "history.jsonl", "history.jsonl").splitlines() if line.strip()]
    if not isinstance(metrics, dict) or metrics.get("task") not in METRIC_KEYS:
        raise ValueError("metrics.json is not a metrics object of a known task")
    if not all(isinstance(h, dict) and isinstance(h.get("epoch"), int) and isinstance(h.get("step"), int) for h in history):
        raise ValueError("history.jsonl has lines that are not epoch records")
    return metrics, history


def is_lightgbm_run(path: str | Path) -> bool:
    """A LightGBM baseline's run directory (its model in LightGBM's text format)."""
    return (Path(path) / LIGHTGBM_MODEL).is_file()


def load_scorer(path: str | Path) -> Run | LightGBMRun:
    """A run that scores rows: a network run, or a LightGBM baseline (``runs.lightgbm_run``),
    which predicts, evaluates, exports and is explained its own way."""
    return load_lightgbm(path) if is_lightgbm_run(path) else load_run(path)


def load_run(path: str | Path) -> Run:
    """Load a run directory written by ``write_run``."""
    path = Path(path)
    if (path / LIGHTGBM_MODEL).is_file():
        raise StudioError(f"{path} is a LightGBM baseline: it predicts (the Predict page, `wdstudio predict`), evaluates, "
                          "exports (`wdstudio export`) and joins leaderboards and reports; explaining it is not built yet")
    missing = [f for f in RUN_FILES if not (path / f).is_file()]
    if missing:
        raise StudioError(f"{path} is not a complete run directory (missing {', '.join(missing)}); pass a directory written by `wdstudio train`")
    try:
        spec = Spec.from_json(read_text(path / "spec.json", "spec.json"))
        prep = Preprocessor.from_json(read_text(path / "preprocess.json", "preprocess.json"))
        metrics, history = read_record(path)
        check_layout(prep.layout(), spec.model)  # a doctored spec cannot make us allocate a huge model
        model = WideDeep(prep.layout(), spec.model)
        model.load_state_dict(torch.load(path / "model.pt", map_location="cpu", weights_only=True))
    except Exception as exc:  # a damaged or foreign file (torch's safe loader raises its own error types)
        raise StudioError(f"{path}: the run directory is damaged ({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}); "
                          "train it again") from None
    model.eval()
    return Run(path, spec, prep, model, metrics, history)


def predict_file(run: Run, data_path: str | Path, allow_missing: bool = False) -> tuple[np.ndarray, Workspace, str, list[str]]:
    """Load a CSV/Parquet file into a fresh workspace and score every row of it."""
    ws = Workspace()
    loaded = ws.load(data_path, name="input")
    preds, warnings = run.predict(ws.table(loaded.table), allow_missing)
    return preds, ws, loaded.table, list(loaded.warnings) + warnings
