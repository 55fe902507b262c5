"""Log a finished run directory to MLflow.

What a team that tracks its models in MLflow expects of a run: the spec as params (dotted keys,
``model.deep_layers`` …), every epoch's training loss and validation metrics with the epoch as
the step, the test metrics with their 95 % intervals (``test_auc``, ``test_auc_ci_low`` …), the
run's own files, the stakeholder report and model card as artifacts, and a model MLflow can
serve: the raw-row ONNX graph through ``mlflow.onnx.log_model`` (one 1-D input per feature
column, named after the column as the bundle's manifest says; 1-D outputs).

A run is logged after it is written, from its directory alone, so a failed log loses nothing:
the run is on disk and ``wdstudio track`` logs it later.  MLflow is imported here only, and only
when a tracking URI is given.  Use its SQLite store (``sqlite:///mlflow.db``); the file store
(``./mlruns``) is deprecated and refused by current MLflow.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studio_core.common.errors import StudioError
from studio_core.compare.leaderboard import kind_of
from studio_core.runs.folder import run_record
from studio_core.spec.schema import Spec

ENV = "MLFLOW_TRACKING_URI"
INSTALL = "pip install -e '.[mlflow]' (or pip install mlflow)"
MAX_PARAM = 6000  # MLflow's limit on a param value's length
RUN_FILES = ("spec.json", "preprocess.json", "metrics.json", "history.jsonl")


@dataclass(frozen=True)
class Logged:
    """Where a run went: the MLflow run and experiment ids, and what was logged."""

    run_id: str
    experiment_id: str
    artifacts: tuple[str, ...]
    model: str | None  # "onnx" when the model was logged, else None
    notes: tuple[str, ...]


def tracking_uri(given: str | None) -> str | None:
    """The URI to log to: ``--mlflow`` when given, else ``MLFLOW_TRACKING_URI``, else None."""
    return given or os.environ.get(ENV) or None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MLflow and its database migrations talk on stderr at INFO; the CLI prints its own lines."""
    loggers = [logging.getLogger(n) for n in ("mlflow", "alembic", "alembic.runtime.migration")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def _global_uri(mlflow: Any, uri: str) -> Iterator[None]:
    """MLflow's fluent API (``log_model``) logs to its global tracking URI, and setting it also
    sets ``MLFLOW_TRACKING_URI`` in this process's environment; both are put back afterwards,
    so logging one run never redirects what the process does next."""
    before = os.environ.get(ENV)
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before or None)


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise StudioError(f"logging to MLflow needs the mlflow package, which is not installed; run {INSTALL}") from None
    return mlflow


def experiment_name(spec: Spec) -> str:
    """The default experiment: one per table and label (``adult: income``)."""
    return f"{spec.data.table or 'query'}: {spec.data.label}"


def _store_error(uri: str, exc: Exception) -> StudioError:
    first = (str(exc).strip().splitlines() or [""])[0][:160]
    return StudioError(f"cannot use the MLflow store {uri} ({type(exc).__name__}: {first}); "
                       "check the URI (sqlite:///path/mlflow.db in a folder that exists, or a server's http:// address)")


def check_store(uri: str) -> None:
    """Refuse a URI that is not one, or a store that cannot be opened -- before any training."""
    mlflow = _mlflow()
    if "://" not in uri and not uri.startswith("databricks"):
        raise StudioError(f"--mlflow {uri!r} is not a tracking URI; pass e.g. sqlite:///{uri if uri.endswith('.db') else (uri.rstrip('/') or 'mlflow') + '.db'} "
                          "(MLflow's SQLite store) or the http:// address of a tracking server")
    with _quiet():
        try:
            mlflow.MlflowClient(uri).search_experiments(max_results=1)
        except Exception as exc:  # noqa: BLE001 - any store failure: one message naming the URI
            raise _store_error(uri, exc) from None


def open_experiment(uri: str, name: str) -> str:
    """Connect to the tracking store and return the id of experiment ``name`` (created when new).
    A new experiment on a SQLite store keeps its artifacts beside the database file, not in
    whatever folder the command happened to run in."""
    mlflow = _mlflow()
    check_store(uri)
    with _quiet():
        try:
            client = mlflow.MlflowClient(uri)
            found = client.get_experiment_by_name(name)
            if found is not None:
                return found.experiment_id
            location = None
            if uri.startswith("sqlite:///"):
                location = (Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts").as_uri()
            return client.create_experiment(name, artifact_location=location)
        except Exception as exc:  # noqa: BLE001 - any store failure: one message naming the URI
            raise _store_error(uri, exc) from None


def spec_params(spec: Spec) -> dict[str, str]:
    """The spec as flat params: ``section.field`` -> its value (lists and dicts as JSON)."""
    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value and prefix.count(".") < 1:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
            return
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        out[prefix] = text if len(text) <= MAX_PARAM else text[: MAX_PARAM - 1] + "…"

    walk("", spec.to_dict())
    return out


def run_metrics(metrics: dict[str, Any], history: list[dict[str, Any]]) -> list[tuple[str, float, int]]:
    """(key, value, step) for every epoch's numbers and the test metrics with their intervals."""
    rows: list[tuple[str, float, int]] = []
    for r in history:
        for k, v in r.items():
            if k in ("epoch", "step", "lrs") or not isinstance(v, int | float) or v != v:
                continue
            rows.append((k, float(v), int(r["epoch"])))
    for k, v in (metrics.get("test") or {}).items():
        if isinstance(v, int | float):
            rows.append((f"test_{k}", float(v), 0))
    for k, ci in (metrics.get("test_ci") or {}).items():
        if isinstance(ci, list | tuple) and len(ci) == 2:
            rows += [(f"test_{k}_ci_low", float(ci[0]), 0), (f"test_{k}_ci_high", float(ci[1]), 0)]
    for k in ("best_epoch", "epochs_run", "train_seconds", "train_rows_per_s", "n_train", "n_val", "n_test"):
        if isinstance(metrics.get(k), int | float):
            rows.append((k, float(metrics[k]), 0))
    return rows


def _history(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "history.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def log_run(run_dir: str | Path, uri: str, experiment: str | None = None, report: bool = True) -> Logged:
    """Log the run at ``run_dir`` to the MLflow store at ``uri`` (experiment ``experiment``,
    default one per table and label) and return where it went."""
    from mlflow.entities import Metric, Param, RunTag

    run_dir = Path(run_dir).resolve()
    spec, metrics = run_record(run_dir)
    mlflow = _mlflow()
    exp_id = open_experiment(uri, experiment or experiment_name(spec))
    kind = kind_of(spec, metrics)
    split = metrics.get("split") or {}
    tags = {"wdstudio.kind": kind, "wdstudio.run_dir": str(run_dir), "wdstudio.task": str(metrics.get("task", "")),
            "wdstudio.split": str(split.get("kind", spec.data.split)), "mlflow.note.content": _note(spec, metrics, kind)}
    for part, fingerprint in (split.get("fingerprints") or {}).items():  # which rows: the leaderboard's check, in MLflow too
        tags[f"wdstudio.fingerprint.{part}"] = str(fingerprint)
    notes: list[str] = []
    with _quiet():
        client = mlflow.MlflowClient(uri)
        run = client.create_run(exp_id, run_name=run_dir.name, tags=tags)
        rid, status = run.info.run_id, "FAILED"
        try:
            params = [Param(k, v) for k, v in spec_params(spec).items()]
            now = int(time.time() * 1000)
            values = [Metric(k, v, now, step) for k, v, step in run_metrics(metrics, _history(run_dir))]
            for i in range(0, max(len(params), len(values)), 100):  # the store's batch limits
                client.log_batch(rid, metrics=values[i:i + 100], params=params[i:i + 100], tags=[RunTag("wdstudio.version", _version())] if not i else [])
            artifacts = [f for f in RUN_FILES if (run_dir / f).is_file()]
            for f in artifacts:
                client.log_artifact(rid, str(run_dir / f), "run")
            artifacts = [f"run/{f}" for f in artifacts]
            if report:
                from studio_core.report.build import build_report

                client.log_text(rid, build_report(run_dir), "report.html")
                artifacts.append("report.html")
            model = None
            if (run_dir / "model.pt").is_file() or (run_dir / "preprocess.json").is_file():  # a network, or a LightGBM baseline
                from studio_core.tracking.mlflow_model import log_onnx_model

                with _global_uri(mlflow, uri):
                    card = log_onnx_model(mlflow, rid, run_dir)
                if card:
                    client.log_text(rid, card, "model_card.md")
                    artifacts.append("model_card.md")
                artifacts.append("model")
                model = "onnx"
            else:
                notes.append(f"{run_dir.name} is a {kind} baseline from before baselines stored preprocess.json; its files and report are "
                             "logged, not a model (train it again to log one)")
            status = "FINISHED"
        finally:
            client.set_terminated(rid, status)
    return Logged(rid, exp_id, tuple(artifacts), model, tuple(notes))


def _note(spec: Spec, metrics: dict[str, Any], kind: str) -> str:
    from studio_core.common.metrics import format_metric, headline, metric_label

    key = headline(metrics.get("task", spec.data.task))
    test, ci = (metrics.get("test") or {}).get(key), (metrics.get("test_ci") or {}).get(key)
    figure = (f"test {metric_label(key)} {format_metric(key, test)}" + (f" (95 % interval {ci[0]:.4f}–{ci[1]:.4f})" if ci else "")
              if test is not None else "no test rows")
    return f"{kind} for `{spec.data.label}` ({metrics.get('task', spec.data.task)}), {figure}; logged by Wide & Deep Studio."


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wide-deep-studio")
    except PackageNotFoundError:
        return "unknown"
